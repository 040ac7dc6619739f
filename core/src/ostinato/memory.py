"""The in-memory provider: thread-safe, with lock expiry, for unit tests and experiments.

Everything lives in this process and is gone when it exits; it never stands in for a real
back end in a provider's tests. Registered as provider ``memory``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ostinato import history
from ostinato.errors import InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityClaim,
    ActivityTask,
    ActivityWorkItem,
    DeadLetter,
    DeadLetterKind,
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
    Work,
    new_lock_token,
)
from ostinato.status import OrchestrationStatus


@dataclass
class _Lock:
    token: str
    expires: datetime
    message_seqs: frozenset[int] = frozenset()
    owner: str = ""


@dataclass
class _Activity:
    task: ActivityTask
    visible_at: datetime | None = None
    lock: _Lock | None = None
    dequeue_count: int = 0


@dataclass
class _Inbox:
    messages: dict[int, OrchestrationMessage] = field(default_factory=dict)
    lock: _Lock | None = None
    dequeue_count: int = 0


class InMemoryProvider(StorageProvider):
    """A complete provider held in Python dictionaries behind one lock."""

    capabilities = ProviderCapabilities(
        transactional_checkpoints=True,
        max_payload_bytes=None,
        multi_process=False,
        eager_activities=True,
        eager_orchestrations=True,
        eager_steps=True,
    )

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._seq = itertools.count(1)
        self._instances: dict[str, InstanceRecord] = {}
        self._history: dict[str, list[HistoryEvent]] = {}
        self._inboxes: dict[str, _Inbox] = {}
        self._ready: OrderedDict[str, None] = OrderedDict()
        # (time, seq, key): a delayed message becoming visible or a lock expiring.
        self._orch_wakeups: list[tuple[datetime, int, str]] = []
        self._activities: dict[int, _Activity] = {}
        self._ready_activities: OrderedDict[int, None] = OrderedDict()
        self._activity_wakeups: list[tuple[datetime, int, int]] = []
        self._dead_letters: dict[str, DeadLetter] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}

    # -- dead letters (its messages always decode; a history can be moved aside on request) --
    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        with self._mutex:
            self._held_inbox(item)
            events = self._history.pop(item.instance_id, [])
            if not events:
                return None
            body = json.dumps([history.dumps(e) for e in events], ensure_ascii=False)
            letter = DeadLetter(
                str(next(self._seq)),
                DeadLetterKind.HISTORY,
                item.instance_id,
                body,
                reason,
                self.now(),
            )
            self._dead_letters[letter.id] = letter
            return letter

    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        with self._mutex:
            letters = [
                d
                for d in self._dead_letters.values()
                if instance_id is None or d.instance_id == instance_id
            ]
        return letters[:limit]

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        with self._mutex:
            return self._dead_letters.get(dead_letter_id)

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        with self._mutex:
            letter = self._dead_letters.get(dead_letter_id)
            if letter is None:
                return False
            if letter.kind is DeadLetterKind.HISTORY:
                texts = json.loads(letter.body)
                self._history[letter.instance_id] = [history.loads(t) for t in texts]
            elif letter.kind is DeadLetterKind.ACTIVITY_TASK:
                self._add_activity(ActivityTask.from_json(letter.body))
            else:
                self._enqueue(OrchestrationMessage.from_json(letter.body))
            del self._dead_letters[dead_letter_id]
        self.changes.notify(work=Work.ORCHESTRATIONS | Work.ACTIVITIES)
        return True

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        with self._mutex:
            return self._dead_letters.pop(dead_letter_id, None) is not None

    def __repr__(self) -> str:
        return f"InMemoryProvider(this process's memory, {len(self._instances)} instances)"

    # -- client side ----------------------------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        with self._mutex:
            existing = self._instances.get(record.instance_id)
            if existing is not None:
                if existing.runtime_status not in policy.replaceable_statuses:
                    raise InstanceAlreadyExistsError(record.instance_id, existing.runtime_status)
                self._history.pop(record.instance_id, None)
                inbox = self._inboxes.get(record.instance_id)
                if inbox is not None:
                    inbox.messages.clear()
                    inbox.lock = None  # a worker still holding the old run loses its lock
                    inbox.dequeue_count = 0
            self._instances[record.instance_id] = record
            self._enqueue(start)
        self.changes.notify(work=Work.of_messages([start]))

    def send_message(self, message: OrchestrationMessage) -> None:
        with self._mutex:
            self._enqueue(message)
        self.changes.notify(work=Work.of_messages([message]))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._mutex:
            return self._instances.get(instance_id)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._mutex:
            return list(self._history.get(instance_id, ()))

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        with self._mutex:
            after = query.continuation_token
            matching = sorted(
                (r for r in self._instances.values() if query.matches(r)),
                key=lambda r: r.instance_id,
            )
        if after is not None:
            matching = [r for r in matching if r.instance_id > after]
        page = matching[: query.page_size]
        token = page[-1].instance_id if len(matching) > query.page_size else None
        return Page(items=page, continuation_token=token)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        with self._mutex:
            record = self._instances.get(instance_id)
            if record is None or record.runtime_status not in only_if_status:
                return False
            del self._instances[instance_id]
            self._history.pop(instance_id, None)
            self._inboxes.pop(instance_id, None)
            self._ready.pop(instance_id, None)
            for seq in [
                s for s, a in self._activities.items() if a.task.instance_id == instance_id
            ]:
                del self._activities[seq]
                self._ready_activities.pop(seq, None)
            for letter_id in [
                k for k, d in self._dead_letters.items() if d.instance_id == instance_id
            ]:
                del self._dead_letters[letter_id]
            return True

    # -- orchestration work items ---------------------------------------------------------
    def _enqueue(self, message: OrchestrationMessage) -> None:
        inbox = self._inboxes.setdefault(message.instance_id, _Inbox())
        seq = next(self._seq)
        inbox.messages[seq] = message
        if message.visible_at is not None and message.visible_at > self.now():
            heapq.heappush(self._orch_wakeups, (message.visible_at, seq, message.instance_id))
        elif inbox.lock is None:
            self._ready[message.instance_id] = None

    def _visible(self, inbox: _Inbox, now: datetime) -> list[int]:
        return [
            seq for seq, m in inbox.messages.items() if m.visible_at is None or m.visible_at <= now
        ]

    def _wake_orchestrations(self, now: datetime) -> None:
        while self._orch_wakeups and self._orch_wakeups[0][0] <= now:
            _, _, instance_id = heapq.heappop(self._orch_wakeups)
            inbox = self._inboxes.get(instance_id)
            if inbox is None:
                continue
            if inbox.lock is not None and inbox.lock.expires <= now:
                inbox.lock = None
            if inbox.lock is None and self._visible(inbox, now):
                self._ready[instance_id] = None

    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        now = self.now()
        with self._mutex:
            self._wake_orchestrations(now)
            while self._ready:
                instance_id, _ = self._ready.popitem(last=False)
                inbox = self._inboxes.get(instance_id)
                if inbox is None or inbox.lock is not None:
                    continue
                item = self._lock_inbox(instance_id, inbox, worker_id, lock_timeout, now)
                if item is not None:
                    return item
        return None

    def _lock_inbox(
        self,
        instance_id: str,
        inbox: _Inbox,
        worker_id: str,
        lock_timeout: timedelta,
        now: datetime,
    ) -> OrchestrationWorkItem | None:
        """Lock an unlocked ``inbox``'s visible messages (call with the mutex held)."""
        seqs = self._visible(inbox, now)
        if not seqs:
            return None
        lock = _Lock(new_lock_token(), now + lock_timeout, frozenset(seqs), worker_id)
        inbox.lock = lock
        inbox.dequeue_count += 1
        heapq.heappush(self._orch_wakeups, (lock.expires, next(self._seq), instance_id))
        return OrchestrationWorkItem(
            instance_id=instance_id,
            messages=[inbox.messages[s] for s in seqs],
            instance=self._instances.get(instance_id),
            lock_token=lock.token,
            locked_until=lock.expires,
            dequeue_count=inbox.dequeue_count,
        )

    def _held_inbox(self, item: OrchestrationWorkItem) -> _Inbox:
        inbox = self._inboxes.get(item.instance_id)
        if (
            inbox is None
            or inbox.lock is None
            or inbox.lock.token != item.lock_token
            or inbox.lock.expires <= self.now()
        ):
            raise WorkItemLockLost(f"Lock on instance '{item.instance_id}' was lost")
        return inbox

    def _release(self, instance_id: str, inbox: _Inbox) -> None:
        inbox.lock = None
        if self._visible(inbox, self.now()):
            self._ready[instance_id] = None
        else:
            inbox.dequeue_count = 0
            for m in inbox.messages.values():
                if m.visible_at is not None:
                    heapq.heappush(self._orch_wakeups, (m.visible_at, next(self._seq), instance_id))

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._mutex:
            self._complete(item, checkpoint)
        self.changes.notify(work=Work.of_checkpoints([checkpoint]))

    def complete_and_claim_activities(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim,
    ) -> list[Exception | None]:
        errors: list[Exception | None] = []
        claimed: list[ActivityWorkItem] = []
        enqueued = False
        with self._mutex:
            for item, checkpoint in batch:
                try:
                    enqueued |= self._complete(item, checkpoint, claim, claimed)
                    errors.append(None)
                except WorkItemLockLost as exc:
                    errors.append(exc)
        work = Work.of_checkpoints(cp for (_, cp), e in zip(batch, errors, strict=True) if not e)
        if not enqueued:  # every task claimed: no activity work for pollers
            work &= ~Work.ACTIVITIES
        self.changes.notify(work=work)
        if claimed:
            claim.start(claimed)
        return errors

    def _complete(
        self,
        item: OrchestrationWorkItem,
        checkpoint: OrchestrationCheckpoint,
        claim: ActivityClaim | None = None,
        claimed: list[ActivityWorkItem] | None = None,
    ) -> bool:
        """Apply ``checkpoint`` (call with the mutex held), claiming tasks into ``claimed``
        while it has room for ``claim``; whether any task was enqueued unclaimed."""
        inbox = self._held_inbox(item)
        assert inbox.lock is not None
        for seq in inbox.lock.message_seqs:
            inbox.messages.pop(seq, None)
        enqueued = self._apply(item.instance_id, checkpoint, claim, claimed)
        inbox.dequeue_count = 0  # delivered and completed: the next delivery is a first
        self._release(item.instance_id, inbox)
        return enqueued

    def _apply(
        self,
        instance_id: str,
        checkpoint: OrchestrationCheckpoint,
        claim: ActivityClaim | None,
        claimed: list[ActivityWorkItem] | None,
    ) -> bool:
        """Write ``checkpoint``'s history, record, tasks and messages (call with the mutex
        held), claiming tasks as :meth:`_complete` does; whether any task went unclaimed."""
        if checkpoint.reset_history:
            self._history[instance_id] = []
        if checkpoint.new_history:
            self._history.setdefault(instance_id, []).extend(checkpoint.new_history)
        if checkpoint.instance is not None:
            self._instances[instance_id] = checkpoint.instance
        enqueued = False
        for task in checkpoint.activity_tasks:
            if claim is not None and claimed is not None and len(claimed) < claim.max_count:
                claimed.append(self._add_claimed_activity(task, claim))
            else:
                self._add_activity(task)
                enqueued = True
        for message in checkpoint.messages:
            self._enqueue(message)
        return enqueued

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._mutex:
            inbox = self._held_inbox(item)
            inbox.dequeue_count -= 1  # an abandoned delivery is given back, not counted
            if delay:
                inbox.lock = _Lock(new_lock_token(), self.now() + delay)
                heapq.heappush(
                    self._orch_wakeups, (inbox.lock.expires, next(self._seq), item.instance_id)
                )
            else:
                self._release(item.instance_id, inbox)
        self.changes.notify(work=Work.TIMERS if delay else Work.ORCHESTRATIONS)

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._mutex:
            inbox = self._held_inbox(item)
            assert inbox.lock is not None
            inbox.lock.expires = self.now() + lock_timeout
            item.locked_until = inbox.lock.expires
            heapq.heappush(
                self._orch_wakeups, (inbox.lock.expires, next(self._seq), item.instance_id)
            )

    # -- activity work items --------------------------------------------------------------
    def _add_activity(self, task: ActivityTask, visible_at: datetime | None = None) -> None:
        seq = next(self._seq)
        self._activities[seq] = _Activity(task, visible_at)
        self._ready_activities[seq] = None

    def _add_claimed_activity(self, task: ActivityTask, claim: ActivityClaim) -> ActivityWorkItem:
        seq = next(self._seq)
        lock = _Lock(new_lock_token(), self.now() + claim.lock_timeout, owner=claim.worker_id)
        self._activities[seq] = _Activity(task, None, lock, dequeue_count=1)
        heapq.heappush(self._activity_wakeups, (lock.expires, seq, seq))
        return ActivityWorkItem(task, lock.token, lock.expires, dequeue_count=1, provider_data=seq)

    def _wake_activities(self, now: datetime) -> None:
        while self._activity_wakeups and self._activity_wakeups[0][0] <= now:
            _, _, seq = heapq.heappop(self._activity_wakeups)
            activity = self._activities.get(seq)
            if activity is None:
                continue
            if activity.lock is not None and activity.lock.expires <= now:
                activity.lock = None
            if activity.lock is None:
                self._ready_activities[seq] = None

    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        now = self.now()
        with self._mutex:
            self._wake_activities(now)
            while self._ready_activities:
                seq, _ = self._ready_activities.popitem(last=False)
                activity = self._activities.get(seq)
                if activity is None or activity.lock is not None:
                    continue
                if activity.visible_at is not None and activity.visible_at > now:
                    heapq.heappush(self._activity_wakeups, (activity.visible_at, seq, seq))
                    continue
                activity.lock = _Lock(new_lock_token(), now + lock_timeout, owner=worker_id)
                activity.dequeue_count += 1
                heapq.heappush(self._activity_wakeups, (activity.lock.expires, seq, seq))
                return ActivityWorkItem(
                    task=activity.task,
                    lock_token=activity.lock.token,
                    locked_until=activity.lock.expires,
                    dequeue_count=activity.dequeue_count,
                    provider_data=seq,
                )
        return None

    def _held_activity(self, item: ActivityWorkItem) -> _Activity:
        activity = self._activities.get(item.provider_data)
        if (
            activity is None
            or activity.lock is None
            or activity.lock.token != item.lock_token
            or activity.lock.expires <= self.now()
        ):
            raise WorkItemLockLost(
                f"Lock on activity task {item.task.name!r} of '{item.task.instance_id}' was lost"
            )
        return activity

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        with self._mutex:
            self._held_activity(item)
            del self._activities[item.provider_data]
            self._enqueue(result)
        self.changes.notify(work=Work.of_messages([result]))

    def complete_activities_and_claim(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim,
    ) -> list[Exception | None]:
        errors: list[Exception | None] = []
        claimed: list[OrchestrationWorkItem] = []
        now = self.now()
        with self._mutex:
            for item, result in batch:
                try:
                    self._held_activity(item)
                except WorkItemLockLost as exc:
                    errors.append(exc)
                    continue
                del self._activities[item.provider_data]
                self._enqueue(result)
                errors.append(None)
            for instance_id in dict.fromkeys(result.instance_id for _, result in batch):
                inbox = self._inboxes.get(instance_id)
                if len(claimed) >= claim.max_count or inbox is None:
                    continue
                if inbox.lock is not None and inbox.lock.expires > now:
                    continue  # held by a work item
                inbox.lock = None
                taken = self._lock_inbox(
                    instance_id, inbox, claim.worker_id, claim.lock_timeout, now
                )
                if taken is not None:
                    self._ready.pop(instance_id, None)
                    claimed.append(taken)
        unclaimed = [r for (_, r), e in zip(batch, errors, strict=True) if e is None]
        if claimed:
            held = {work.instance_id for work in claimed}
            unclaimed = [r for r in unclaimed if r.instance_id not in held]
        self.changes.notify(work=Work.of_messages(unclaimed))
        if claimed:
            claim.start(claimed)
        return errors

    def complete_activities_and_steps(
        self, batch: Sequence[ResultStep], claim: ActivityClaim | None = None
    ) -> list[bool | Exception]:
        outcomes: list[bool | Exception] = []
        claimed: list[ActivityWorkItem] = []
        stepped: set[str] = set()
        enqueued = False
        now = self.now()
        with self._mutex:
            for step in batch:
                try:
                    self._held_activity(step.activity)
                except WorkItemLockLost as exc:
                    outcomes.append(exc)
                    continue
                del self._activities[step.activity.provider_data]
                instance_id = step.result.instance_id
                if instance_id in stepped or not self._step_stands(step, now):
                    self._enqueue(step.result)
                    outcomes.append(False)
                    continue
                # It stands: a lock holds visible messages, so there is none to release and
                # no delivery to reset; the step's own messages make the instance ready.
                stepped.add(instance_id)
                enqueued |= self._apply(instance_id, step.checkpoint, claim, claimed)
                outcomes.append(True)
        applied = [s.checkpoint for s, o in zip(batch, outcomes, strict=True) if o is True]
        work = Work.of_checkpoints(applied)
        if not enqueued:  # every task claimed: no activity work for pollers
            work &= ~Work.ACTIVITIES
        work |= Work.of_messages(
            s.result for s, o in zip(batch, outcomes, strict=True) if o is False
        )
        self.changes.notify(work=work)
        if claim is not None and claimed:
            claim.start(claimed)
        return outcomes

    def _step_stands(self, step: ResultStep, now: datetime) -> bool:
        """Whether ``step``'s instance is still as its step saw it: the record it was computed
        from, no live lock and no visible message (call with the mutex held)."""
        record = self._instances.get(step.result.instance_id)
        if (
            record is None
            or record.execution_id != step.basis.execution_id
            or record.history_size != step.basis.history_size
        ):
            return False
        inbox = self._inboxes.get(step.result.instance_id)
        if inbox is None:
            return True
        if inbox.lock is not None and inbox.lock.expires > now:
            return False
        return not self._visible(inbox, now)

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        with self._mutex:
            self._held_activity(item)
            del self._activities[item.provider_data]
            letter = DeadLetter(
                str(next(self._seq)),
                DeadLetterKind.ACTIVITY_TASK,
                item.task.instance_id,
                item.task.to_json(),
                reason,
                self.now(),
            )
            self._dead_letters[letter.id] = letter
            self._enqueue(result)
        self.changes.notify(work=Work.of_messages([result]))
        return letter

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._mutex:
            activity = self._held_activity(item)
            activity.lock = None
            activity.dequeue_count -= 1  # an abandoned delivery is given back, not counted
            if delay:
                activity.visible_at = self.now() + delay
                heapq.heappush(
                    self._activity_wakeups,
                    (activity.visible_at, item.provider_data, item.provider_data),
                )
            else:
                activity.visible_at = None
                self._ready_activities[item.provider_data] = None
        self.changes.notify(work=Work.ACTIVITIES)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._mutex:
            activity = self._held_activity(item)
            assert activity.lock is not None
            activity.lock.expires = self.now() + lock_timeout
            item.locked_until = activity.lock.expires
            heapq.heappush(
                self._activity_wakeups,
                (activity.lock.expires, item.provider_data, item.provider_data),
            )

    # -- state transfer -------------------------------------------------------------------
    def _tasks_by_instance(self) -> dict[str, list[ActivityTask]]:
        tasks: dict[str, list[ActivityTask]] = {}
        for _, activity in sorted(self._activities.items()):
            tasks.setdefault(activity.task.instance_id, []).append(activity.task)
        return tasks

    def export_state(self) -> Iterator[InstanceSnapshot]:
        after: str | None = None
        while page := self._export_page(after, 100):
            yield from page
            after = page[-1].instance_id

    def _export_page(self, after: str | None, limit: int) -> list[InstanceSnapshot]:
        with self._mutex:
            tasks = self._tasks_by_instance()
            ids = set(self._instances) | set(tasks)
            ids |= {iid for iid, inbox in self._inboxes.items() if inbox.messages}
            chosen = sorted(iid for iid in ids if after is None or iid > after)[:limit]
            return [
                InstanceSnapshot(
                    instance_id=iid,
                    record=self._instances.get(iid),
                    history=list(self._history.get(iid, ())),
                    messages=[
                        m for _, m in sorted(self._inboxes.get(iid, _Inbox()).messages.items())
                    ],
                    activity_tasks=tasks.get(iid, []),
                )
                for iid in chosen
            ]

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        iid = snapshot.instance_id
        with self._mutex:
            existing = self._instances.get(iid)
            inbox = self._inboxes.get(iid)
            if (
                existing is not None
                or (inbox is not None and inbox.messages)
                or any(a.task.instance_id == iid for a in self._activities.values())
            ):
                raise InstanceAlreadyExistsError(
                    iid, None if existing is None else existing.runtime_status
                )
            if snapshot.record is not None:
                self._instances[iid] = snapshot.record
            if snapshot.history:
                self._history[iid] = list(snapshot.history)
            for message in snapshot.messages:
                self._enqueue(message)
            for task in snapshot.activity_tasks:
                self._add_activity(task)
        self.changes.notify()

    def active_workers(self) -> list[str]:
        now = self.now()
        with self._mutex:
            locks = [i.lock for i in self._inboxes.values()]
            locks += [a.lock for a in self._activities.values()]
        return sorted({lock.owner for lock in locks if lock and lock.owner and lock.expires > now})

    # -- leases -----------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        now = self.now()
        with self._mutex:
            holder = self._leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._leases[name] = (owner, now + duration)
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._mutex:
            if self._leases.get(name, ("",))[0] == owner:
                del self._leases[name]

    def backlog(self) -> dict[str, int]:
        now = self.now()
        with self._mutex:
            orchestrations = sum(
                1
                for inbox in self._inboxes.values()
                if (inbox.lock is None or inbox.lock.expires <= now) and self._visible(inbox, now)
            )
            activities = sum(
                1
                for a in self._activities.values()
                if (a.lock is None or a.lock.expires <= now)
                and (a.visible_at is None or a.visible_at <= now)
            )
        return {"orchestrations": orchestrations, "activities": activities}


__all__ = [
    "InMemoryProvider",
]
