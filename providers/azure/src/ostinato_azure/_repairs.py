"""Repairs: lost start messages and stale messages of purged or replaced instances."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from ostinato.clock import utcnow
from ostinato.provider import InstanceRecord, OrchestrationMessage
from ostinato.status import OrchestrationStatus

from ostinato_azure._base import _SENTINEL, _etag, log
from ostinato_azure._inbox import Inbox
from ostinato_azure._keys import instance_id_of, table_key
from ostinato_azure._payloads import get_property
from ostinato_azure._state import _OrchLock, _Received, _Sentinel


class Repairs(Inbox):
    """Finds and repairs what a crash between two writes left behind."""

    def _repair_start(self, instance_id: str, row: Any) -> bool:
        """Re-send the start of a PENDING instance whose start may have been lost."""
        if row.get("RuntimeStatus") != OrchestrationStatus.PENDING.value:
            return False
        deadline = row.get("StartDeadline")
        if deadline is None or deadline > utcnow():
            return False
        body = get_property(row, "PendingStart", self.blobs)
        if body is None:
            return False
        update = {
            "PartitionKey": table_key(instance_id),
            "RowKey": _SENTINEL,
            "StartDeadline": utcnow() + self.start_repair_after * 4,
        }
        self.count("table.update")
        try:  # claim the repair first, so concurrent repairers send it once
            self._instances.update_entity(
                update,
                mode=UpdateMode.MERGE,
                etag=_etag(row),
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        message = OrchestrationMessage.from_json(self._decode_body(body))
        log.warning("Re-sending the start message of '%s' (its client may have died)", instance_id)
        self.count("queue.send")
        self._control[self._queue_index(instance_id)].send_message(
            body, visibility_timeout=self._delay_of(message) or None, time_to_live=-1
        )
        return True

    def repair_pending_starts(self) -> int:
        """Re-send lost start messages of PENDING instances past their deadline."""
        now = utcnow()
        self.count("table.query")
        rows = list(
            self._instances.query_entities(
                "RuntimeStatus eq 'PENDING' and StartDeadline lt @now", parameters={"now": now}
            )
        )
        return sum(
            self._repair_start(instance_id_of(str(row["PartitionKey"])), row) for row in rows
        )

    def _maybe_repair(self) -> None:
        """Every few lease periods the owner of queue 0 re-sends lost start messages."""
        if self._partitions is not None and not self._partitions.owns(0):
            return
        now = time.monotonic()
        interval = max(self.start_repair_after.total_seconds(), 5.0)
        if now - self._last_repair < interval:
            return
        self._last_repair = now
        try:
            self.repair_pending_starts()
        except AzureError:
            log.exception("Repairing lost start messages failed")

    def _stale_messages(
        self,
        instance_id: str,
        record: InstanceRecord | None,
        sentinel: _Sentinel | None,
        lock: _OrchLock,
    ) -> list[_Received]:
        """Messages left over from a purged or replaced instance (queues can't delete them).

        A purge leaves a tombstone (``DeadAt``) in the sentinel, a replace an ``InboxCutoff``
        on the row: messages *created before* that moment, and not addressed to the current
        execution, are deleted instead of handed out. Messages sent afterwards — even to an
        instance that doesn't exist (yet) — are always delivered.
        """
        cutoff = lock.inbox_cutoff
        if record is None and sentinel is not None:
            dead_at = sentinel.entity.get("DeadAt")
            cutoff = dead_at if isinstance(dead_at, datetime) else None
        if cutoff is None:
            return []
        stale: list[_Received] = []
        for r in lock.received:
            message = r.message
            if record is not None and message.execution_id == record.execution_id:
                continue
            if message.event.timestamp < cutoff:
                stale.append(r)
        return stale
