"""Activity work items: the work-item queue, its locks (pop receipts) and results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueMessage
from ostinato.clock import utcnow
from ostinato.errors import WorkItemLockLost
from ostinato.provider import (
    ActivityTask,
    ActivityWorkItem,
    OrchestrationMessage,
    Work,
    new_lock_token,
)

from ostinato_azure._base import _MARGIN, _visibility_seconds
from ostinato_azure._checkpoint import CheckpointWriter
from ostinato_azure._errors import ignoring_lost_message, lost_message
from ostinato_azure._queues import delivered_before, needs_count, split_count, with_count
from ostinato_azure._state import _ActivityLock


class Activities(CheckpointWriter):
    """Hands out and completes activity work items."""

    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        """Receive up to ``min(max_count, 32)`` activity tasks (one storage call).

        Tasks whose (exact, in-process) lock expired while the queue still hides them are
        handed out again first.
        """
        now = utcnow()
        items: list[ActivityWorkItem] = []
        expired: list[_ActivityLock] = []
        with self._mutex:
            for key, old in list(self._activity_locks.items()):
                if old.done or old.queue_expires <= now + _MARGIN:
                    del self._activity_locks[key]
                elif old.expires <= now and len(expired) < max_count:
                    old.done = True
                    old.delivered += 1  # handed out again (the update below tells the queue)
                    expired.append(old)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("lock activity work items"):
            for old in expired:
                # The queue hides it for the old lock's timeout only: extend that to the
                # new lock's, else the new lock would end with the old one.
                try:
                    self._update_activity(old, seconds)
                except ResourceNotFoundError:
                    continue  # another worker received it meanwhile
                now = utcnow()
                old.queue_expires = now + timedelta(seconds=seconds) - _MARGIN
                with self._mutex:
                    items.append(self._activity_item(old, lock_timeout, now, old.pop_receipt))
        with self._mapped_errors("lock activity work items"):
            self.setup()
            for _ in range(4):  # more rounds only while all it received were dropped
                count = min(32, max_count - len(items))
                if count <= 0:
                    break
                received, messages = self._receive_activities(count, seconds, lock_timeout)
                items += received
                if received or not messages:
                    break
            return items

    def _receive_activities(
        self, count: int, seconds: int, lock_timeout: timedelta
    ) -> tuple[list[ActivityWorkItem], int]:
        """One receive of up to ``count`` tasks: the work items and how many messages came
        (dead and undecodable ones are dropped)."""
        items: list[ActivityWorkItem] = []
        self.count("queue.receive")
        messages = list(
            self._activity_queue.receive_messages(
                messages_per_page=count, max_messages=count, visibility_timeout=seconds
            )
        )
        now = utcnow()
        queue_expires = now + timedelta(seconds=seconds) - _MARGIN
        fresh: list[tuple[QueueMessage, ActivityTask, int | None, str]] = []
        for raw in messages:
            try:
                stored, body = split_count(str(raw.content))
                task = ActivityTask.from_json(self._decode_body(body))
            except Exception as exc:  # noqa: BLE001 - an undecodable message: dead letter
                self._poison_activity(raw, f"undecodable message: {exc!r}", None)
                continue
            fresh.append((raw, task, stored, body))
        dead = self._dead_tasks([(task, raw.inserted_on) for raw, task, _, _ in fresh])
        for index, (raw, task, stored, body) in enumerate(fresh):
            if index in dead:
                self.count("queue.delete")  # its instance was purged or replaced
                with ignoring_lost_message():
                    self._activity_queue.delete_message(raw.id, pop_receipt=raw.pop_receipt)
                continue
            held = _ActivityLock(
                str(raw.id),
                str(raw.pop_receipt),
                now,
                queue_expires,
                task,
                int(raw.dequeue_count or 1),
                body=body,
                delivered=delivered_before(stored, int(raw.dequeue_count or 1)) + 1,
                stored=stored,
            )
            if needs_count(held.stored, held.delivered):  # a redelivery: tell the queue
                try:
                    self._update_activity(held, seconds)
                except HttpResponseError as exc:
                    if not lost_message(exc):
                        raise
                    continue  # its visibility lapsed meanwhile: another receiver has it
            with self._mutex:
                items.append(self._activity_item(held, lock_timeout, now, held.pop_receipt))
        return items, len(messages)

    def _activity_item(
        self, held: _ActivityLock, lock_timeout: timedelta, now: datetime, receipt: str
    ) -> ActivityWorkItem:
        lock = _ActivityLock(
            held.message_id,
            receipt,
            min(now + lock_timeout, held.queue_expires),
            held.queue_expires,
            held.task,
            held.dequeue_count,
            body=held.body,
            delivered=held.delivered,
            stored=held.stored,
        )
        self._activity_locks[lock.message_id] = lock
        return ActivityWorkItem(
            task=lock.task,
            lock_token=new_lock_token(),
            locked_until=lock.expires,
            dequeue_count=lock.deliveries,
            provider_data=lock,
        )

    def _update_activity(self, lock: _ActivityLock, seconds: int) -> None:
        """Set a held task's visibility (and its count, if the queue must be told)."""
        self.count("queue.update")
        content = None
        if needs_count(lock.stored, lock.delivered):
            content = with_count(lock.delivered, lock.body)
        receipt = self._activity_queue.update_message(
            lock.message_id,
            pop_receipt=lock.pop_receipt,
            content=content,
            visibility_timeout=seconds,
        )
        lock.pop_receipt = str(receipt.pop_receipt)
        if content is not None:
            lock.stored = lock.delivered

    def _held_activity(self, item: ActivityWorkItem, claim: bool = False) -> _ActivityLock:
        lock = item.provider_data
        with self._mutex:
            current = self._activity_locks.get(getattr(lock, "message_id", ""))
            if (
                not isinstance(lock, _ActivityLock)
                or current is not lock
                or lock.done
                or lock.queue_expires <= utcnow()
            ):
                raise WorkItemLockLost(
                    f"Lock on activity task {item.task.name!r} of "
                    f"'{item.task.instance_id}' was lost"
                )
            lock.done = claim
        return lock

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        """Enqueue the result, then delete the task (a crash between: it runs again)."""
        lock = self._held_activity(item, claim=True)
        with self._mapped_errors("complete an activity work item"):
            try:
                self._send_orchestration_message(result)
            except Exception:
                lock.done = False  # nothing was written: still ours (the core may retry)
                raise
            self.count("queue.delete")
            try:
                self._activity_queue.delete_message(lock.message_id, pop_receipt=lock.pop_receipt)
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise WorkItemLockLost(
                    f"Activity task {item.task.name!r} was taken by another worker"
                ) from exc
            finally:
                lock.done = True
        self.changes.notify(work=Work.of_messages([result]))

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        return self._each(self.complete_activity_work_item, batch)

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        lock = self._held_activity(item, claim=True)
        seconds = 0 if not delay else math.ceil(delay.total_seconds())
        with self._mapped_errors("abandon an activity work item"):
            lock.delivered -= 1  # an abandoned delivery is given back
            try:
                self._update_activity(lock, seconds)
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise WorkItemLockLost("Activity task was taken by another worker") from exc
            finally:
                lock.done = True
        self.changes.notify(work=Work.ACTIVITIES)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        lock = self._held_activity(item)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("renew an activity lock"):
            try:
                self._update_activity(lock, seconds)
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                lock.done = True
                raise WorkItemLockLost("Activity task was taken by another worker") from exc
        now = utcnow()
        lock.queue_expires = now + timedelta(seconds=seconds) - _MARGIN
        lock.expires = now + lock_timeout
        item.locked_until = lock.expires
