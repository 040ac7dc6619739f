"""Records and encoding: the instance row (the history's sentinel) and the history rows.

An instance's partition of ``<hub>Instances`` holds its instance row (row key ``""``) and its
history rows (``<execution id>.<seq:08>``), so a checkpoint's history and status commit in one
entity-group transaction. A row without ``RuntimeStatus`` is a *tombstone* (see
:meth:`RecordStore._write_tombstone`): the instance doesn't exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import SerializationError
from ostinato.history import HistoryEvent
from ostinato.provider import ActivityTask, InstanceRecord, decode_failure, encode_failure
from ostinato.status import OrchestrationStatus

from ostinato_azure._base import _SENTINEL, ProviderBase, _chunks, _etag
from ostinato_azure._keys import table_key
from ostinato_azure._payloads import get_property, put_property
from ostinato_azure._state import _Sentinel

#: Rows of an instance's partition marking a purged execution (``~purged.<execution id>``).
_PURGED = "~purged."
_PURGED_END = "~purged/"  # the first key after every marker ("/" follows ".")


def is_live(row: Any) -> bool:
    """Whether an instance row holds an instance (a tombstone has no status)."""
    return "RuntimeStatus" in row


class RecordStore(ProviderBase):
    """Reads and writes the instance rows and history partitions."""

    def _record_properties(self, record: InstanceRecord, version: int) -> dict[str, Any]:
        props: dict[str, Any] = {
            "Name": record.name,
            "ExecutionId": record.execution_id,
            "RuntimeStatus": record.runtime_status.value,
            "CreatedAt": record.created_at.isoformat(),
            "Created": record.created_at,
            "LastUpdatedAt": record.last_updated_at.isoformat(),
            "HistorySize": record.history_size,
            "Version": str(version),
        }
        if record.parent_instance_id is not None:
            props["ParentInstanceId"] = record.parent_instance_id
        iid = record.instance_id
        put_property(props, "Input", record.input, iid, self.blobs)
        put_property(props, "Output", record.output, iid, self.blobs)
        put_property(props, "CustomStatus", record.custom_status, iid, self.blobs)
        failure = encode_failure(record.failure_details)
        put_property(props, "FailureDetails", failure, iid, self.blobs)
        return props

    def _record_from(self, instance_id: str, entity: dict[str, Any]) -> InstanceRecord:
        return InstanceRecord(
            instance_id=instance_id,
            name=str(entity["Name"]),
            execution_id=str(entity["ExecutionId"]),
            runtime_status=OrchestrationStatus(entity["RuntimeStatus"]),
            created_at=datetime.fromisoformat(entity["CreatedAt"]),
            last_updated_at=datetime.fromisoformat(entity["LastUpdatedAt"]),
            input=get_property(entity, "Input", self.blobs),
            output=get_property(entity, "Output", self.blobs),
            custom_status=get_property(entity, "CustomStatus", self.blobs),
            failure_details=decode_failure(get_property(entity, "FailureDetails", self.blobs)),
            parent_instance_id=entity.get("ParentInstanceId"),
            history_size=int(entity.get("HistorySize", 0)),
        )

    def _read_row(self, instance_id: str) -> Any | None:
        """The instance row (live or a tombstone), or ``None``."""
        self.count("table.read")
        try:
            return self._instances.get_entity(table_key(instance_id), _SENTINEL)
        except ResourceNotFoundError:
            return None

    def _live_record(self, instance_id: str, row: Any | None) -> InstanceRecord | None:
        """The record a row holds; ``None`` for no row or a tombstone."""
        return None if row is None or not is_live(row) else self._record_from(instance_id, row)

    def _read_sentinel(self, instance_id: str) -> _Sentinel | None:
        row = self._read_row(instance_id)
        return None if row is None else self._sentinel_from(row)

    def _sentinel_from(self, entity: Any) -> _Sentinel:
        return _Sentinel(
            etag=_etag(entity),
            execution_id=str(entity.get("ExecutionId", "")),
            history_size=int(entity.get("HistorySize", 0)),
            version=int(entity.get("Version", "0")),
            entity=dict(entity),
        )

    def _read_history(self, instance_id: str) -> list[HistoryEvent] | None:
        """The history, or ``None`` if the rows read don't form the sentinel's whole history
        (a query spans pages; a replace or purge may delete rows between them)."""
        self.count("table.query")
        rows = list(
            self._instances.query_entities(
                "PartitionKey eq @pk", parameters={"pk": table_key(instance_id)}
            )
        )
        sentinel = next((r for r in rows if r["RowKey"] == _SENTINEL), None)
        if sentinel is None:
            return []
        execution = str(sentinel.get("ExecutionId", ""))
        size = int(sentinel.get("HistorySize", 0))
        prefix = execution + "."
        events: dict[int, HistoryEvent] = {}
        for row in rows:
            key = str(row["RowKey"])
            if not key.startswith(prefix):
                continue
            seq = int(key[len(prefix) :])
            if seq < size:
                text = get_property(row, "Event", self.blobs)
                if text is None:
                    raise SerializationError(f"Corrupt history: row {key} holds no event")
                events[seq] = history.loads(text)
        if len(events) != size:
            return None
        return [events[seq] for seq in range(size)]

    def _history_texts(self, instance_id: str, execution: str, size: int) -> list[str]:
        """The stored texts of the first ``size`` history rows of ``execution``, undecoded
        (``""`` for a row holding none)."""
        self.count("table.query")
        prefix = execution + "."
        rows = self._instances.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": table_key(instance_id), "lo": prefix, "hi": execution + "/"},
        )
        texts: dict[int, str] = {}
        for row in rows:
            seq = int(str(row["RowKey"])[len(prefix) :])
            if seq < size:
                texts[seq] = get_property(row, "Event", self.blobs) or ""
        return [texts[seq] for seq in sorted(texts)]

    def _delete_history(self, instance_id: str, keep: str | None = None) -> None:
        """Delete the instance's history rows (all, or all but those of execution ``keep``);
        the instance row stays."""
        self.count("table.query")
        keys = [
            str(e["RowKey"])
            for e in self._instances.query_entities(
                "PartitionKey eq @pk and RowKey gt ''",
                parameters={"pk": table_key(instance_id)},
                select=["RowKey"],
            )
        ]
        keys = [k for k in keys if not k.startswith(_PURGED)]  # outlive the instance
        if keep is not None:
            keys = [k for k in keys if not k.startswith(keep + ".")]
        self._delete_rows(instance_id, [k for k in keys if k != _SENTINEL])

    def _delete_rows(self, instance_id: str, keys: list[str]) -> None:
        for chunk in _chunks(keys, 100):
            self.count("table.batch")
            try:
                self._instances.submit_transaction(
                    [
                        ("delete", {"PartitionKey": table_key(instance_id), "RowKey": k})
                        for k in chunk
                    ]
                )
            except TableTransactionError:
                for key in chunk:  # some were gone already: one by one
                    self.count("table.delete")
                    self._instances.delete_entity(table_key(instance_id), key)

    def _write_tombstone(
        self, instance_id: str, execution_id: str, etag: str, purged: bool = False
    ) -> bool:
        """Replace the instance row (ETag-conditional) by a tombstone marking its execution
        dead: its leftover messages and tasks are dropped. ``False`` if the row changed.

        A purge also leaves a marker row (``~purged.<execution>``, kept for good) in the same
        transaction: activity tasks of the purged instance — of that execution, or queued
        before the purge — stay dropped after the id was created again. (Tasks of a replaced
        execution are delivered; the core drops their results.)
        """
        pk = table_key(instance_id)
        tombstone = {
            "PartitionKey": pk,
            "RowKey": _SENTINEL,
            "ExecutionId": "",
            "HistorySize": 0,
            "Version": "0",
            "DeadExecution": execution_id,
            "DeadAt": utcnow(),
        }
        guard: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            if not purged:
                self.count("table.update")
                self._instances.update_entity(
                    tombstone,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            marker = {
                "PartitionKey": pk,
                "RowKey": f"{_PURGED}{execution_id}",
                "PurgedAt": utcnow(),
            }
            self.count("table.batch")
            self._instances.submit_transaction(
                [
                    ("update", tombstone, {"mode": UpdateMode.REPLACE, **guard}),
                    ("upsert", marker, {"mode": UpdateMode.REPLACE}),
                ]
            )
        except TableTransactionError as exc:
            if exc.status_code in (404, 409, 412):
                return False
            raise
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def _dead_tasks(self, tasks: list[tuple[ActivityTask, datetime | None]]) -> set[int]:
        """Indexes of ``tasks`` (each with its queue insertion time) whose instance was purged
        after they were queued (see :meth:`_write_tombstone`).

        Executions this process itself checkpointed as running are not looked up (they can't
        have been purged since without this process's own purge having forgotten them).
        """
        with self._mutex:
            unknown = {
                t.instance_id
                for t, _ in tasks
                if (t.instance_id, t.execution_id) not in self._alive
            }
        purges: dict[str, tuple[set[str], datetime | None]] = {}
        for instance_id in unknown:
            self.count("table.query")
            rows = list(
                self._instances.query_entities(
                    "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                    parameters={"pk": table_key(instance_id), "lo": _PURGED, "hi": _PURGED_END},
                )
            )
            stamps = [r.metadata.get("timestamp") for r in rows]
            last = max((t for t in stamps if isinstance(t, datetime)), default=None)
            purges[instance_id] = ({str(r["RowKey"])[len(_PURGED) :] for r in rows}, last)
        dead: set[int] = set()
        for index, (task, inserted_on) in enumerate(tasks):
            executions, last = purges.get(task.instance_id, (set(), None))
            # Insertion times are whole seconds (rounded down): queued surely before.
            before = (
                last is not None
                and inserted_on is not None
                and inserted_on + timedelta(seconds=1) <= last
            )
            if task.execution_id in executions or before:
                dead.add(index)
        return dead
