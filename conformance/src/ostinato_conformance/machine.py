"""Hypothesis state machines that drive the provider contract directly.

:func:`provider_state_machine` builds a ``RuleBasedStateMachine`` from a provider factory.
Its rules are the calls clients and workers make (creating, sending, terminating and purging
instances; several workers locking, completing, abandoning and renewing work items, crashing
while they hold a lock; time passing), and after every step the provider is compared with a
small reference model of the guarantees:

* no message is lost (a *drain* step must deliver every pending visible message) and none is
  handed out again once a ``complete`` consumed it;
* a live lock is exclusive; a work item whose lock was taken over (or already used) gets
  ``WorkItemLockLost`` from ``complete``/``abandon``/``renew`` and changes nothing;
* timers (``visible_at``) and abandon delays are never early;
* the stored record and history are exactly the ones of the last successful write, and a
  terminal instance never becomes active again;
* create honours the reuse-id policy; purge removes everything.

Every run starts with three instances (``create_every_instance``). A failure shrinks to a
short story of calls, e.g.::

    state.create_every_instance()
    orchestration_items_0 = state.worker_locks_orchestration(stalls=True, worker='w1')
    state.drain_all_work()
    state.worker_completes(activities=0, finish=False, held=orchestration_items_0, send_to=None)
    # ConformanceViolation: <orchestration_item_0 of 'a' held by w1> was taken over or
    # already used, yet the call succeeded (two workers committed the same work)

(a provider that does not check the lock on complete, shrunk by hypothesis).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import FailureDetails, InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.history import (
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    TaskCompleted,
    TaskFailed,
)
from ostinato.provider import (
    ActivityClaim,
    ActivityTask,
    ActivityWorkItem,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    ProviderCapabilities,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus

from ostinato_conformance.base import ConformanceTestBase, ProviderFactory
from ostinato_conformance.errors import ConformanceViolation
from ostinato_conformance.support import LONG_LOCK, event_message, new_record, poll, start_message

INSTANCE_IDS = ("a", "b", "e\u0301-\uff21")
WORKERS = ("w1", "w2", "w3")
SOON = timedelta(milliseconds=30)
FAR = timedelta(hours=1)
TINY_LOCK = timedelta(milliseconds=1)
#: Margin for "definitely visible by now" (clock resolution of stores).
MARGIN = timedelta(milliseconds=5)

LockState = Literal["live", "expired", "lost"]

#: Every status an instance can be stored with: the model visits each, and every client
#: operation (create under each reuse policy, purge, send, terminate, suspend, resume) meets
#: every one.
STATUSES = tuple(OrchestrationStatus)
#: The status conditions purge is called with.
PURGE_CONDITIONS: tuple[frozenset[OrchestrationStatus], ...] = (
    TERMINAL_STATUSES,
    frozenset(OrchestrationStatus),
    frozenset({OrchestrationStatus.RUNNING, OrchestrationStatus.SUSPENDED}),
    frozenset(),
)


@dataclass
class Held:
    """A work item a worker holds in the story, with what the model knows of its lock.

    ``live``: locked with a long timeout and not used yet; ``expired``: its short lock has
    run out but no one took the work over (using it may succeed or raise ``WorkItemLockLost``);
    ``lost``: taken over or already used (using it must raise ``WorkItemLockLost``).

    A lock attempt that found no work still yields a ``Held`` (with ``item=None``; using it
    does nothing), so the bundles' contents depend only on the steps taken, never on timing:
    hypothesis needs that to replay and shrink a run (else ``FlakyStrategyDefinition``).
    """

    label: str
    worker: str
    item: OrchestrationWorkItem | ActivityWorkItem | None
    state: LockState
    #: Its instance was purged while the item was held (an activity's result then goes to
    #: an instance that no longer exists).
    orphaned: bool = False

    @property
    def key(self) -> str:
        if isinstance(self.item, OrchestrationWorkItem):
            return self.item.instance_id
        if isinstance(self.item, ActivityWorkItem):
            return self.item.task.key
        return ""

    def __repr__(self) -> str:
        if self.item is None:
            return f"<{self.label}: {self.worker} found no work>"
        return f"<{self.label} of {self.key.split(chr(0x1F))[0]!r} held by {self.worker}>"


@dataclass
class ModelMessage:
    instance_id: str
    visible_at: datetime | None
    name: str


@dataclass
class ModelInstance:
    record: InstanceRecord
    history: list[str] = field(default_factory=list)


#: Seconds ``drain_all_work`` may take before what is still visible counts as never handed out.
DRAIN_DEADLINE = 60.0


def _sleep_until(moment: datetime) -> None:
    while (now := utcnow()) < moment:
        time.sleep(max((moment - now).total_seconds(), 0.001))


def _fields(record: InstanceRecord) -> tuple[Any, ...]:
    """What a stored record must give back exactly (timestamps to the millisecond)."""
    return (
        record.execution_id,
        record.runtime_status.value,
        record.history_size,
        record.name,
        record.input,
        record.output,
        record.custom_status,
        record.parent_instance_id,
        record.failure_details,
        _millis(record.created_at),
        _millis(record.last_updated_at),
    )


def _millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceViolation(message)


class ProviderMachine(RuleBasedStateMachine):
    """Clients and workers against one provider, checked against a reference model.

    Subclasses made by :func:`provider_state_machine` set ``factory`` and ``capabilities``.
    """

    factory: ClassVar[ProviderFactory]
    capabilities: ClassVar[ProviderCapabilities]

    orchestration_items = Bundle("orchestration_items")
    activity_items = Bundle("activity_items")

    def __init__(self) -> None:
        super().__init__()
        self.provider: StorageProvider = type(self).factory()
        self.provider.setup()
        self._reads = ThreadPoolExecutor(2 * len(INSTANCE_IDS), thread_name_prefix="invariant")
        self.instances: dict[str, ModelInstance] = {}
        self.pending: dict[str, ModelMessage] = {}
        # Messages sent to an id before it was created: whether they survive is unspecified.
        self.maybe_pending: dict[str, ModelMessage] = {}
        self.activities: dict[str, ActivityTask] = {}
        self.held: list[Held] = []
        self.blocked_until: dict[str, datetime] = {}
        self.terminal_executions: set[tuple[str, str]] = set()
        self._labels = itertools.count()
        self._task_ids = itertools.count()
        self._names = itertools.count()

    def teardown(self) -> None:
        self._reads.shutdown()
        self.provider.close()

    # -- helpers ------------------------------------------------------------------------------
    def _hold(
        self, worker: str, item: OrchestrationWorkItem | ActivityWorkItem, state: LockState
    ) -> Held:
        kind = "orchestration" if isinstance(item, OrchestrationWorkItem) else "activity"
        held = Held(f"{kind}_item_{next(self._labels)}", worker, item, state)
        for other in self.held:
            if other.key == held.key and other.state != "lost":
                _check(
                    other.state == "expired",
                    f"{held!r} was handed out while {other!r} still held a live lock",
                )
                other.state = "lost"
        self.held.append(held)
        return held

    def _nothing(self, worker: str, kind: str) -> Held:
        """The placeholder for a lock attempt that found no work (see :class:`Held`)."""
        note(f"{worker} found no {kind} work")
        return Held(f"{kind}_item_{next(self._labels)}", worker, None, "lost")

    def _busy(self, instance_id: str) -> bool:
        """True if some work item of the instance is live or expired (not yet lost)."""
        return any(
            h.state != "lost"
            and isinstance(h.item, OrchestrationWorkItem)
            and h.item.instance_id == instance_id
            for h in self.held
        ) or any(
            h.state != "lost"
            and isinstance(h.item, ActivityWorkItem)
            and h.item.task.instance_id == instance_id
            for h in self.held
        )

    def _check_orchestration_item(self, item: OrchestrationWorkItem, before: datetime) -> None:
        after = utcnow()
        iid = item.instance_id
        model = self.instances.get(iid)
        for m in item.messages:
            expected = self.pending.get(m.message_id) or self.maybe_pending.get(m.message_id)
            _check(
                expected is not None,
                f"work item of {iid!r} contains message {m.event!r} that was already "
                "consumed or never sent (duplicated or phantom message)",
            )
            assert expected is not None
            _check(
                expected.instance_id == iid, f"message for {expected.instance_id!r} sent to {iid!r}"
            )
            _check(
                expected.visible_at is None or expected.visible_at <= after,
                f"message {expected.name} visible at {expected.visible_at} was handed out at "
                f"{after}: a timer fired early",
            )
        blocked = self.blocked_until.get(iid)
        _check(
            blocked is None or after >= blocked,
            f"{iid!r} was handed out {blocked - after if blocked else 0} before its abandon "
            "delay ended",
        )
        if model is None:
            _check(item.instance is None, f"work item of {iid!r} has a record but none was created")
        else:
            _check(item.instance is not None, f"work item of {iid!r} lacks its record")
            assert item.instance is not None
            _check(
                _fields(item.instance) == _fields(model.record),
                f"work item of {iid!r} has a stale record: {_fields(item.instance)} "
                f"instead of {_fields(model.record)}",
            )

    def _checkpoint(
        self,
        item: OrchestrationWorkItem,
        status: OrchestrationStatus,
        activities: int,
        send_to: str | None,
        restart: bool = False,
    ) -> OrchestrationCheckpoint:
        """What a (minimal) core would commit for ``item``: the record moves to ``status``
        (TERMINATED if a terminate message is among the messages); ``restart`` begins a new
        execution (history reset, as after continue-as-new)."""
        record = item.instance
        if record is None or record.runtime_status.is_terminal:
            return OrchestrationCheckpoint(instance=None)
        events = [m.event for m in item.messages]
        if any(isinstance(e, ExecutionTerminated) for e in events):
            status = OrchestrationStatus.TERMINATED
        new_record = record.with_changes(
            runtime_status=status,
            history_size=(0 if restart else record.history_size) + len(events),
            last_updated_at=utcnow(),
            custom_status=f'"{status.value}"',
            output='"done"' if status.is_terminal else None,
            failure_details=(
                FailureDetails("MachineError", f"failed in {item.instance_id}")
                if status is OrchestrationStatus.FAILED
                else None
            ),
        )
        if restart:
            new_record = new_record.with_changes(execution_id=f"x{next(self._names)}")
        tasks = [
            ActivityTask(
                instance_id=item.instance_id,
                execution_id=new_record.execution_id,
                task_id=next(self._task_ids),
                name="machine_activity",
                input='"in"',
            )
            for _ in range(activities if not status.is_terminal else 0)
        ]
        messages = []
        if send_to is not None:
            messages.append(event_message(send_to, f"from-{item.instance_id}-{next(self._names)}"))
        return OrchestrationCheckpoint(
            instance=new_record,
            new_history=events,
            reset_history=restart,
            activity_tasks=tasks,
            messages=messages,
        )

    def _apply(self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint) -> None:
        for m in item.messages:
            self.pending.pop(m.message_id, None)
            self.maybe_pending.pop(m.message_id, None)
        self.blocked_until.pop(item.instance_id, None)
        if checkpoint.instance is not None:
            model = self.instances[item.instance_id]
            model.record = checkpoint.instance
            if checkpoint.reset_history:
                model.history.clear()
            model.history.extend(history.dumps(e) for e in checkpoint.new_history)
            if checkpoint.instance.runtime_status.is_terminal:
                self.terminal_executions.add((item.instance_id, checkpoint.instance.execution_id))
        for task in checkpoint.activity_tasks:
            self.activities[task.key] = task
        for m in checkpoint.messages:
            self.pending[m.message_id] = ModelMessage(m.instance_id, m.visible_at, m.event.name)  # type: ignore[attr-defined]

    def _use(self, held: Held, call: Callable[[], None], apply: Callable[[], None]) -> None:
        """Make a call with ``held``; check the outcome its lock state allows, then apply."""
        try:
            call()
        except WorkItemLockLost:
            _check(held.state != "live", f"{held!r} had a live lock but got WorkItemLockLost")
            note(f"{held!r}: WorkItemLockLost, as allowed")
            held.state = "lost"
            return
        _check(
            held.state != "lost",
            f"{held!r} was taken over or already used, yet the call succeeded "
            "(two workers committed the same work)",
        )
        apply()

    # -- client rules -------------------------------------------------------------------------
    @initialize()
    def create_every_instance(self) -> None:
        for instance_id in INSTANCE_IDS:
            self.create_instance(instance_id, ReuseIdPolicy.ERROR_IF_EXISTS)

    @rule(instance_id=st.sampled_from(INSTANCE_IDS), policy=st.sampled_from(list(ReuseIdPolicy)))
    def create_instance(self, instance_id: str, policy: ReuseIdPolicy) -> None:
        record = new_record(instance_id, input=f'"input of {instance_id}"')
        if instance_id == INSTANCE_IDS[1]:  # a sub-orchestration of the first
            record = record.with_changes(parent_instance_id=INSTANCE_IDS[0])
        start = start_message(record)
        existing = self.instances.get(instance_id)
        refused = existing is not None and (
            existing.record.runtime_status not in policy.replaceable_statuses
        )
        try:
            self.provider.create_instance(record, start, policy)
        except InstanceAlreadyExistsError:
            _check(refused, f"create of {instance_id!r} with {policy} was refused wrongly")
            return
        _check(not refused, f"create of {instance_id!r} with {policy} replaced an active instance")
        if existing is not None:
            # Replacing takes the lock from a worker still holding the old run.
            self.blocked_until.pop(instance_id, None)
            for held in self.held:
                if isinstance(held.item, OrchestrationWorkItem) and held.key == instance_id:
                    held.state = "lost"
        for mid in [k for k, m in self.pending.items() if m.instance_id == instance_id]:
            message = self.pending.pop(mid)
            if existing is None:
                self.maybe_pending[mid] = message
        self.instances[instance_id] = ModelInstance(record)
        self.pending[start.message_id] = ModelMessage(instance_id, None, "start")

    @rule(
        instance_id=st.sampled_from(INSTANCE_IDS),
        kind=st.sampled_from(
            ["event", "event", "timer_soon", "timer_far", "terminate", "suspend", "resume"]
        ),
    )
    def send_message(self, instance_id: str, kind: str) -> None:
        controls = {
            "terminate": ExecutionTerminated,
            "suspend": ExecutionSuspended,
            "resume": ExecutionResumed,
        }
        if kind in controls:
            message = OrchestrationMessage(instance_id=instance_id, event=controls[kind]())
            name = kind
        else:
            delay = {"event": None, "timer_soon": SOON, "timer_far": FAR}[kind]
            visible_at = utcnow() + delay if delay is not None else None
            message = event_message(instance_id, next(self._names), visible_at=visible_at)
            name = message.event.name  # type: ignore[attr-defined]
        self.provider.send_message(message)
        self.pending[message.message_id] = ModelMessage(instance_id, message.visible_at, name)

    @rule(instance_id=st.sampled_from(INSTANCE_IDS), condition=st.sampled_from(PURGE_CONDITIONS))
    def purge(self, instance_id: str, condition: frozenset[OrchestrationStatus]) -> None:
        """Purge, also while a worker holds the instance or one of its activity tasks: the
        holder then loses its lock, and nothing it commits may bring the instance back."""
        model = self.instances.get(instance_id)
        expected = model is not None and model.record.runtime_status in condition
        deleted = self.provider.purge_instance(instance_id, condition)
        _check(
            deleted == expected,
            f"purge of {instance_id!r} ({model.record.runtime_status.value if model else 'none'}) "
            f"if in {sorted(s.value for s in condition)} returned {deleted}, expected {expected}",
        )
        if deleted:
            del self.instances[instance_id]
            for mid in [k for k, m in self.pending.items() if m.instance_id == instance_id]:
                del self.pending[mid]
            for mid in [k for k, m in self.maybe_pending.items() if m.instance_id == instance_id]:
                del self.maybe_pending[mid]
            for key in [k for k, t in self.activities.items() if t.instance_id == instance_id]:
                del self.activities[key]
            self.blocked_until.pop(instance_id, None)
            for held in self.held:
                if held.state == "lost":
                    continue
                if isinstance(held.item, OrchestrationWorkItem) and held.key == instance_id:
                    held.state = "lost"
                elif (
                    isinstance(held.item, ActivityWorkItem)
                    and held.item.task.instance_id == instance_id
                ):
                    # Its task is gone; completing it may fail or deliver a result that
                    # nobody reads (an instance that no longer exists).
                    held.state = "expired"
                    held.orphaned = True

    @rule(milliseconds=st.sampled_from([40, 60]))
    def time_passes(self, milliseconds: int) -> None:
        time.sleep(milliseconds / 1000)

    # -- orchestration worker rules -----------------------------------------------------------
    def _live_keys(self) -> set[str]:
        return {h.key for h in self.held if h.state == "live"}

    def _visible_work(self, cutoff: datetime) -> list[str]:
        """Pending messages that were surely visible at ``cutoff`` on unlocked instances."""
        live = self._live_keys()
        return [
            f"{m.name} for {m.instance_id!r}"
            for m in self.pending.values()
            if m.instance_id not in live
            and (m.visible_at is None or m.visible_at <= cutoff)
            and self.blocked_until.get(m.instance_id, cutoff) <= cutoff
        ]

    def _lock(self, worker: str, timeout: timedelta, state: LockState) -> Any:
        before = utcnow()
        item = self.provider.lock_next_orchestration_work_item(worker, timeout)
        if item is None:
            expected = self._visible_work(before - MARGIN)
            if expected:  # give a slow store time before calling the messages lost
                before = utcnow()
                item = poll(
                    lambda: self.provider.lock_next_orchestration_work_item(worker, timeout)
                )
                _check(
                    item is not None,
                    f"{worker} found no work, but these were never handed out (lost): {expected}",
                )
        if item is None:
            return self._nothing(worker, "orchestration")
        self._check_orchestration_item(item, before)
        if state == "expired":
            _sleep_until(utcnow() + timeout + MARGIN)
        held = self._hold(worker, item, state)
        note(f"{worker} locked {held!r}: {[m.event.event_type.value for m in item.messages]}")
        return held

    @rule(target=orchestration_items, worker=st.sampled_from(WORKERS), stalls=st.booleans())
    def worker_locks_orchestration(self, worker: str, stalls: bool) -> Any:
        """``stalls``: the worker stalls (or crashes) until its short lock has expired."""
        if stalls and self.capabilities.lock_expiry:
            return self._lock(worker, TINY_LOCK, "expired")
        return self._lock(worker, LONG_LOCK, "live")

    @rule(
        held=consumes(orchestration_items),
        status=st.sampled_from(STATUSES),
        activities=st.integers(0, 2),
        send_to=st.none() | st.sampled_from(INSTANCE_IDS),
        restart=st.booleans(),
    )
    def worker_completes(
        self,
        held: Held,
        status: OrchestrationStatus,
        activities: int,
        send_to: str | None,
        restart: bool,
    ) -> None:
        item = held.item
        if item is None:
            return
        assert isinstance(item, OrchestrationWorkItem)
        checkpoint = self._checkpoint(item, status, activities, send_to, restart)

        def apply() -> None:
            self._apply(item, checkpoint)
            held.state = "lost"

        self._use(
            held, lambda: self.provider.complete_orchestration_work_item(item, checkpoint), apply
        )

    # -- batches: several work items locked or completed in one call --------------------------
    @rule(
        target=orchestration_items,
        worker=st.sampled_from(WORKERS),
        count=st.integers(2, 3),
        stalls=st.booleans(),
    )
    def worker_locks_orchestration_batch(
        self, worker: str, count: int, stalls: bool
    ) -> MultipleResults[Held]:
        """``lock_next_orchestration_work_items``: up to ``count`` distinct instances."""
        expired = stalls and self.capabilities.lock_expiry
        timeout = TINY_LOCK if expired else LONG_LOCK
        before = utcnow()
        items = self.provider.lock_next_orchestration_work_items(worker, timeout, count)
        if not items and self._visible_work(before - MARGIN):
            before = utcnow()
            items = (
                poll(
                    lambda: (
                        self.provider.lock_next_orchestration_work_items(worker, timeout, count)
                        or None
                    )
                )
                or []
            )
        _check(len(items) <= count, f"asked for {count} work items, got {len(items)}")
        ids = [item.instance_id for item in items]
        _check(len(set(ids)) == len(ids), f"one batch holds an instance twice: {ids}")
        for item in items:
            self._check_orchestration_item(item, before)
        if expired and items:
            _sleep_until(utcnow() + timeout + MARGIN)
        helds = [self._hold(worker, item, "expired" if expired else "live") for item in items]
        note(f"{worker} locked {helds!r}")
        helds += [self._nothing(worker, "orchestration") for _ in range(count - len(items))]
        return multiple(*helds)

    def _check_batch_results(self, helds: list[Held], results: list[Exception | None]) -> None:
        _check(
            len(results) == len(helds),
            f"a batch of {len(helds)} got {len(results)} results: {results}",
        )
        for held, result in zip(helds, results, strict=True):
            if result is None:
                _check(
                    held.state != "lost",
                    f"{held!r} was taken over, purged, replaced or already used, yet its "
                    "completion in a batch succeeded (two workers committed the same work)",
                )
            elif isinstance(result, WorkItemLockLost):
                _check(held.state != "live", f"{held!r} had a live lock but got {result!r}")
            else:
                raise ConformanceViolation(
                    f"{held!r}: its completion in a batch failed with {result!r}"
                ) from result

    @rule(
        first=consumes(orchestration_items),
        second=consumes(orchestration_items),
        status=st.sampled_from(STATUSES),
        send_to=st.none() | st.sampled_from(INSTANCE_IDS),
        restart=st.booleans(),
    )
    def worker_completes_batch(
        self,
        first: Held,
        second: Held,
        status: OrchestrationStatus,
        send_to: str | None,
        restart: bool,
    ) -> None:
        """``complete_orchestration_work_items`` with items whose locks may be live, expired,
        taken over, purged or replaced: each gets its own outcome, none undoes another."""
        helds = [h for h in (first, second) if h.item is not None]
        if not helds:
            return
        batch = []
        for n, held in enumerate(helds):
            assert isinstance(held.item, OrchestrationWorkItem)
            checkpoint = self._checkpoint(
                held.item, status, n + 1, send_to if n == 0 else None, restart and n == 0
            )
            batch.append((held.item, checkpoint))
        results = self.provider.complete_orchestration_work_items(batch)
        self._check_batch_results(helds, results)
        for held, (item, checkpoint), result in zip(helds, batch, results, strict=True):
            if result is None:
                self._apply(item, checkpoint)
            held.state = "lost"

    @rule(
        target=activity_items,
        first=consumes(orchestration_items),
        second=consumes(orchestration_items),
        status=st.sampled_from(STATUSES),
        room=st.sampled_from([0, 1, 3]),
    )
    def worker_completes_batch_claiming(
        self, first: Held, second: Held, status: OrchestrationStatus, room: int
    ) -> MultipleResults[Held]:
        """``complete_and_claim_activities`` (eager activities): the batch's outcomes as for
        ``complete_orchestration_work_items``, and up to ``room`` of the tasks its applied
        checkpoints enqueue handed to the worker, locked, as first deliveries."""
        helds = [h for h in (first, second) if h.item is not None]
        if not helds:
            return multiple()
        batch = []
        for n, held in enumerate(helds):
            assert isinstance(held.item, OrchestrationWorkItem)
            batch.append((held.item, self._checkpoint(held.item, status, n + 1, None)))
        handed: list[list[ActivityWorkItem]] = []
        claim = ActivityClaim(helds[0].worker, LONG_LOCK, room, handed.append)
        results = self.provider.complete_and_claim_activities(batch, claim)
        self._check_batch_results(helds, results)
        enqueued: dict[str, ActivityTask] = {}
        for held, (item, checkpoint), result in zip(helds, batch, results, strict=True):
            if result is None:
                self._apply(item, checkpoint)
                enqueued.update((task.key, task) for task in checkpoint.activity_tasks)
            held.state = "lost"
        _check(len(handed) <= 1 and [] not in handed, f"start was called with {handed}")
        claimed = handed[0] if handed else []
        _check(len(claimed) <= room, f"{len(claimed)} tasks claimed with room for {room}")
        if self.capabilities.eager_activities:
            _check(
                len(claimed) == min(room, len(enqueued)),
                f"{len(claimed)} of {len(enqueued)} tasks claimed with room for {room}",
            )
        for got in claimed:
            _check(
                enqueued.get(got.task.key) == got.task,
                f"claimed task {got.task.task_id} of {got.task.instance_id!r} is not one the "
                "batch's applied checkpoints enqueued",
            )
            _check(got.dequeue_count == 1, f"a claimed task was counted {got.dequeue_count}")
        return multiple(*(self._hold(claim.worker_id, got, "live") for got in claimed))

    @rule(held=consumes(orchestration_items), delayed=st.booleans())
    def worker_abandons(self, held: Held, delayed: bool) -> None:
        item = held.item
        if item is None:
            return
        assert isinstance(item, OrchestrationWorkItem)
        delay = SOON if delayed else None
        before = utcnow()

        def apply() -> None:
            held.state = "lost"
            if delay is not None:
                self.blocked_until[item.instance_id] = before + delay

        self._use(held, lambda: self.provider.abandon_orchestration_work_item(item, delay), apply)

    @rule(held=orchestration_items)
    def worker_renews(self, held: Held) -> None:
        item = held.item
        if item is None:
            return
        assert isinstance(item, OrchestrationWorkItem)

        def apply() -> None:
            held.state = "live"

        self._use(
            held, lambda: self.provider.renew_orchestration_work_item_lock(item, LONG_LOCK), apply
        )

    # -- activity worker rules ----------------------------------------------------------------
    def _lock_activity(self, worker: str, timeout: timedelta, state: LockState) -> Any:
        item = self.provider.lock_next_activity_work_item(worker, timeout)
        if item is None:
            live = self._live_keys()
            expected = [t.task_id for key, t in self.activities.items() if key not in live]
            if expected:  # give a slow store time before calling the tasks lost
                item = poll(lambda: self.provider.lock_next_activity_work_item(worker, timeout))
                _check(
                    item is not None,
                    f"{worker} found no activity, but tasks {expected} were never handed out "
                    "(lost)",
                )
        if item is None:
            return self._nothing(worker, "activity")
        _check(
            item.task.key in self.activities,
            f"activity task {item.task.task_id} of {item.task.instance_id!r} was handed out "
            "after it was completed or purged",
        )
        _check(item.task == self.activities[item.task.key], "the activity task changed in storage")
        if state == "expired":
            _sleep_until(utcnow() + timeout + MARGIN)
        held = self._hold(worker, item, state)
        note(f"{worker} locked {held!r}")
        return held

    @rule(target=activity_items, worker=st.sampled_from(WORKERS), stalls=st.booleans())
    def worker_locks_activity(self, worker: str, stalls: bool) -> Any:
        """``stalls``: the worker stalls (or crashes) until its short lock has expired."""
        if stalls and self.capabilities.lock_expiry:
            return self._lock_activity(worker, TINY_LOCK, "expired")
        return self._lock_activity(worker, LONG_LOCK, "live")

    def _result_for(self, item: ActivityWorkItem, fails: bool) -> OrchestrationMessage:
        task = item.task
        event: TaskCompleted | TaskFailed
        if fails:
            event = TaskFailed(task_scheduled_id=task.task_id, failure=FailureDetails("E", "boom"))
        else:
            event = TaskCompleted(task_scheduled_id=task.task_id, result='"out"')
        return OrchestrationMessage(
            instance_id=task.instance_id, execution_id=task.execution_id, event=event
        )

    def _apply_result(self, held: Held, result: OrchestrationMessage) -> None:
        assert isinstance(held.item, ActivityWorkItem)
        held.state = "lost"
        self.activities.pop(held.item.task.key, None)
        message = ModelMessage(result.instance_id, None, "result")
        if held.orphaned:
            self.maybe_pending[result.message_id] = message
        else:
            self.pending[result.message_id] = message

    @rule(held=consumes(activity_items), fails=st.booleans())
    def worker_completes_activity(self, held: Held, fails: bool) -> None:
        item = held.item
        if item is None:
            return
        assert isinstance(item, ActivityWorkItem)
        result = self._result_for(item, fails)
        self._use(
            held,
            lambda: self.provider.complete_activity_work_item(item, result),
            lambda: self._apply_result(held, result),
        )

    @rule(
        target=activity_items,
        worker=st.sampled_from(WORKERS),
        count=st.integers(2, 3),
        stalls=st.booleans(),
    )
    def worker_locks_activity_batch(
        self, worker: str, count: int, stalls: bool
    ) -> MultipleResults[Held]:
        """``lock_next_activity_work_items``: up to ``count`` distinct tasks."""
        expired = stalls and self.capabilities.lock_expiry
        timeout = TINY_LOCK if expired else LONG_LOCK
        items = self.provider.lock_next_activity_work_items(worker, timeout, count)
        live = self._live_keys()
        if not items and any(key not in live for key in self.activities):
            items = (
                poll(
                    lambda: (
                        self.provider.lock_next_activity_work_items(worker, timeout, count) or None
                    )
                )
                or []
            )
        _check(len(items) <= count, f"asked for {count} activity tasks, got {len(items)}")
        keys = [item.task.key for item in items]
        _check(len(set(keys)) == len(keys), f"one batch holds a task twice: {keys}")
        for item in items:
            _check(
                item.task.key in self.activities,
                f"activity task {item.task.task_id} of {item.task.instance_id!r} was handed "
                "out after it was completed or purged",
            )
            _check(
                item.task == self.activities[item.task.key], "the activity task changed in storage"
            )
        if expired and items:
            _sleep_until(utcnow() + timeout + MARGIN)
        helds = [self._hold(worker, item, "expired" if expired else "live") for item in items]
        note(f"{worker} locked {helds!r}")
        helds += [self._nothing(worker, "activity") for _ in range(count - len(items))]
        return multiple(*helds)

    @rule(
        first=consumes(activity_items),
        second=consumes(activity_items),
        third=consumes(activity_items),
        fails=st.booleans(),
    )
    def worker_completes_activity_batch(
        self, first: Held, second: Held, third: Held, fails: bool
    ) -> None:
        """``complete_activity_work_items`` with tasks whose locks may be live, expired, taken
        over or purged: each gets its own outcome, none undoes another."""
        helds = [h for h in (first, second, third) if h.item is not None]
        if not helds:
            return
        batch = []
        for held in helds:
            assert isinstance(held.item, ActivityWorkItem)
            batch.append((held.item, self._result_for(held.item, fails)))
        results = self.provider.complete_activity_work_items(batch)
        self._check_batch_results(helds, results)
        for held, (_, message), result in zip(helds, batch, results, strict=True):
            if result is None:
                self._apply_result(held, message)
            held.state = "lost"

    @rule(
        target=orchestration_items,
        first=consumes(activity_items),
        second=consumes(activity_items),
        room=st.sampled_from([0, 1, 2]),
    )
    def worker_completes_activity_batch_claiming(
        self, first: Held, second: Held, room: int
    ) -> MultipleResults[Held]:
        """``complete_activities_and_claim`` (eager orchestrations): the batch's outcomes as
        for ``complete_activity_work_items``, and up to ``room`` of the instances its results
        go to locked for the worker, only if no one holds them, as a poll would hand them
        out."""
        helds = [h for h in (first, second) if h.item is not None]
        if not helds:
            return multiple()
        batch = []
        for held in helds:
            assert isinstance(held.item, ActivityWorkItem)
            batch.append((held.item, self._result_for(held.item, False)))
        handed: list[list[OrchestrationWorkItem]] = []
        worker = helds[0].worker
        before = utcnow()
        claim = OrchestrationClaim(worker, LONG_LOCK, room, handed.append)
        results = self.provider.complete_activities_and_claim(batch, claim)
        self._check_batch_results(helds, results)
        for held, (_, message), result in zip(helds, batch, results, strict=True):
            if result is None:
                self._apply_result(held, message)
            held.state = "lost"
        _check(len(handed) <= 1 and [] not in handed, f"start was called with {handed}")
        claimed = handed[0] if handed else []
        _check(len(claimed) <= room, f"{len(claimed)} instances claimed with room for {room}")
        targets = {message.instance_id for _, message in batch}
        taken = []
        for got in claimed:
            _check(
                got.instance_id in targets,
                f"{got.instance_id!r} was claimed, but no result of the batch goes to it",
            )
            self._check_orchestration_item(got, before)
            taken.append(self._hold(worker, got, "live"))
            note(f"{worker} claimed {taken[-1]!r}")
        return multiple(*taken)

    @rule(held=consumes(activity_items))
    def worker_abandons_activity(self, held: Held) -> None:
        item = held.item
        if item is None:
            return
        assert isinstance(item, ActivityWorkItem)

        def apply() -> None:
            held.state = "lost"

        self._use(held, lambda: self.provider.abandon_activity_work_item(item), apply)

    # -- liveness -----------------------------------------------------------------------------
    @rule()
    def drain_all_work(self) -> None:
        """Workers take and complete everything available; nothing visible may be left."""
        started = utcnow()
        # Ends when a lock finds nothing; the deadline only stops a provider that never says
        # so, and leaves room for a slow store on a busy machine.
        deadline = time.monotonic() + DRAIN_DEADLINE
        while time.monotonic() < deadline:
            before = utcnow()
            item = self.provider.lock_next_orchestration_work_item("drainer", LONG_LOCK)
            if item is None:
                break
            self._check_orchestration_item(item, before)
            held = self._hold("drainer", item, "live")
            checkpoint = self._checkpoint(item, OrchestrationStatus.RUNNING, 0, None)
            self.provider.complete_orchestration_work_item(item, checkpoint)
            self._apply(item, checkpoint)
            held.state = "lost"
        while time.monotonic() < deadline:
            task_item = self.provider.lock_next_activity_work_item("drainer", LONG_LOCK)
            if task_item is None:
                break
            _check(task_item.task.key in self.activities, "a consumed activity task came back")
            self._hold("drainer", task_item, "live").state = "lost"
            result = OrchestrationMessage(
                instance_id=task_item.task.instance_id,
                execution_id=task_item.task.execution_id,
                event=TaskCompleted(task_scheduled_id=task_item.task.task_id),
            )
            self.provider.complete_activity_work_item(task_item, result)
            self.activities.pop(task_item.task.key, None)
            self.pending[result.message_id] = ModelMessage(
                task_item.task.instance_id, None, "result"
            )
        lost = [x for x in self._visible_work(started - MARGIN) if not x.startswith("result")]
        _check(not lost, f"messages never handed out (lost): {lost}")
        live = self._live_keys()
        stuck = [t.task_id for key, t in self.activities.items() if key not in live]
        _check(not stuck, f"activity tasks never handed out (lost): {stuck}")

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def stored_state_matches_the_model(self) -> None:
        # Every record and history is read at once (they are checked after every step, and a
        # remote store's round trips would otherwise add up to most of the run).
        records = {iid: self._reads.submit(self.provider.get_instance, iid) for iid in INSTANCE_IDS}
        histories = {
            iid: self._reads.submit(self.provider.get_history, iid) for iid in INSTANCE_IDS
        }
        for iid in INSTANCE_IDS:
            stored = records[iid].result()
            model = self.instances.get(iid)
            if model is None:
                _check(
                    stored is None, f"{iid!r} exists in storage but was never created or was purged"
                )
                _check(histories[iid].result() == [], f"history of purged {iid!r} survived")
                continue
            _check(stored is not None, f"{iid!r} vanished from storage")
            assert stored is not None
            if (iid, stored.execution_id) in self.terminal_executions:
                _check(
                    stored.runtime_status.is_terminal,
                    f"terminal instance {iid!r} became {stored.runtime_status.value} again",
                )
            _check(
                _fields(stored) == _fields(model.record),
                f"{iid!r} is stored as {_fields(stored)}; the last write was "
                f"{_fields(model.record)}",
            )
            got = [history.dumps(e) for e in histories[iid].result()]
            _check(got == model.history, f"history of {iid!r} differs from what was committed")


def provider_state_machine(
    factory: ProviderFactory, capabilities: ProviderCapabilities
) -> type[ProviderMachine]:
    """A :class:`ProviderMachine` subclass for the provider ``factory`` makes."""
    return type(
        "ProviderMachine",
        (ProviderMachine,),
        {"factory": staticmethod(factory), "capabilities": capabilities},
    )


class ProviderStateMachineTests(ConformanceTestBase):
    """Random interleavings of clients and workers, checked against the reference model."""

    def test_provider_state_machine(
        self, provider_factory: ProviderFactory, capabilities: ProviderCapabilities
    ) -> None:
        profile = self.profile()
        machine = provider_state_machine(provider_factory, capabilities)
        run_state_machine_as_test(
            machine,
            settings=profile.hypothesis_settings(
                profile.machine_examples, stateful_step_count=profile.machine_steps
            ),
        )
