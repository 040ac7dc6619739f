"""Orchestration work items: receive, group per instance, read the instance and hand out."""

from __future__ import annotations

from datetime import timedelta

from ostinato.clock import utcnow
from ostinato.provider import DeadLetter, DeadLetterKind, InstanceRecord, OrchestrationWorkItem

from ostinato_azure._repairs import Repairs
from ostinato_azure._state import _CachedRow, _OrchLock, _Sentinel


class OrchestrationItems(Repairs):
    """Hands out orchestration work items."""

    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        """Receive up to 32 messages per owned control queue, group them per instance.

        An instance already in a work item of this process keeps its new messages buffered
        until that item is done, so one instance is in one work item at a time.
        """
        with self._mapped_errors("lock orchestration work items"):
            self.setup()
            partitions = self._ensure_partitions(worker_id)
            self._maybe_repair()
            queues = (
                partitions.receivable()
                if partitions is not None
                else list(range(self.partition_count))
            )
            result: list[OrchestrationWorkItem] = []
            # Queues this process just sent to are received from before the buffer is looked
            # at, so what it sent joins what it buffered in one work item.
            news = self._control_pacer.with_news(queues)
            for future in [self._io.submit(self._receive, q, lock_timeout) for q in news]:
                future.result()
            for _ in range(4):  # more rounds only while stale leftovers were all we found
                taken = self._take_ready(max_count - len(result), lock_timeout)
                if len(taken) + len(result) < max_count and queues:
                    start = self._next_queue % len(queues)
                    self._next_queue += 1
                    order = queues[start:] + queues[:start]
                    if taken:
                        self._control_pacer.busy()
                    order = [q for q in order if self._control_pacer.due(q) and q not in news]
                    news = []
                    # One round trip for all of them, not one per queue.
                    receives = [self._io.submit(self._receive, q, lock_timeout) for q in order]
                    for future in receives:
                        future.result()
                    taken += self._take_ready(max_count - len(taken) - len(result), lock_timeout)
                if not taken:
                    break
                items = list(self._pool.map(self._load_item, taken))
                for item in items:
                    if item.messages or item.dead_letters:
                        result.append(item)
                    else:  # every message was a stale leftover: nothing to hand out
                        self._unlock(item, item.provider_data)
                if result:
                    break
            return result

    def _load_item(self, pair: tuple[str, _OrchLock]) -> OrchestrationWorkItem:
        """Read the instance row (one point read, none on a cache hit)."""
        instance_id, lock = pair
        self._extend_visibility(lock)
        with self._mutex:
            cached = self._rows.get(instance_id)
        bypassed: _CachedRow | None = None
        if cached is not None and self._waits_for_start(cached.record, lock.received):
            # Between two executions as of our own last write: another worker may have
            # started the next one since, which the cache can't tell. Read to decide.
            bypassed, cached = cached, None
        sentinel: _Sentinel | None = None
        if cached is not None:
            # This process wrote the row last: no read. If anyone else wrote since, this
            # step's ETag-conditional write fails (WorkItemLockLost), the cache entry is
            # dropped and the retry reads the row.
            record: InstanceRecord | None = cached.record
            lock.version = cached.version
            lock.inbox_cutoff = cached.inbox_cutoff
            lock.sentinel_etag = cached.sentinel_etag
            lock.sentinel_execution = cached.sentinel_execution
            lock.sentinel_size = cached.sentinel_size
        else:
            row = self._read_row(instance_id)
            record = self._live_record(instance_id, row)
            sentinel = None if row is None else self._sentinel_from(row)
            lock.version = 0 if row is None else int(row.get("Version", "0"))
            lock.inbox_cutoff = None if row is None else row.get("InboxCutoff")
            lock.sentinel_etag = None if sentinel is None else sentinel.etag
            lock.sentinel_execution = None if sentinel is None else sentinel.execution_id
            lock.sentinel_size = 0 if sentinel is None else sentinel.history_size
            if bypassed is not None and bypassed.sentinel_etag != lock.sentinel_etag:
                self._cache_row(instance_id, None)  # someone else wrote the row since
        stale = self._stale_messages(instance_id, record, sentinel, lock)
        if stale:
            lock.received = [r for r in lock.received if r not in stale]
            for future in [self._io.submit(self._delete_received, r) for r in stale]:
                future.result()
            with self._mutex:
                for r in stale:
                    self._in_flight[r.queue] -= 1
        if self._waits_for_start(record, lock.received):
            self._hold_for_start(instance_id, lock)  # an empty item: the caller unlocks it
        with self._mutex:
            lock.expires = min([utcnow() + lock.timeout] + [r.expires for r in lock.received])
        return OrchestrationWorkItem(
            instance_id=instance_id,
            messages=[r.message for r in lock.received if r.message is not None],
            instance=record,
            lock_token=lock.token,
            locked_until=lock.expires,
            # The instance's messages since its last completed step are exactly these (the
            # step deletes the messages it consumed): the item's count is their largest.
            dequeue_count=max((r.deliveries for r in lock.received), default=1),
            # Undecodable messages: moved into the dead letters when the item completes.
            dead_letters=[
                DeadLetter("", DeadLetterKind.MESSAGE, instance_id, r.body, r.reason, utcnow())
                for r in lock.received
                if r.message is None
            ],
            provider_data=lock,
        )
