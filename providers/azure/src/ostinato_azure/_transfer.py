"""Export and import of a task hub's raw state on Azure Storage (see
:meth:`ostinato.provider.StorageProvider.export_state`).

**Export** receives every visible message of the control queues and the work-item queue
(hidden for the export's duration, then made visible again, so the source is left as it was;
each read counts as one delivery in the queue's dequeue count), reads the instance rows and
their histories, and leaves out what a worker would drop as stale (messages of a purged or
replaced instance, activity tasks of an execution that is no longer current). A queue cannot
show a message before it is visible: pending timers are not in the export, and the core adds
them back from the histories (:mod:`ostinato.transfer.pending`).

**Import** writes a snapshot's history rows, then the instance row (which makes them
visible: it names their execution and count), then the messages and activity tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueClient, QueueMessage
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, ProviderError
from ostinato.provider import (
    ActivityTask,
    InstanceRecord,
    InstanceSnapshot,
    OrchestrationMessage,
)

from ostinato_azure._keys import instance_id_of, table_key
from ostinato_azure._payloads import put_property
from ostinato_azure._records import is_live

if TYPE_CHECKING:
    from ostinato_azure.provider import AzureStorageProvider

#: Seconds an export keeps the messages it read hidden (they are made visible again at once
#: when it has read them all).
EXPORT_VISIBILITY = 300
_SENTINEL = ""
_BATCH = 100


def _receive_all(queue: QueueClient) -> list[QueueMessage]:
    return list(queue.receive_messages(messages_per_page=32, visibility_timeout=EXPORT_VISIBILITY))


def _release(queue: QueueClient, messages: list[QueueMessage]) -> None:
    """Make the read messages visible again (a receive is not a delivery: no count)."""
    for raw in messages:
        queue.update_message(raw.id, pop_receipt=raw.pop_receipt, visibility_timeout=0)


def _is_stale(message: OrchestrationMessage, record: InstanceRecord | None, cutoff: Any) -> bool:
    """The rule a worker applies: created before a purge/replace, not for the current run."""
    if not isinstance(cutoff, datetime):
        return False
    if record is not None and message.execution_id == record.execution_id:
        return False
    return message.event.timestamp < cutoff


def export_state(provider: AzureStorageProvider) -> Iterator[InstanceSnapshot]:
    """Every instance id's state, in id order (see the module doc)."""
    p = provider
    p.setup()
    messages: dict[str, list[OrchestrationMessage]] = {}
    tasks: dict[str, list[ActivityTask]] = {}
    held: list[tuple[QueueClient, list[QueueMessage]]] = []
    try:
        for queue in p._control:
            received = _receive_all(queue)
            held.append((queue, received))
            for raw in received:
                message = _decode(p, raw, OrchestrationMessage.from_json)
                messages.setdefault(message.instance_id, []).append(message)
        received = _receive_all(p._activity_queue)
        held.append((p._activity_queue, received))
        for raw in received:
            task = _decode(p, raw, ActivityTask.from_json)
            tasks.setdefault(task.instance_id, []).append(task)
    finally:
        for queue, raws in held:
            _release(queue, raws)
    p.count("table.query")
    rows = {
        instance_id_of(str(row["PartitionKey"])): row
        for row in p._instances.query_entities("RowKey eq ''")
    }
    for instance_id in sorted(set(rows) | set(messages) | set(tasks)):
        row = rows.get(instance_id)
        record = p._live_record(instance_id, row)
        cutoff = None if row is None else row.get("InboxCutoff" if record else "DeadAt")
        pending = [m for m in messages.get(instance_id, []) if not _is_stale(m, record, cutoff)]
        current = [
            t
            for t in tasks.get(instance_id, [])
            if record is not None and t.execution_id == record.execution_id
        ]
        if record is None and not pending:
            continue
        yield InstanceSnapshot(
            instance_id=instance_id,
            record=record,
            history=p.get_history(instance_id) if record is not None else [],
            messages=sorted(pending, key=lambda m: m.event.timestamp),
            activity_tasks=sorted(current, key=lambda t: t.task_id),
        )


def _decode(provider: AzureStorageProvider, raw: QueueMessage, parse: Any) -> Any:
    try:
        return parse(provider._decode_body(str(raw.content)))
    except Exception as exc:
        raise ProviderError(
            f"Cannot export queue message {raw.id}: its body is not an ostinato message ({exc})"
        ) from exc


def import_snapshot(provider: AzureStorageProvider, snapshot: InstanceSnapshot) -> None:
    """Write ``snapshot`` (see the module doc); ``InstanceAlreadyExistsError`` if the hub
    has a record or a live history under its id."""
    p = provider
    p.setup()
    iid, record = snapshot.instance_id, snapshot.record
    if record is not None:
        existing = p._read_row(iid)
        if existing is not None and is_live(existing):
            raise InstanceAlreadyExistsError(iid)
        version = int(utcnow().timestamp() * 1_000_000)
        rows: list[dict[str, Any]] = []
        for seq, event in enumerate(snapshot.history):
            row: dict[str, Any] = {
                "PartitionKey": table_key(iid),
                "RowKey": f"{record.execution_id}.{seq:08d}",
                "EventType": event.event_type.value,
            }
            put_property(row, "Event", history.dumps(event), iid, p.blobs)
            rows.append(row)
        # The history first (invisible until the instance row names its length), then the
        # row: inserted, or replacing the tombstone read (a conflict is an existing instance).
        for start in range(0, len(rows), _BATCH):
            p.count("table.batch")
            p._instances.submit_transaction(
                [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in rows[start : start + _BATCH]]
            )
        entity: dict[str, Any] = {"PartitionKey": table_key(iid), "RowKey": _SENTINEL}
        entity.update(p._record_properties(record, version))
        entity["ExecutionId"] = record.execution_id
        entity["HistorySize"] = len(rows)
        try:
            if existing is None:
                p.count("table.insert")
                p._instances.create_entity(entity)
            else:
                p.count("table.update")
                p._instances.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=str(existing.metadata["etag"]),
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            raise InstanceAlreadyExistsError(iid) from None
    for task in snapshot.activity_tasks:
        p._send_activity(task)
    for message in snapshot.messages:
        p._send_orchestration_message(message)
    p.changes.notify()


def active_workers(provider: AzureStorageProvider) -> list[str]:
    """Workers with a live heartbeat or an unexpired control-queue lease."""
    p = provider
    p.setup()
    now = utcnow()
    workers: set[str] = set()
    p.count("table.query")
    for row in p._partitions_table.query_entities("PartitionKey eq 'p'"):
        key = str(row["RowKey"])
        expires = row.get("ExpiresAt")
        if not isinstance(expires, datetime) or expires <= now:
            continue
        if key.startswith("worker-"):
            workers.add(key[len("worker-") :])
        elif key.startswith("lease-") and row.get("Owner"):
            workers.add(str(row["Owner"]))
    return sorted(workers)
