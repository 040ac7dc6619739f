"""Messages and locks: control-queue receives, the per-instance buffer, work-item locks,
visibility (pop receipts) and the partition leases that decide which queues to receive."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError, HttpResponseError
from ostinato.clock import utcnow
from ostinato.errors import WorkItemLockLost
from ostinato.history import ExecutionStarted
from ostinato.provider import (
    InstanceRecord,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Work,
    new_lock_token,
)
from ostinato.status import OrchestrationStatus

from ostinato_azure._base import (
    _COMMIT_WINDOW,
    _MARGIN,
    _START_WAIT,
    _START_WAIT_MAX,
    _visibility_seconds,
    log,
)
from ostinato_azure._errors import lost_message
from ostinato_azure._partitions import PartitionManager
from ostinato_azure._poison import DeadLetters, instance_named_in
from ostinato_azure._queues import delivered_before, split_count
from ostinato_azure._state import _OrchLock, _Received

#: Abandon delays shorter than this are kept in-process (queue visibility is whole seconds).
_HELD_DELAY = timedelta(seconds=2)
#: How long messages wait for a next execution's start before they are handed out anyway.
_START_HOLD = timedelta(seconds=3)


class Inbox(DeadLetters):
    """Received control-queue messages and the locks on them."""

    def _ensure_partitions(self, worker_id: str) -> PartitionManager | None:
        with self._mutex:
            self._workers.add(worker_id)
        if not self.partition_leases:
            return None
        if self._partitions is None:
            with self._mutex:
                if self._partitions is None:
                    self.setup()
                    manager = PartitionManager(
                        self._partitions_table,
                        self.partition_count,
                        self._worker_id or worker_id,
                        self.lease_duration,
                        self.count,
                        self._in_flight_of,
                        self._drain,
                    )
                    manager.start()
                    self._partitions = manager
        return self._partitions

    def _in_flight_of(self, queue: int) -> int:
        with self._mutex:
            return self._in_flight[queue]

    def _drain(self, queue: int) -> None:
        """A lease is being handed over: put back what we buffered from that queue."""
        self._put_back_buffered(queue)

    def _release_partitions(self) -> None:
        partitions, self._partitions = self._partitions, None
        self._release_local_tasks()
        if partitions is not None:
            with contextlib.suppress(Exception):
                self._put_back_buffered(None)
            partitions.stop(release=True)

    def stop_without_release(self) -> None:
        """Stop renewing leases without releasing them (tests: simulate a dead worker)."""
        partitions, self._partitions = self._partitions, None
        if partitions is not None:
            partitions.stop(release=False)

    def _put_back_buffered(self, queue: int | None) -> None:
        with self._mutex:
            released: list[_Received] = []
            for instance_id, entries in list(self._buffer.items()):
                for key, received in list(entries.items()):
                    if queue is None or received.queue == queue:
                        released.append(entries.pop(key))
                if not entries:
                    del self._buffer[instance_id]
                    self._ready.pop(instance_id, None)
        for received in released:
            with contextlib.suppress(AzureError):
                self._let_go(received, 0)

    def _receive(self, queue: int, lock_timeout: timedelta) -> None:
        seconds = _visibility_seconds(lock_timeout)
        self.count("queue.receive")
        messages = list(
            self._control[queue].receive_messages(
                messages_per_page=32, max_messages=32, visibility_timeout=seconds
            )
        )
        self._control_pacer.received(queue, len(messages), len(messages) >= 32)
        if not messages:
            return
        now = utcnow()
        expires = now + timedelta(seconds=seconds) - _MARGIN
        accepted: list[_Received] = []
        for raw in messages:
            message: OrchestrationMessage | None = None
            reason = ""
            stored, body = None, str(raw.content)
            try:
                stored, body = split_count(str(raw.content))
                message = OrchestrationMessage.from_json(self._decode_body(body))
            except Exception as exc:  # noqa: BLE001 - an undecodable message is a dead letter
                reason = f"undecodable message: {exc!r}"
            if message is None:
                instance_id = instance_named_in(body)
                if not instance_id:  # no instance to fail: moved aside at once
                    self._poison_message(queue, raw, reason)
                    continue
                # Named in its instance's next work item and moved aside when that completes.
                log.error("Control-queue message %s for '%s': %s", raw.id, instance_id, reason)
            elif message.visible_at is not None and message.visible_at > expires - _MARGIN:
                self._rearm(queue, raw, message)  # a long timer's next hop
                continue
            else:
                instance_id = message.instance_id
            received = _Received(
                queue, raw.id, str(raw.pop_receipt), message, int(raw.dequeue_count or 1), expires
            )
            received.body, received.stored = body, stored
            received.instance_id, received.reason = instance_id, reason
            received.delivered = delivered_before(stored, received.dequeue_count)
            accepted.append(received)
        with self._mutex:
            for received in accepted:
                iid = received.instance_id
                self._buffer.setdefault(iid, {})[received.message_id] = received
                self._ready[iid] = None

    def _take_ready(self, max_count: int, lock_timeout: timedelta) -> list[tuple[str, _OrchLock]]:
        """Turn buffered messages of unlocked instances into locked work items."""
        taken: list[tuple[str, _OrchLock]] = []
        if max_count <= 0:
            return taken
        now = utcnow()
        with self._mutex:
            self._reclaim_expired(now)
            for instance_id in list(self._ready):
                if len(taken) >= max_count:
                    break
                lock = self._locks.get(instance_id)
                if lock is not None and lock.expires > now:
                    continue  # in a work item: its new messages wait for the next one
                entries = self._buffer.pop(instance_id, {})
                # Entries whose queue visibility lapsed are kept: we still hold their pop
                # receipts, and _extend_visibility renews them (or drops one another worker
                # received meanwhile). Dropping them would leave a gap in which the message
                # is neither here nor visible on the queue yet.
                live = entries
                # Messages due a moment from now stay buffered until their visible_at.
                later = {
                    k: r
                    for k, r in live.items()
                    if (
                        r.message is not None
                        and r.message.visible_at is not None
                        and r.message.visible_at > now
                    )
                    or (r.not_before is not None and r.not_before > now)
                }
                # Messages waiting for the instance's next start go out with it at once.
                start_ready = any(
                    r.message is not None and isinstance(r.message.event, ExecutionStarted)
                    for k, r in live.items()
                    if k not in later
                )
                later.update(
                    (k, r)
                    for k, r in live.items()
                    if r.start_wait_until is not None
                    and r.start_wait_until > now
                    and not start_ready
                )
                received = [r for k, r in live.items() if k not in later]
                if later:
                    self._buffer[instance_id] = later
                else:
                    del self._ready[instance_id]
                if not received:
                    continue  # lapsed ones come back from the queue; later ones wait
                received.sort(key=lambda r: r.message_id)
                new_lock = _OrchLock(
                    token=new_lock_token(),
                    # Until _load_item has read the instance: then the lock's own timeout.
                    expires=min(r.expires for r in received),
                    received=received,
                    timeout=lock_timeout,
                )
                self._locks[instance_id] = new_lock
                for r in received:
                    self._in_flight[r.queue] += 1
                    r.delivered += 1  # handed out (given back if _load_item holds it)
                taken.append((instance_id, new_lock))
        return taken

    def _reclaim_expired(self, now: datetime) -> None:
        """Expired locks whose messages we still hold: their messages are ready again."""
        for instance_id, lock in list(self._locks.items()):
            if lock.expires > now or lock.claimed:
                continue
            del self._locks[instance_id]
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:
                self._in_flight[r.queue] -= 1
                entries.setdefault(r.message_id, r)
            if entries:
                self._ready[instance_id] = None
            else:
                del self._buffer[instance_id]

    def _extend_visibility(self, lock: _OrchLock) -> None:
        """Buffered messages whose queue visibility ends before the new lock: extend it."""
        now = utcnow()
        needed = now + lock.timeout + _MARGIN
        short = [
            r
            for r in lock.received
            # A result held as its task is extended only when its commit could outlast it
            # (its lock ends with it, and the worker renews a lock about to end).
            if r.expires < (now + 2 * _COMMIT_WINDOW if r.on_task_queue else needed)
            or self._tells_count(r)  # a redelivery
        ]
        if not short:
            return
        seconds = _visibility_seconds(lock.timeout)
        lost: list[_Received] = []
        for r in short:
            try:
                self._update_received(r, seconds)
            except HttpResponseError:  # 404 (or 400: stale pop receipt)
                lost.append(r)  # taken by someone else meanwhile: not ours to hand out
                continue
            r.expires = utcnow() + timedelta(seconds=seconds) - _MARGIN
        if lost:
            lock.received = [r for r in lock.received if r not in lost]
            with self._mutex:
                for r in lost:
                    self._in_flight[r.queue] -= 1

    @staticmethod
    def _waits_for_start(record: InstanceRecord | None, received: list[_Received]) -> bool:
        """Whether these messages wait (a little) for the instance's next execution to start.

        An instance that continued as new has sent its next ``ExecutionStarted`` (outbound
        messages are written before the row), but the control queue may deliver other
        messages before it: a terminate or an event sent meanwhile, or one the core carried
        over from the continue-as-new step. Held briefly, they usually go out together with
        that start (one step instead of a deferral). After :data:`_START_HOLD` they are
        handed out anyway: the core defers messages for a next execution that has not
        started yet, and a start that never comes (a store written by other means) must not
        keep them from being delivered.
        """
        if (
            record is None
            or record.runtime_status is not OrchestrationStatus.CONTINUED_AS_NEW
            or not received
            or any(
                r.held_since is not None and utcnow() - r.held_since >= _START_HOLD
                for r in received
            )
        ):
            return False
        return not any(
            r.message is not None
            and isinstance(r.message.event, ExecutionStarted)
            and r.message.event.execution_id != record.execution_id
            for r in received
        )

    def _hold_for_start(self, instance_id: str, lock: _OrchLock) -> None:
        """Keep the lock's messages buffered until the next start arrives (or a while passed).

        They stay invisible on the queue (each look extends them), go out together with the
        start as soon as it is buffered too, and are looked at again after a short, growing
        delay in case another worker took the start meanwhile.
        """
        now = utcnow()
        with self._mutex:
            if self._locks.get(instance_id) is not lock:
                lock.received = []  # expired and reclaimed meanwhile: buffered already
                return
            # Looked at again well within the lock timeout, so each look can still extend
            # their queue visibility (they never reappear there while we wait).
            cap = max(_START_WAIT, min(_START_WAIT_MAX, lock.timeout / 2))
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:
                r.delivered -= 1  # not handed out after all
                r.start_waits += 1
                r.held_since = r.held_since or now
                wait = min(_START_WAIT * 2 ** min(r.start_waits - 1, 10), cap)
                r.start_wait_until = now + wait
                self._in_flight[r.queue] -= 1
                entries.setdefault(r.message_id, r)
            self._ready[instance_id] = None
            lock.received = []

    def _held(self, item: OrchestrationWorkItem, claim: bool = False) -> _OrchLock:
        lock = item.provider_data
        with self._mutex:
            current = self._locks.get(item.instance_id)
            if (
                not isinstance(lock, _OrchLock)
                or current is not lock
                or lock.claimed
                or lock.token != item.lock_token
                or not lock.untaken(utcnow())
            ):
                raise WorkItemLockLost(f"Lock on instance '{item.instance_id}' was lost")
            lock.claimed = claim
        return lock

    def _unlock(self, item: OrchestrationWorkItem, lock: _OrchLock) -> None:
        with self._mutex:
            if self._locks.get(item.instance_id) is lock:
                del self._locks[item.instance_id]
                for r in lock.received:
                    self._in_flight[r.queue] -= 1
            if item.instance_id in self._buffer:
                self._ready[item.instance_id] = None

    def _release_lost(self, item: OrchestrationWorkItem, lock: _OrchLock) -> WorkItemLockLost:
        """Another writer owns the instance: make our messages visible again at once."""
        self._cache_row(item.instance_id, None)
        for received in lock.received:
            with contextlib.suppress(AzureError):
                self._let_go(received, 0, give_back=True)
        self._unlock(item, lock)
        return WorkItemLockLost(
            f"Instance '{item.instance_id}' was changed by another worker; step dropped"
        )

    def _take_locks_away(self, instance_id: str) -> None:
        """A replace or purge takes the instance from a work item of this process.

        (Across processes, the sentinel tombstone makes such a work item's history write
        fail instead.)
        """
        with self._mutex:
            lock = self._locks.get(instance_id)
            if lock is None or lock.claimed:
                return
            del self._locks[instance_id]
            for r in lock.received:
                self._in_flight[r.queue] -= 1
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:  # leftovers: the stale-message rule deletes them
                entries.setdefault(r.message_id, r)
            self._ready[instance_id] = None

    def _hide_for_commit(self, item: OrchestrationWorkItem, lock: _OrchLock) -> None:
        now = utcnow()
        short = [r for r in lock.received if r.expires < now + _COMMIT_WINDOW]
        if not short:
            return
        seconds = max(_visibility_seconds(lock.timeout), math.ceil(_COMMIT_WINDOW.total_seconds()))
        for r in short:
            try:
                self._update_received(r, seconds)
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise self._release_lost(item, lock) from exc
            r.expires = utcnow() + timedelta(seconds=seconds) - _MARGIN

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        lock = self._held(item, claim=True)
        seconds = 0 if not delay else math.ceil(delay.total_seconds())
        kept: list[_Received] = []
        if delay and delay < _HELD_DELAY:
            # A queue delays in whole seconds: a short delay is kept here instead (the queue
            # still hides the messages), and they go out again when it has passed, as the same
            # delivery (no receive counts them again).
            for received in lock.received:
                received.not_before = utcnow() + delay
                received.delivered -= 1  # given back: the next hand-out is the same delivery
            kept = list(lock.received)
        for received in lock.received if not kept else []:
            try:
                self._let_go(received, seconds, give_back=True)
            except AzureError:
                # The store is unreachable: we still hold the message (the queue hides it),
                # so this process hands it out again itself after the delay.
                received.not_before = utcnow() + (delay or timedelta(0))
                kept.append(received)
        self._unlock(item, lock)
        if kept:
            with self._mutex:
                entries = self._buffer.setdefault(item.instance_id, {})
                for received in kept:
                    entries.setdefault(received.message_id, received)
                self._ready[item.instance_id] = None
        self.changes.notify(work=Work.TIMERS if delay else Work.ORCHESTRATIONS)

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        lock = self._held(item)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("renew an orchestration lock"):
            for received in lock.received:
                try:
                    self._update_received(received, seconds)
                except HttpResponseError as exc:
                    if not lost_message(exc):
                        raise
                    raise self._release_lost(item, lock) from exc
        now = utcnow()
        for received in lock.received:
            received.expires = now + timedelta(seconds=seconds) - _MARGIN
        lock.expires = now + lock_timeout
        item.locked_until = lock.expires
