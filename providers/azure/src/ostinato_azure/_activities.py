"""Activity work items: the work-item queue, its locks (pop receipts) and results."""

from __future__ import annotations

import math
import time
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

from ostinato_azure._base import _HAND_OVER_WINDOW, _MARGIN, _visibility_seconds
from ostinato_azure._checkpoint import CheckpointWriter
from ostinato_azure._errors import ignoring_lost_message, lost_message
from ostinato_azure._queues import delivered_before, needs_count, split_count, with_count
from ostinato_azure._state import _ActivityLock, _Received


def _storable(result: OrchestrationMessage) -> bool:
    """Whether ``result`` can be stored: a lone surrogate cannot (sent, it raises, and the
    core fails the task; handed over, it would fail the step that records it instead)."""
    try:
        result.to_json().encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Activities(CheckpointWriter):
    """Hands out and completes activity work items."""

    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        """Receive up to ``min(max_count, 32)`` activity tasks (one storage call).

        Tasks whose (exact, in-process) lock expired while the queue still hides them are
        handed out again first, then tasks this process's steps sent held for it (no receive).
        """
        seconds = _visibility_seconds(lock_timeout)
        with self._mutex:
            self._activity_polled = time.monotonic()
            self._activity_seconds = seconds
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
        local = self._take_local_tasks(max_count - len(items), lock_timeout)
        items += local
        if local:
            self._activity_pacer.busy()
        if not self._activity_pacer.due(None):
            return items
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

    def _take_local_tasks(self, count: int, lock_timeout: timedelta) -> list[ActivityWorkItem]:
        """Hand out up to ``count`` tasks held for this process (see ``_hold_task``).

        One whose queue visibility is about to lapse is left to the queue (any worker
        receives it there; it was never handed out, so its count stays right).
        """
        items: list[ActivityWorkItem] = []
        now = utcnow()
        with self._mutex:
            while self._local_tasks and len(items) < count:
                held = self._local_tasks.popleft()
                if held.queue_expires <= now + _HAND_OVER_WINDOW:
                    continue
                held.delivered = 1
                items.append(self._activity_item(held, lock_timeout, now, held.pop_receipt))
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
        self._activity_pacer.received(None, len(messages), len(messages) >= count)
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
        """Enqueue the result, then delete the task (a crash between: it runs again).

        When this process receives the instance's control queue and this was the task's first
        delivery, the result is handed over in-process instead (:meth:`_hand_over`): no
        storage call.
        """
        lock = self._held_activity(item, claim=True)
        if self._hand_over(lock, result):
            self.changes.notify(work=Work.of_messages([result]))
            return
        with self._mapped_errors("complete an activity work item"):
            self._answer_task(lock, item.task.name, result)
        self.changes.notify(work=Work.of_messages([result]))

    def _answer_task(self, lock: _ActivityLock, name: str, result: OrchestrationMessage) -> None:
        """Send the task's ``result``, then delete the task (a crash between: it runs again).

        The result of a task delivered before carries one delivery: that first delivery may
        have handed its result over in-process (:meth:`_hand_over`) to a step that killed the
        process, and that step counts against the result, not the activity.
        """
        try:
            self._send_orchestration_message(result, 1 if lock.delivered > 1 else None)
        except Exception:
            lock.done = False  # nothing was written: still ours (the core may retry)
            raise
        self.count("queue.delete")
        try:
            self._activity_queue.delete_message(lock.message_id, pop_receipt=lock.pop_receipt)
        except HttpResponseError as exc:
            if not lost_message(exc):
                raise
            raise WorkItemLockLost(f"Activity task {name!r} was taken by another worker") from exc
        finally:
            lock.done = True

    def _hand_over(self, lock: _ActivityLock, result: OrchestrationMessage) -> bool:
        """Buffer ``result`` for its instance's next work item, held as the task it answers.

        Only while this process receives the instance's control queue (it would receive the
        result there), the task stays hidden a while, and this was its first delivery. A task
        delivered again may be one whose result's step keeps killing its process: its result
        goes through the control queue, where the result's own deliveries are counted (held
        as the task, they would count against the activity instead, which succeeded).

        The task is the result's durable form: it stays on the queue, invisible (extended
        like any held message), until the step that consumes the result commits and deletes
        it, exactly as it deletes a consumed control message. If this process dies first, the
        task becomes visible and runs again (at least once, as always); if the step is
        abandoned or loses its lock, or the partition is handed over, the result is sent to
        the control queue then (see ``_let_go``).
        """
        if (
            result.visible_at is not None
            or lock.delivered > 1
            or lock.queue_expires - utcnow() < _HAND_OVER_WINDOW
            or not _storable(result)
        ):
            return False
        queue = self._queue_index(result.instance_id)
        with self._mutex:
            if not self._workers:
                return False
            partitions = self._partitions
            if partitions is None and self.partition_leases:
                return False
        if partitions is not None and not partitions.takes(queue):
            return False
        received = _Received(
            queue, lock.message_id, lock.pop_receipt, result, 1, lock.queue_expires
        )
        received.instance_id = result.instance_id
        received.on_task_queue = True
        with self._mutex:
            self._activity_locks.pop(lock.message_id, None)
            self._buffer.setdefault(result.instance_id, {})[lock.message_id] = received
            self._ready[result.instance_id] = None
        return True

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
