"""Fault injection: a wrapper around any provider that fails at chosen calls.

:class:`FaultInjectingProvider` counts the worker-side calls made through it (locking,
completing, abandoning, renewing, reading history) and, at the call numbers a
:class:`FaultPlan` names, does one of:

* ``RAISE_BEFORE``: raise :class:`InjectedFault` without calling the provider (a failed call);
* ``RAISE_AFTER``: call the provider, then raise (the call took effect, its answer was lost);
* ``CRASH_BEFORE`` / ``CRASH_AFTER``: the same, and the worker "dies" holding the work item:
  every later call about that work item's lock fails too, so only lock expiry frees it;
* ``HANG``: sleep past the lock timeout, then make the call (a stalled worker);
* ``AMBIGUOUS_COMMIT``: the call commits, then raises as a connection reset or a timeout
  after the commit would: the caller can't tell whether it took effect. A lock call's claim
  stays committed, so its work item is held by nobody until its lock expires;
* ``SEND_THEN_RAISE`` (``complete_orchestration_work_item`` only; elsewhere ``RAISE_BEFORE``):
  send the checkpoint's outbound messages, then raise without writing the rest: what a
  non-transactional provider leaves behind when a write after its sends fails. (Its activity
  tasks are not sent: the contract has no call that enqueues one alone.)

Client-side writes (``create_instance``, ``send_message``, ``purge_instance``) are counted
separately: ``FaultPlan.ambiguous_client_writes`` names the client write numbers that commit
and then raise.

Lock calls count only when they return a work item, so call numbers are stable from run to
run. It fails *between* whole provider calls; a non-transactional provider (one whose checkpoint
is a series of writes) should also inject faults between its own writes in its own tests.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ostinato.errors import ProviderError
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityClaim,
    ActivityWorkItem,
    ChangeSignal,
    DeadLetter,
    InstanceQuery,
    InstanceRecord,
    InstanceSnapshot,
    OrchestrationCheckpoint,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ProviderCapabilities,
    ResultStep,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus

T = TypeVar("T")
W = TypeVar("W", OrchestrationWorkItem, ActivityWorkItem)


class InjectedFault(ProviderError):
    """The failure a :class:`FaultInjectingProvider` raises at a planned call."""


class AmbiguousCommit(InjectedFault):
    """An injected failure after the call committed (a connection reset after the commit)."""


class FaultKind(enum.Enum):
    """What happens at a planned call (see the module docstring)."""

    RAISE_BEFORE = "raise_before"
    RAISE_AFTER = "raise_after"
    CRASH_BEFORE = "crash_before"
    CRASH_AFTER = "crash_after"
    HANG = "hang"
    AMBIGUOUS_COMMIT = "ambiguous_commit"
    SEND_THEN_RAISE = "send_then_raise"

    @property
    def needs_lock_expiry(self) -> bool:
        """True if recovering from this fault relies on locks expiring."""
        return self in (
            FaultKind.CRASH_BEFORE,
            FaultKind.CRASH_AFTER,
            FaultKind.HANG,
            FaultKind.AMBIGUOUS_COMMIT,
        )

    def __repr__(self) -> str:
        return f"FaultKind.{self.name}"


@dataclass(frozen=True)
class FaultPlan:
    """Which counted calls fail and how: ``{call_number: kind}`` (call numbers start at 1).

    ``hang_seconds`` is how long a ``HANG`` stalls (choose more than the lock timeout).
    """

    faults: Mapping[int, FaultKind] = field(default_factory=dict)
    hang_seconds: float = 0.3
    #: Client write numbers (from 1) that commit and then raise.
    ambiguous_client_writes: frozenset[int] = frozenset()

    @property
    def needs_lock_expiry(self) -> bool:
        return any(kind.needs_lock_expiry for kind in self.faults.values())

    def __repr__(self) -> str:
        faults = ", ".join(f"{n}: {k!r}" for n, k in sorted(self.faults.items()))
        return f"FaultPlan({{{faults}}}, hang_seconds={self.hang_seconds})"


@dataclass(frozen=True)
class InjectedEvent:
    """One fault that was injected: the call number, method and kind."""

    call_number: int
    method: str
    kind: FaultKind


class FaultInjectingProvider(StorageProvider):
    """Wraps ``inner`` and injects the faults of ``plan`` into its worker-side calls."""

    def __init__(self, inner: StorageProvider, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.capabilities: ProviderCapabilities = inner.capabilities
        self.injected: list[InjectedEvent] = []
        self.calls = 0
        self.client_writes = 0
        self._mutex = threading.Lock()
        self._dead_tokens: set[str] = set()
        self._partial_when: Callable[[OrchestrationCheckpoint], bool] | None = None

    def send_then_raise_once(self, when: Callable[[OrchestrationCheckpoint], bool]) -> None:
        """Fail the first completion whose checkpoint matches ``when`` after its sends.

        The same as a planned ``SEND_THEN_RAISE``, chosen by what the checkpoint holds rather
        than by call number (for tests whose call order depends on thread timing).
        """
        self._partial_when = when

    # -- plumbing -------------------------------------------------------------------------
    @property
    def changes(self) -> ChangeSignal:
        return self.inner.changes

    def _fault_for(self, method: str) -> FaultKind | None:
        with self._mutex:
            self.calls += 1
            kind = self.plan.faults.get(self.calls)
            if kind is not None:
                self.injected.append(InjectedEvent(self.calls, method, kind))
            return kind

    def _check_alive(self, method: str, token: str) -> None:
        if token in self._dead_tokens:
            raise InjectedFault(f"{method}: the worker that held this work item crashed")

    def _kill(self, token: str) -> None:
        with self._mutex:
            self._dead_tokens.add(token)

    def _call(
        self,
        method: str,
        fn: Callable[[], T],
        token: str | None = None,
        partial: Callable[[], None] | None = None,
    ) -> T:
        if token is not None:
            self._check_alive(method, token)
        kind = self._fault_for(method)
        if kind is None:
            return fn()
        if kind is FaultKind.HANG:
            time.sleep(self.plan.hang_seconds)
            return fn()
        if kind is FaultKind.AMBIGUOUS_COMMIT:
            fn()
            raise AmbiguousCommit(f"injected {kind.value} in {method}: connection reset")
        if kind is FaultKind.SEND_THEN_RAISE and partial is not None:
            partial()
        if kind in (FaultKind.RAISE_AFTER, FaultKind.CRASH_AFTER):
            fn()
        if token is not None and kind in (FaultKind.CRASH_BEFORE, FaultKind.CRASH_AFTER):
            self._kill(token)
        raise InjectedFault(f"injected {kind.value} in {method}")

    def _client_write(self, method: str, fn: Callable[[], T]) -> T:
        with self._mutex:
            self.client_writes += 1
            number = self.client_writes
            ambiguous = number in self.plan.ambiguous_client_writes
            if ambiguous:
                self.injected.append(InjectedEvent(number, method, FaultKind.AMBIGUOUS_COMMIT))
        value = fn()
        if ambiguous:
            raise AmbiguousCommit(f"injected ambiguous_commit in {method}: connection reset")
        return value

    def _lock_call(
        self, method: str, fn: Callable[[], W | None], abandon: Callable[[W], None]
    ) -> W | None:
        """A lock call counts only when it returns a work item (idle polls don't).

        ``RAISE_*``: the item is abandoned and the call fails (as if never locked);
        ``CRASH_*``: the call fails and the item stays locked by a dead worker;
        ``HANG``: the item is returned only after ``hang_seconds``;
        ``AMBIGUOUS_COMMIT``: the claim stays committed, but the call fails.
        """
        item = fn()
        if item is None:
            return None
        kind = self._fault_for(method)
        if kind is None:
            return item
        if kind is FaultKind.HANG:
            time.sleep(self.plan.hang_seconds)
            return item
        if kind in (FaultKind.RAISE_BEFORE, FaultKind.RAISE_AFTER, FaultKind.SEND_THEN_RAISE):
            abandon(item)
        elif kind is FaultKind.AMBIGUOUS_COMMIT:
            raise AmbiguousCommit(f"injected {kind.value} in {method}: connection reset")
        else:
            self._kill(item.lock_token)
        raise InjectedFault(f"injected {kind.value} in {method}")

    # -- lifecycle and client side: passed through ----------------------------------------
    def setup(self) -> None:
        self.inner.setup()

    def close(self) -> None:
        self.inner.close()

    def worker_stopped(self, worker_id: str) -> None:
        self.inner.worker_stopped(worker_id)

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        self._client_write(
            "create_instance", lambda: self.inner.create_instance(record, start, policy)
        )

    def send_message(self, message: OrchestrationMessage) -> None:
        self._client_write("send_message", lambda: self.inner.send_message(message))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self.inner.get_instance(instance_id)

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        return self.inner.query_instances(query)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        return self._client_write(
            "purge_instance", lambda: self.inner.purge_instance(instance_id, only_if_status)
        )

    # -- worker side: counted -------------------------------------------------------------
    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        return self._call("get_history", lambda: self.inner.get_history(instance_id))

    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        return self._lock_call(
            "lock_next_orchestration_work_item",
            lambda: self.inner.lock_next_orchestration_work_item(worker_id, lock_timeout),
            self.inner.abandon_orchestration_work_item,
        )

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._mutex:
            when = self._partial_when
            if when is not None and when(checkpoint):
                self._partial_when = None
                self.injected.append(
                    InjectedEvent(
                        self.calls, "complete_orchestration_work_item", FaultKind.SEND_THEN_RAISE
                    )
                )
            else:
                when = None
        if when is not None:
            self._check_alive("complete_orchestration_work_item", item.lock_token)
            self._send_outbound(checkpoint)
            raise InjectedFault("injected send_then_raise in complete_orchestration_work_item")
        self._call(
            "complete_orchestration_work_item",
            lambda: self.inner.complete_orchestration_work_item(item, checkpoint),
            token=item.lock_token,
            partial=lambda: self._send_outbound(checkpoint),
        )

    def complete_and_claim_activities(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim,
    ) -> list[Exception | None]:
        if self._partial_when is not None:  # one item at a time, to find the one to cut short
            return super().complete_and_claim_activities(batch, claim)
        handed: list[ActivityWorkItem] = []
        return self._claiming_call(
            "complete_and_claim_activities",
            [item.lock_token for item, _ in batch],
            lambda: self.inner.complete_and_claim_activities(
                batch, replace(claim, start=handed.extend)
            ),
            handed,
            lambda: claim.start(handed),
        )

    def complete_activities_and_claim(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim,
    ) -> list[Exception | None]:
        handed: list[OrchestrationWorkItem] = []
        return self._claiming_call(
            "complete_activities_and_claim",
            [item.lock_token for item, _ in batch],
            lambda: self.inner.complete_activities_and_claim(
                batch, replace(claim, start=handed.extend)
            ),
            handed,
            lambda: claim.start(handed),
        )

    def complete_activities_and_steps(
        self, batch: Sequence[ResultStep], claim: ActivityClaim | None = None
    ) -> list[bool | Exception]:
        if self._partial_when is not None:  # no step: the one to cut short runs on its own
            return super().complete_activities_and_steps(batch, claim)
        handed: list[ActivityWorkItem] = []
        inner_claim = None if claim is None else replace(claim, start=handed.extend)
        return self._claiming_call(
            "complete_activities_and_steps",
            [step.activity.lock_token for step in batch],
            lambda: self.inner.complete_activities_and_steps(batch, inner_claim),
            handed,
            lambda: claim.start(handed) if claim is not None else None,
        )

    def _claiming_call(
        self,
        method: str,
        tokens: list[str],
        fn: Callable[[], T],
        handed: Sequence[ActivityWorkItem | OrchestrationWorkItem],
        start: Callable[[], None],
    ) -> T:
        """A batch completion that claims work (eager activities, orchestrations or steps), counted
        as one call: ``fn`` collects what it claimed in ``handed``; ``start`` hands it to the
        worker unless the worker crashed. ``CRASH_*`` kill every item of the batch and every
        claimed one (the claims then wait for their locks to expire)."""
        for token in tokens:
            self._check_alive(method, token)
        kind = self._fault_for(method)
        if kind is None or kind is FaultKind.HANG:
            if kind is FaultKind.HANG:
                time.sleep(self.plan.hang_seconds)
            errors = fn()
            if handed:
                start()
            return errors
        if kind in (FaultKind.RAISE_AFTER, FaultKind.CRASH_AFTER, FaultKind.AMBIGUOUS_COMMIT):
            fn()
        if kind in (FaultKind.CRASH_BEFORE, FaultKind.CRASH_AFTER):
            for token in [*tokens, *(item.lock_token for item in handed)]:
                self._kill(token)
        elif handed:  # the worker lives on: what the commit claimed for it runs
            start()
        if kind is FaultKind.AMBIGUOUS_COMMIT:
            raise AmbiguousCommit(f"injected {kind.value} in {method}: connection reset")
        raise InjectedFault(f"injected {kind.value} in {method}")

    def _send_outbound(self, checkpoint: OrchestrationCheckpoint) -> None:
        for message in checkpoint.messages:
            self.inner.send_message(message)

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        self._call(
            "abandon_orchestration_work_item",
            lambda: self.inner.abandon_orchestration_work_item(item, delay),
            token=item.lock_token,
        )

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        self._call(
            "renew_orchestration_work_item_lock",
            lambda: self.inner.renew_orchestration_work_item_lock(item, lock_timeout),
            token=item.lock_token,
        )

    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        return self._lock_call(
            "lock_next_activity_work_item",
            lambda: self.inner.lock_next_activity_work_item(worker_id, lock_timeout),
            self.inner.abandon_activity_work_item,
        )

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        self._call(
            "complete_activity_work_item",
            lambda: self.inner.complete_activity_work_item(item, result),
            token=item.lock_token,
        )

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        self._call(
            "abandon_activity_work_item",
            lambda: self.inner.abandon_activity_work_item(item, delay),
            token=item.lock_token,
        )

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        self._call(
            "renew_activity_work_item_lock",
            lambda: self.inner.renew_activity_work_item_lock(item, lock_timeout),
            token=item.lock_token,
        )

    # -- dead letters: passed through, never faulted or counted ----------------------------
    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        return self.inner.dead_letter_history(item, reason)

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        return self.inner.dead_letter_activity_task(item, reason, result)

    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        return self.inner.list_dead_letters(instance_id, limit)

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        return self.inner.get_dead_letter(dead_letter_id)

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        return self.inner.retry_dead_letter(dead_letter_id)

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        return self.inner.delete_dead_letter(dead_letter_id)

    def purge_dead_letters(self, created_before: datetime, limit: int = 100) -> int:
        return self.inner.purge_dead_letters(created_before, limit)

    # -- state transfer, backlog and leases: passed through -------------------------------
    def export_state(self) -> Iterator[InstanceSnapshot]:
        return self.inner.export_state()

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        self.inner.import_snapshot(snapshot)

    def active_workers(self) -> list[str] | None:
        return self.inner.active_workers()

    def backlog(self) -> dict[str, int] | None:
        return self.inner.backlog()

    def acquire_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        return self.inner.acquire_lease(name, owner, duration)

    def release_lease(self, name: str, owner: str) -> None:
        self.inner.release_lease(name, owner)

    def __repr__(self) -> str:
        return f"FaultInjectingProvider({self.inner!r}, {self.plan!r})"


def describe_injected(provider: FaultInjectingProvider) -> str:
    """A readable list of the faults injected so far (for failure messages)."""
    if not provider.injected:
        return "no fault was injected"
    return "; ".join(f"call {e.call_number} {e.method}: {e.kind.value}" for e in provider.injected)


def plan_from(faults: Mapping[int, FaultKind] | None = None, **options: Any) -> FaultPlan:
    """A :class:`FaultPlan` from a mapping (shorthand for tests)."""
    return FaultPlan(dict(faults or {}), **options)
