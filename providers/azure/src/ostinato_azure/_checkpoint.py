"""The checkpoint writer: one orchestration step's messages, history and row, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import WorkItemLockLost
from ostinato.provider import InstanceRecord, OrchestrationCheckpoint, OrchestrationWorkItem, Work

from ostinato_azure._base import _SENTINEL, HISTORY_BATCH_ROWS, _chunks, _version, log
from ostinato_azure._keys import table_key
from ostinato_azure._orchestrations import OrchestrationItems
from ostinato_azure._payloads import put_property
from ostinato_azure._state import _CachedRow, _OrchLock


class CheckpointWriter(OrchestrationItems):
    """Completes orchestration work items."""

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        """Write the checkpoint in the crash-safe order (see ``README.md``).

        1. outbound messages and activity tasks; 2. history rows and the instance row in one
        table transaction (more only past 99 rows), conditional on the row's ETag; 3. the
        dead-letter rows of the item's undecodable messages; 4. delete the consumed messages.
        """
        lock = self._held(item, claim=True)
        try:
            with self._mapped_errors("complete an orchestration work item"):
                self._complete(item, lock, checkpoint)
        except WorkItemLockLost:
            # some of it may be written (see _complete)
            self.changes.notify(work=Work.of_checkpoints([checkpoint]))
            raise
        except Exception:
            self._cache_row(item.instance_id, None)
            lock.claimed = False  # still ours: the caller may abandon it
            raise
        self.changes.notify(work=Work.of_checkpoints([checkpoint]))

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        """Complete the items concurrently (each one is independent on this provider)."""
        return self._each(self.complete_orchestration_work_item, batch)

    def _commit(
        self,
        item: OrchestrationWorkItem,
        lock: _OrchLock,
        record: InstanceRecord | None,
        version: int,
        execution: str,
        base: int,
        rows: list[dict[str, Any]],
    ) -> str:
        """Write ``rows`` and the instance row; the new ETag of the instance row.

        Up to 99 rows go in one entity-group transaction with the instance row, so the
        history and the status it implies are committed together or not at all. Longer
        histories take several transactions: the earlier ones only check and touch the
        instance row (their rows stay invisible, beyond ``HistorySize``) and the last one
        writes the record and the new ``HistorySize``.
        """
        instance_id = item.instance_id
        chunks = list(_chunks(rows, HISTORY_BATCH_ROWS)) or [[]]
        etag = lock.sentinel_etag
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) - 1
            sentinel: dict[str, Any] = {"PartitionKey": table_key(instance_id), "RowKey": _SENTINEL}
            mode = UpdateMode.REPLACE
            if last and record is not None:
                sentinel.update(self._record_properties(record, version))
                if lock.inbox_cutoff is not None:
                    sentinel["InboxCutoff"] = lock.inbox_cutoff
                sentinel["ExecutionId"] = execution
                sentinel["HistorySize"] = base + len(rows)
            elif last:  # history without a record change: the record stays as it is
                sentinel["ExecutionId"] = execution
                sentinel["HistorySize"] = base + len(rows)
                mode = UpdateMode.MERGE
            else:
                sentinel["Touched"] = utcnow()
                mode = UpdateMode.MERGE
            if etag is None:
                op: Any = ("create", sentinel)
            else:
                op = (
                    "update",
                    sentinel,
                    {"mode": mode, "etag": etag, "match_condition": MatchConditions.IfNotModified},
                )
            operations = [op] + [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in chunk]
            self.count("table.batch")
            try:
                result = self._instances.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    raise self._release_lost(item, lock) from exc
                raise
            etag = str(result[0]["etag"])
        assert etag is not None
        return etag

    def _complete(
        self, item: OrchestrationWorkItem, lock: _OrchLock, checkpoint: OrchestrationCheckpoint
    ) -> None:
        instance_id = item.instance_id
        # 0. Messages whose queue visibility ends soon are hidden for the commit first, so no
        # other receiver gets them while it is written; one already taken loses the lock here,
        # before anything is written.
        self._hide_for_commit(item, lock)
        if checkpoint.instance is not None:
            self._note_alive(checkpoint.instance)
        # 1. Outbound messages: a crash after this duplicates them, never loses them.
        # Activity tasks are sent invisible when this process's activity worker will take
        # them (handed to it after the commit, without a receive; see _send_activity).
        tasks = [self._io.submit(self._send_activity, t, True) for t in checkpoint.activity_tasks]
        futures = [
            self._io.submit(self._send_orchestration_message, m) for m in checkpoint.messages
        ]
        for future in futures:
            future.result()
        held = [task for task in (future.result() for future in tasks) if task is not None]
        # 2. History rows and the instance row, in the instance's partition: one transaction
        # (up to 99 rows), each guarded by the instance row's ETag.
        version = _version(lock.version)
        old_execution: str | None = None
        old_size = 0
        record = checkpoint.instance
        execution = record.execution_id if record is not None else lock.sentinel_execution
        if (record is not None or checkpoint.new_history or checkpoint.reset_history) and (
            execution  # no record and no execution: nothing of the instance exists to write
        ):
            fresh = (
                checkpoint.reset_history
                or lock.sentinel_etag is None
                or lock.sentinel_execution != execution
            )
            base = 0 if fresh else lock.sentinel_size
            if fresh and lock.sentinel_execution and lock.sentinel_execution != execution:
                old_execution, old_size = lock.sentinel_execution, lock.sentinel_size
            rows: list[dict[str, Any]] = []
            for offset, event in enumerate(checkpoint.new_history):
                row: dict[str, Any] = {
                    "PartitionKey": table_key(instance_id),
                    "RowKey": f"{execution}.{base + offset:08d}",
                    "EventType": event.event_type.value,
                }
                put_property(row, "Event", history.dumps(event), instance_id, self.blobs)
                rows.append(row)
            etag = self._commit(item, lock, record, version, execution, base, rows)
            lock.sentinel_etag = etag
            lock.sentinel_execution = execution
            lock.sentinel_size = base + len(rows)
            if record is not None:
                self._cache_row(
                    instance_id,
                    _CachedRow(
                        version,
                        record,
                        lock.inbox_cutoff,
                        etag,
                        execution,
                        base + len(rows),
                    ),
                )
            else:  # the row's ETag changed under the cached record: read it next time
                self._cache_row(instance_id, None)
        for task in held:  # the step is committed: its tasks are this process's to run
            self._hold_task(task)
        # 3. Move the undecodable messages aside: their dead-letter rows first (keyed by the
        # message id: written again if a crash comes before the delete), then
        # 4. consume the messages, last. (One another receiver took anyway, the commit having
        # outlasted even the extended visibility, is delivered again: the core drops it.)
        letters = [
            self._io.submit(self._dead_letter_received, r)
            for r in lock.received
            if r.message is None
        ]
        for written in letters:
            written.result()
        deletes = [self._io.submit(self._delete_received, r) for r in lock.received]
        for deleted in deletes:
            deleted.result()
        self._unlock(item, lock)
        # Housekeeping: the previous execution's rows (continue-as-new) are garbage now.
        if old_execution is not None and old_size:
            keys = [f"{old_execution}.{i:08d}" for i in range(old_size)]
            try:
                self._delete_rows(instance_id, keys)
            except AzureError:
                log.warning("Deleting old history rows of '%s' failed", instance_id)
