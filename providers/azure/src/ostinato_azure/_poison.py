"""Dead letters: undecodable messages moved to the poison table with their reason, listed,
shown, put back on their queue (``retry``) and deleted (the contract's dead-letter store)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueMessage
from ostinato.clock import utcnow
from ostinato.errors import FailureDetails
from ostinato.history import TaskFailed
from ostinato.provider import ActivityTask, DeadLetter, DeadLetterKind, OrchestrationMessage
from ostinato.runtime import telemetry

from ostinato_azure._base import log
from ostinato_azure._errors import ignoring_lost_message
from ostinato_azure._payloads import get_property, put_property
from ostinato_azure._queues import QueueOps, split_count
from ostinato_azure._state import _Received


class DeadLetters(QueueOps):
    """The poison table: messages that failed too often."""

    def _poison_message(self, queue: int, raw: QueueMessage, reason: str) -> None:
        """Move a control-queue message naming no instance aside at once."""
        log.error("Moving control-queue message %s to the dead letters: %s", raw.id, reason)
        body = _body_of(str(raw.content))
        name = self.names.control_queue(queue)
        count = int(raw.dequeue_count or 0)
        self._store_poison(name, str(raw.id), body, count, reason, instance_named_in(body))
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def _dead_letter_received(self, received: _Received) -> None:
        """Write the dead-letter row of an undecodable message its work item consumed.

        The row is keyed by the message id, so writing it again (the message redelivered
        after a crash before its delete) replaces it: the caller deletes the message after.
        """
        self._store_poison(
            self.names.control_queue(received.queue),
            received.message_id,
            received.body,
            received.dequeue_count,
            received.reason,
            received.instance_id,
        )

    def _store_poison(
        self, queue_name: str, message_id: str, body: str, count: int, reason: str, iid: str
    ) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": "poison",
            "RowKey": message_id,
            "Queue": queue_name,
            "InstanceId": iid,
            "DequeueCount": count,
            "Reason": reason,
            "PoisonedAt": utcnow(),
        }
        put_property(entity, "Body", body, iid or "poison", self.blobs)
        self.count("table.upsert")
        self._poison.upsert_entity(entity, mode=UpdateMode.REPLACE)
        kind = "activity" if queue_name == self.names.activity_queue else "orchestration"
        telemetry.current().dead_lettered(kind, queue_name)

    def _poison_activity(self, raw: QueueMessage, reason: str, task: ActivityTask | None) -> None:
        """Park the task and fail it in its orchestration, so nothing waits forever."""
        log.error("Moving activity message %s to the dead letters: %s", raw.id, reason)
        self._store_poison(
            self.names.activity_queue,
            str(raw.id),
            _body_of(str(raw.content)),
            int(raw.dequeue_count or 0),
            reason,
            task.instance_id if task else "",
        )
        if task is not None:
            failure = FailureDetails("PoisonMessageError", f"Activity {task.name!r}: {reason}")
            self._send_orchestration_message(
                OrchestrationMessage(
                    instance_id=task.instance_id,
                    execution_id=task.execution_id,
                    event=TaskFailed(task_scheduled_id=task.task_id, failure=failure),
                )
            )
        self.count("queue.delete")
        with ignoring_lost_message():
            self._activity_queue.delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def list_poison_messages(self) -> list[dict[str, Any]]:
        """Messages moved to the poison table: id, queue, instance, dequeue count, reason."""
        self.setup()
        self.count("table.query")
        return [
            {
                "id": row["RowKey"],
                "queue": row["Queue"],
                "instance_id": row.get("InstanceId", ""),
                "dequeue_count": row.get("DequeueCount", 0),
                "reason": row["Reason"],
                "poisoned_at": row.get("PoisonedAt"),
            }
            for row in self._poison.query_entities("PartitionKey eq 'poison'")
        ]

    # -- the contract's dead-letter store ---------------------------------------------------
    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (of one instance, if given), at most ``limit``."""
        with self._mapped_errors("list dead letters"):
            self.setup()
            self.count("table.query")
            query = "PartitionKey eq 'poison'"
            parameters: dict[str, Any] = {}
            if instance_id is not None:
                query += " and InstanceId eq @iid"
                parameters["iid"] = instance_id
            rows = list(self._poison.query_entities(query, parameters=parameters))
            letters = [self._dead_letter_from(row) for row in rows]
        letters.sort(key=lambda d: (d.created_at, d.id))
        return letters[:limit]

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        with self._mapped_errors("read a dead letter"):
            self.setup()
            self.count("table.read")
            try:
                row = self._poison.get_entity("poison", dead_letter_id)
            except ResourceNotFoundError:
                return None
            return self._dead_letter_from(row)

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        """Put the message back on its queue as it was stored, then delete the letter."""
        with self._mapped_errors("retry a dead letter"):
            try:
                self.replay_poison_message(dead_letter_id)
            except ResourceNotFoundError:
                return False
        self.changes.notify()
        return True

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        with self._mapped_errors("delete a dead letter"):
            self.setup()
            self.count("table.read")
            try:  # (a delete of a missing entity succeeds: read first to say whether it was)
                row = self._poison.get_entity("poison", dead_letter_id)
            except ResourceNotFoundError:
                return False
            self.count("table.delete")
            self._poison.delete_entity(
                "poison",
                dead_letter_id,
                etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return True

    def _dead_letter_from(self, row: Any) -> DeadLetter:
        poisoned = row.get("PoisonedAt")
        return DeadLetter(
            id=str(row["RowKey"]),
            kind=DeadLetterKind.MESSAGE,
            instance_id=str(row.get("InstanceId", "")),
            body=get_property(row, "Body", self.blobs) or "",
            reason=str(row["Reason"]),
            created_at=poisoned if isinstance(poisoned, datetime) else utcnow(),
        )

    def replay_poison_message(self, message_id: str) -> None:
        """Put a poison message back on its queue (with a fresh dequeue count)."""
        self.setup()
        self.count("table.read")
        row = self._poison.get_entity("poison", message_id)
        body = get_property(row, "Body", self.blobs)
        assert body is not None
        self.count("queue.send")
        self._queue_service.get_queue_client(str(row["Queue"])).send_message(body, time_to_live=-1)
        self.count("table.delete")
        self._poison.delete_entity("poison", message_id)


def _body_of(content: str) -> str:
    """A message's stored body (without its count prefix), or all of it if that is broken."""
    try:
        return split_count(content)[1]
    except ValueError:
        return content


def instance_named_in(body: str) -> str:
    """The instance id an undecodable message's JSON still names, else ``""``."""
    try:
        value = json.loads(body).get("instance_id", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
