"""A provider wrapper that knows when nothing can run until the clock moves.

:class:`SkippingProvider` passes every call to a provider that reads a :class:`VirtualClock`
and watches the traffic: which work items are held, whether the last polls of both kinds found
everything there was since the last write, and the times at which delayed messages (timers,
retry delays, scheduled starts, deferred and abandoned work) become visible. From that it
answers :meth:`idle` and :meth:`next_wakeup`, which the time-skipping environment uses to jump
the clock.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ostinato.errors import WorkItemLockLost
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityWorkItem,
    ChangeSignal,
    DeadLetter,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus
from ostinato.testing.clock import VirtualClock

_ORCHESTRATIONS = "orchestrations"
_ACTIVITIES = "activities"


class SkippingProvider(StorageProvider):
    """Wraps ``inner`` (whose ``now()`` is ``clock``'s) and tracks whether work is pending."""

    def __init__(self, inner: StorageProvider, clock: VirtualClock) -> None:
        self.inner = inner
        self.clock = clock
        self.capabilities = inner.capabilities
        self._mutex = threading.Lock()
        #: Per kind of work (orchestrations, activities): moves before every write that may
        #: add work of that kind (and after it, for writes made while no work item is held:
        #: a client's), and before every clock move.
        self._versions = {_ORCHESTRATIONS: 0, _ACTIVITIES: 0}
        #: Per kind: the version before the last poll that found all there was.
        self._drained_at = {_ORCHESTRATIONS: -1, _ACTIVITIES: -1}
        self._held: dict[int, object] = {}
        self._wakeups: list[datetime] = []

    # -- what the environment asks ------------------------------------------------------------
    @property
    def changes(self) -> ChangeSignal:
        return self.inner.changes

    def now(self) -> datetime:  # type: ignore[override]
        return self.clock.now()

    def idle(self) -> bool:
        """True if no work item is held and the last polls of both kinds, made after the last
        write, found all there was: nothing can run until the clock moves or a client acts."""
        with self._mutex:
            return not self._held and self._drained_at == self._versions

    def next_wakeup(self) -> datetime | None:
        """The earliest time after now at which a delayed message or task becomes visible."""
        now = self.clock.now()
        with self._mutex:
            while self._wakeups and self._wakeups[0] <= now:
                heapq.heappop(self._wakeups)
            return self._wakeups[0] if self._wakeups else None

    def move_clock(self, when: datetime) -> None:
        """Move the clock to ``when`` (if it is not there yet) and wake the worker to look
        again."""
        self._write(orchestrations=True, activities=True)
        with self._mutex:
            if when > self.clock.now():
                self.clock.move_to(when)
        self.inner.changes.notify()

    # -- bookkeeping ----------------------------------------------------------------------------
    def _write(
        self,
        *,
        orchestrations: bool = False,
        activities: bool = False,
        visible_at: Iterable[datetime | None] = (),
    ) -> None:
        now = self.clock.now()
        with self._mutex:
            if orchestrations:
                self._versions[_ORCHESTRATIONS] += 1
            if activities:
                self._versions[_ACTIVITIES] += 1
            for when in visible_at:
                if when is not None and when > now:
                    heapq.heappush(self._wakeups, when)

    def _delay(self, delay: timedelta | None) -> list[datetime | None]:
        return [self.clock.now() + delay] if delay else []

    def _polled(self, items: Sequence[object], max_count: int, version: int, kind: str) -> None:
        with self._mutex:
            for item in items:
                self._held[id(item)] = item
            if len(items) < max_count:
                self._drained_at[kind] = version

    def _released(self, item: object) -> None:
        with self._mutex:
            self._held.pop(id(item), None)

    def _settled(self, items: Sequence[object], errors: Sequence[Exception | None]) -> None:
        for item, error in zip(items, errors, strict=True):
            if error is None or isinstance(error, WorkItemLockLost):
                self._released(item)

    # -- lifecycle and client side --------------------------------------------------------------
    def setup(self) -> None:
        self.inner.setup()

    def close(self) -> None:
        self.inner.close()

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        # Before and after: a poll that ran in between may have missed the write.
        self._write(orchestrations=True, visible_at=[start.visible_at])
        self.inner.create_instance(record, start, policy)
        self._write(orchestrations=True)

    def send_message(self, message: OrchestrationMessage) -> None:
        self._write(orchestrations=True, visible_at=[message.visible_at])
        self.inner.send_message(message)
        self._write(orchestrations=True)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self.inner.get_instance(instance_id)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        return self.inner.get_history(instance_id)

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        return self.inner.query_instances(query)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        return self.inner.purge_instance(instance_id, only_if_status)

    # -- orchestration work items ---------------------------------------------------------------
    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        version = self._versions[_ORCHESTRATIONS]
        items = self.inner.lock_next_orchestration_work_items(worker_id, lock_timeout, max_count)
        self._polled(items, max_count, version, _ORCHESTRATIONS)
        return items

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        [error] = self.complete_orchestration_work_items([(item, checkpoint)])
        if error is not None:
            raise error

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        # Releasing an instance may make messages that came while it was locked claimable,
        # so every completion counts as a write that may add orchestration work.
        self._write(
            orchestrations=True,
            activities=any(checkpoint.activity_tasks for _, checkpoint in batch),
            visible_at=(m.visible_at for _, checkpoint in batch for m in checkpoint.messages),
        )
        errors = self.inner.complete_orchestration_work_items(batch)
        self._settled([item for item, _ in batch], errors)
        return errors

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        self._write(orchestrations=True, visible_at=self._delay(delay))
        try:
            self.inner.abandon_orchestration_work_item(item, delay)
        finally:
            self._released(item)

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        self.inner.renew_orchestration_work_item_lock(item, lock_timeout)

    # -- activity work items --------------------------------------------------------------------
    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        version = self._versions[_ACTIVITIES]
        items = self.inner.lock_next_activity_work_items(worker_id, lock_timeout, max_count)
        self._polled(items, max_count, version, _ACTIVITIES)
        return items

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        [error] = self.complete_activity_work_items([(item, result)])
        if error is not None:
            raise error

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        self._write(orchestrations=True, visible_at=(result.visible_at for _, result in batch))
        errors = self.inner.complete_activity_work_items(batch)
        self._settled([item for item, _ in batch], errors)
        return errors

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        self._write(activities=True, visible_at=self._delay(delay))
        try:
            self.inner.abandon_activity_work_item(item, delay)
        finally:
            self._released(item)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        self.inner.renew_activity_work_item_lock(item, lock_timeout)

    # -- dead letters (the contract's defaults would hide the inner provider's) ---------------
    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        return self.inner.dead_letter_history(item, reason)

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        self._write(orchestrations=True, visible_at=[result.visible_at])
        try:
            return self.inner.dead_letter_activity_task(item, reason, result)
        finally:
            self._released(item)

    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        return self.inner.list_dead_letters(instance_id, limit)

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        return self.inner.get_dead_letter(dead_letter_id)

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        self._write(orchestrations=True, activities=True)
        return self.inner.retry_dead_letter(dead_letter_id)

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        return self.inner.delete_dead_letter(dead_letter_id)

    def purge_dead_letters(self, created_before: datetime, limit: int = 100) -> int:
        return self.inner.purge_dead_letters(created_before, limit)

    def __getattr__(self, name: str) -> Any:
        # Provider-specific extras (statistics, ...) pass straight through.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


__all__ = ["SkippingProvider"]
