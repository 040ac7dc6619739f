"""The client side: create, signal, read, query and purge instances."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, ProviderError
from ostinato.history import HistoryEvent
from ostinato.provider import (
    InstanceQuery,
    InstanceRecord,
    OrchestrationMessage,
    Page,
    ReuseIdPolicy,
    Work,
)
from ostinato.status import OrchestrationStatus

from ostinato_azure._aside import RecordsAside
from ostinato_azure._base import _READ_ATTEMPTS, _SENTINEL, _etag, _version
from ostinato_azure._keys import instance_id_of, key_upper_bound, table_key, utf16_order
from ostinato_azure._payloads import put_property
from ostinato_azure._records import is_live


class Client(RecordsAside):
    """Client operations on instances."""

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        """Atomic start: conditional insert / ETag replace of the instance row, then enqueue.

        The row carries ``StartDeadline`` and the encoded start message: if the client dies
        between the row write and the enqueue, the next create of that id (or a worker's
        repair sweep) re-sends the start once the deadline passed. A duplicate start of the
        same execution is dropped by the core, so re-sending is always safe.
        """
        self.setup()
        instance_id = record.instance_id
        with self._mapped_errors("create an instance"):
            body = self._encode_body(instance_id, start.to_json())
            ready_at = max(utcnow(), start.visible_at or utcnow())
            entity: dict[str, Any] = {"PartitionKey": table_key(instance_id), "RowKey": _SENTINEL}
            entity.update(self._record_properties(record, _version()))
            entity["StartDeadline"] = ready_at + self.start_repair_after
            put_property(entity, "PendingStart", body, instance_id, self.blobs)
            replaced = False
            while True:
                self.count("table.insert")
                try:
                    self._instances.create_entity(entity)
                    break
                except ResourceExistsError:
                    pass
                row = self._read_row(instance_id)
                if row is None:
                    continue
                if is_live(row):
                    status = OrchestrationStatus(row["RuntimeStatus"])
                    if status not in policy.replaceable_statuses:
                        self._repair_start(instance_id, row)
                        raise InstanceAlreadyExistsError(instance_id, status)
                    # Messages of the replaced execution still queued are dropped on arrival.
                    entity["InboxCutoff"] = utcnow()
                    entity["DeadExecution"] = str(row["ExecutionId"])
                else:  # a purged instance's tombstone: its dead execution stays dead
                    # and its messages still queued (sent before the purge) are dropped.
                    dead_at = row.get("DeadAt")
                    if isinstance(dead_at, datetime):
                        entity["InboxCutoff"] = dead_at
                    else:
                        entity.pop("InboxCutoff", None)
                    entity["DeadExecution"] = row.get("DeadExecution", "")
                entity["Version"] = str(_version(int(row.get("Version", "0"))))
                self.count("table.update")
                try:
                    self._instances.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=_etag(row),
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # someone else won the race: look again
                replaced = is_live(row)
                break
            if replaced:
                self._take_locks_away(instance_id)
                self._forget_alive(instance_id)
                self._delete_history(instance_id, keep=record.execution_id)
            self.count("queue.send")
            self._control[self._queue_index(instance_id)].send_message(
                body,
                visibility_timeout=self._delay_of(start) or None,
                time_to_live=-1,
            )
            self._control_pacer.news(self._queue_index(instance_id))
        self.changes.notify(work=Work.of_messages([start]))

    def send_message(self, message: OrchestrationMessage) -> None:
        with self._mapped_errors("send a message"):
            self.setup()
            self._send_orchestration_message(message)
        self.changes.notify(work=Work.of_messages([message]))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance row; read again if a payload it names was replaced meanwhile."""
        with self._mapped_errors("read an instance"):
            self.setup()
            for attempt in range(_READ_ATTEMPTS):
                row = self._read_row(instance_id)
                try:
                    return self._live_record(instance_id, row)
                except ResourceNotFoundError:
                    # A payload blob of that row version is gone (purged or replaced since
                    # the row was read): the row has changed too.
                    if attempt == _READ_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's events; read again if a write changed them under the read."""
        with self._mapped_errors("read a history"):
            self.setup()
            for attempt in range(_READ_ATTEMPTS):
                try:
                    events = self._read_history(instance_id)
                except ResourceNotFoundError:  # a payload blob went with a replace or purge
                    events = None
                if events is not None:
                    return events
                if attempt == _READ_ATTEMPTS - 1:
                    raise ProviderError(
                        f"The history of '{instance_id}' kept changing while it was read"
                    )
            raise AssertionError("unreachable")

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        with self._mapped_errors("query instances"):
            self.setup()
            clauses = ["RowKey eq ''"]
            parameters: dict[str, Any] = {}
            if query.runtime_status is not None:
                if not query.runtime_status:
                    return Page(items=[])
                statuses = sorted(s.value for s in query.runtime_status)
                clauses.append("(" + " or ".join(f"RuntimeStatus eq '{s}'" for s in statuses) + ")")
            if query.instance_id_prefix:
                prefix = table_key(query.instance_id_prefix)
                clauses.append("PartitionKey ge @lo")
                parameters["lo"] = prefix
                upper = key_upper_bound(prefix)
                if upper is not None:
                    clauses.append("PartitionKey lt @hi")
                    parameters["hi"] = upper
            if query.continuation_token is not None:
                clauses.append("PartitionKey gt @after")
                parameters["after"] = query.continuation_token
            if query.created_from is not None:
                clauses.append("Created ge @cfrom")
                parameters["cfrom"] = query.created_from - timedelta(milliseconds=1)
            if query.created_to is not None:
                clauses.append("Created le @cto")
                parameters["cto"] = query.created_to + timedelta(milliseconds=1)
            self.count("table.query")
            pages = self._instances.query_entities(
                " and ".join(clauses),
                parameters=parameters,
                results_per_page=min(1000, query.page_size + 1),
            ).by_page()
            found: list[tuple[str, InstanceRecord]] = []
            for page in pages:
                for row in page:
                    if not is_live(row):
                        continue  # a purged instance's tombstone
                    key = str(row["PartitionKey"])
                    record = self._record_from(instance_id_of(key), row)
                    if query.matches(record):
                        found.append((key, record))
                if len(found) > query.page_size:
                    break
                self.count("table.query")
            found.sort(key=lambda pair: utf16_order(pair[0]))  # the table's own order
            items = found[: query.page_size]
            token = items[-1][0] if len(found) > query.page_size else None
            return Page(items=[record for _, record in items], continuation_token=token)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        """Delete the instance if its status allows: dead letters, history and blobs first,
        the row last.

        The row is replaced by a tombstone, ETag-conditional on the status it checked; a crash
        midway leaves the row (with its status) so purging again finishes the job. Messages
        still in the queues for a purged instance are dropped when they arrive.
        """
        with self._mapped_errors("purge an instance"):
            self.setup()
            row = self._read_row(instance_id)
            if (
                row is None
                or not is_live(row)
                or OrchestrationStatus(row["RuntimeStatus"]) not in only_if_status
            ):
                return False
            self._take_locks_away(instance_id)
            self._forget_alive(instance_id)
            self._delete_dead_letters_of(instance_id)
            self._delete_history(instance_id)
            self.blobs.delete_instance(instance_id)
            return self._write_tombstone(
                instance_id, str(row["ExecutionId"]), _etag(row), purged=True
            )
