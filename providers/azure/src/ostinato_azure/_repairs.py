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
from ostinato.orchestration.owed import owed_work
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
        self._control_pacer.news(self._queue_index(instance_id))
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

    def repair_lost_work(self) -> int:
        """Re-send what RUNNING instances idle for ``lost_work_repair_after`` are owed (due
        timers, activity tasks without a result, unanswered sub-orchestration starts; see
        :mod:`ostinato.orchestration.owed`), so an instance whose in-flight message was lost
        never waits for ever. Returns how many instances were repaired.

        Each repair is claimed first (an ETag-conditional write of ``LostWorkRepairedAt``), so
        concurrent repairers send once, and an instance is repaired again only after another
        idle period. Everything re-sent is safe as a duplicate (the core drops those).
        """
        now = utcnow()
        idle_since = now - self.lost_work_repair_after
        self.count("table.query")
        rows = list(
            self._instances.query_entities(
                "RowKey eq '' and RuntimeStatus eq 'RUNNING' and LastUpdatedAt lt @cut",
                parameters={"cut": idle_since.isoformat()},
            )
        )
        repaired = 0
        for row in rows:
            instance_id = instance_id_of(str(row["PartitionKey"]))
            last = row.get("LostWorkRepairedAt")
            if isinstance(last, datetime) and last > idle_since:
                continue
            with self._mutex:
                if instance_id in self._locks or instance_id in self._buffer:
                    continue  # this process holds messages for it: not idle
            record = self._record_from(instance_id, row)
            owed = owed_work(record, self.get_history(instance_id), now)
            if not owed:
                continue
            self.count("table.update")
            try:  # claim the repair, so concurrent repairers send it once
                self._instances.update_entity(
                    {
                        "PartitionKey": row["PartitionKey"],
                        "RowKey": _SENTINEL,
                        "LostWorkRepairedAt": now,
                    },
                    mode=UpdateMode.MERGE,
                    etag=_etag(row),
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            self._cache_row(instance_id, None)  # its ETag changed
            log.warning(
                "'%s' has waited %s with nothing in flight: re-sending %d message(s) and %d "
                "activity task(s) it is owed",
                instance_id,
                self.lost_work_repair_after,
                len(owed.messages),
                len(owed.activity_tasks),
            )
            for message in owed.messages:
                self._send_orchestration_message(message)
            for task in owed.activity_tasks:
                self._send_activity(task)
            repaired += 1
        return repaired

    def _maybe_repair(self) -> None:
        """Every few lease periods the owner of queue 0 re-sends lost start messages and the
        work idle instances are owed."""
        if self._partitions is not None and not self._partitions.owns(0):
            return
        now = time.monotonic()
        interval = max(
            min(self.start_repair_after, self.lost_work_repair_after / 2).total_seconds(), 1.0
        )
        if now - self._last_repair < interval:
            return
        self._last_repair = now
        try:
            self.repair_pending_starts()
        except AzureError:
            log.exception("Repairing lost start messages failed")
        try:
            self.repair_lost_work()
        except Exception:  # noqa: BLE001 - a repair sweep must never stop the worker
            log.exception("Repairing lost in-flight messages failed")

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
            if message is None:  # undecodable: its work item names it (a dead letter)
                continue
            if record is not None and message.execution_id == record.execution_id:
                continue
            if message.event.timestamp < cutoff:
                stale.append(r)
        return stale
