"""Poison messages: moved to the poison table with their reason, listed and replayed."""

from __future__ import annotations

from typing import Any

from azure.data.tables import UpdateMode
from azure.storage.queue import QueueMessage
from ostinato.clock import utcnow
from ostinato.errors import FailureDetails
from ostinato.history import TaskFailed
from ostinato.provider import ActivityTask, OrchestrationMessage
from ostinato.runtime import telemetry

from ostinato_azure._base import log
from ostinato_azure._errors import ignoring_lost_message
from ostinato_azure._payloads import get_property, put_property
from ostinato_azure._queues import QueueOps


class DeadLetters(QueueOps):
    """The poison table: messages that failed too often."""

    def _poison_message(
        self, queue: int, raw: QueueMessage, reason: str, instance_id: str = ""
    ) -> None:
        log.error("Moving control-queue message %s to the poison table: %s", raw.id, reason)
        self._store_poison(self.names.control_queue(queue), raw, reason, instance_id)
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def _store_poison(self, queue_name: str, raw: QueueMessage, reason: str, iid: str) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": "poison",
            "RowKey": str(raw.id),
            "Queue": queue_name,
            "InstanceId": iid,
            "DequeueCount": int(raw.dequeue_count or 0),
            "Reason": reason,
            "PoisonedAt": utcnow(),
        }
        put_property(entity, "Body", str(raw.content), iid or "poison", self.blobs)
        self.count("table.upsert")
        self._poison.upsert_entity(entity, mode=UpdateMode.REPLACE)
        kind = "activity" if queue_name == self.names.activity_queue else "orchestration"
        telemetry.current().dead_lettered(kind, queue_name)

    def _poison_activity(self, raw: QueueMessage, reason: str, task: ActivityTask | None) -> None:
        """Park the task and fail it in its orchestration, so nothing waits forever."""
        log.error("Moving activity message %s to the poison table: %s", raw.id, reason)
        self._store_poison(self.names.activity_queue, raw, reason, task.instance_id if task else "")
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
