"""Dead letters: undecodable records moved to the poison table with their reason, listed,
shown, put back where they came from (``retry``) and deleted (the contract's dead-letter store).

A row holds one of two forms (its ``Form``): a queue message's content as it was stored, put
back on its queue as is (undecodable messages), or the contract's record form of a history (a
JSON array of its rows' texts, put back as the instance's current history) or of an activity
task (:meth:`ActivityTask.to_json`, put back on the activity queue), for records the core
found undecodable (see :mod:`._aside`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.storage.queue import QueueMessage
from ostinato.clock import utcnow
from ostinato.errors import FailureDetails, ProviderError
from ostinato.history import TaskFailed
from ostinato.provider import ActivityTask, DeadLetter, DeadLetterKind, OrchestrationMessage
from ostinato.runtime import telemetry

from ostinato_azure._base import _SENTINEL, HISTORY_BATCH_ROWS, _chunks, _etag, log
from ostinato_azure._errors import ignoring_lost_message
from ostinato_azure._keys import table_key
from ostinato_azure._payloads import get_property, put_property
from ostinato_azure._queues import QueueOps, split_count
from ostinato_azure._state import _Received

#: A row's ``Form``: the queue message's content as stored (the default), or a record.
QUEUED = "queue"
RECORD = "record"
#: Attempts at restoring a history while other writers change its instance row.
_RESTORE_ATTEMPTS = 5


class DeadLetters(QueueOps):
    """The poison table: messages that failed too often."""

    def _poison_message(self, queue: int, raw: QueueMessage, reason: str) -> None:
        """Move a control-queue message naming no instance aside at once."""
        log.error("Moving control-queue message %s to the dead letters: %s", raw.id, reason)
        body = _body_of(str(raw.content))
        name = self.names.control_queue(queue)
        count = int(raw.dequeue_count or 0)
        iid = instance_named_in(body)
        self._store_poison(name, str(raw.id), body, count, reason, iid, DeadLetterKind.MESSAGE)
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
            DeadLetterKind.MESSAGE,
        )

    def _store_poison(
        self,
        queue_name: str,
        message_id: str,
        body: str,
        count: int,
        reason: str,
        iid: str,
        kind: DeadLetterKind,
        form: str = QUEUED,
    ) -> DeadLetter:
        """Write (or, with the same ``message_id``, replace) a dead-letter row."""
        entity: dict[str, Any] = {
            "PartitionKey": "poison",
            "RowKey": message_id,
            "Queue": queue_name,
            "InstanceId": iid,
            "DequeueCount": count,
            "Reason": reason,
            "PoisonedAt": utcnow(),
            "Kind": kind.value,
            "Form": form,
        }
        put_property(entity, "Body", body, iid or "poison", self.blobs)
        self.count("table.upsert")
        self._poison.upsert_entity(entity, mode=UpdateMode.REPLACE)
        source = "activity" if queue_name == self.names.activity_queue else "orchestration"
        telemetry.current().dead_lettered(source, queue_name or self.names.instances_table)
        return DeadLetter(message_id, kind, iid, body, reason, entity["PoisonedAt"])

    def _poison_activity(self, raw: QueueMessage, reason: str, task: ActivityTask | None) -> None:
        """Park the task and fail it in its orchestration, so nothing waits forever (a task
        too broken to decode is failed if its text still names its instance, execution and
        task id)."""
        log.error("Moving activity message %s to the dead letters: %s", raw.id, reason)
        body = _body_of(str(raw.content))
        task = task or task_named_in(body)
        self._store_poison(
            self.names.activity_queue,
            str(raw.id),
            body,
            int(raw.dequeue_count or 0),
            reason,
            task.instance_id if task else instance_named_in(body),
            DeadLetterKind.ACTIVITY_TASK,
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
                "queue": row.get("Queue", ""),
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
        """Put the record back where it came from as it was stored, then delete the letter
        (a crash in between puts it back twice: the core drops the duplicate)."""
        with self._mapped_errors("retry a dead letter"):
            try:
                self.replay_poison_message(dead_letter_id)
            except ResourceNotFoundError:
                return False
        self.changes.notify()
        return True

    def _delete_dead_letters_of(self, instance_id: str) -> None:
        """Delete every dead letter of ``instance_id`` (purge)."""
        self.count("table.query")
        rows = list(
            self._poison.query_entities(
                "PartitionKey eq 'poison' and InstanceId eq @iid",
                parameters={"iid": instance_id},
                select=["RowKey"],
            )
        )
        for row in rows:
            self.count("table.delete")
            self._poison.delete_entity("poison", str(row["RowKey"]))

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
            kind=DeadLetterKind(row.get("Kind", DeadLetterKind.MESSAGE.value)),
            instance_id=str(row.get("InstanceId", "")),
            body=get_property(row, "Body", self.blobs) or "",
            reason=str(row["Reason"]),
            created_at=poisoned if isinstance(poisoned, datetime) else utcnow(),
        )

    def replay_poison_message(self, message_id: str) -> None:
        """Put a dead letter back where it came from and delete it: a message back on its
        queue (with a fresh dequeue count), a history back as its instance's current history,
        an activity task back on the activity queue. Raises ``ResourceNotFoundError`` if it
        does not exist."""
        self.setup()
        self.count("table.read")
        row = self._poison.get_entity("poison", message_id)
        body = get_property(row, "Body", self.blobs)
        assert body is not None
        kind = DeadLetterKind(row.get("Kind", DeadLetterKind.MESSAGE.value))
        if row.get("Form", QUEUED) == QUEUED:
            self.count("queue.send")
            queue = self._queue_service.get_queue_client(str(row["Queue"]))
            queue.send_message(body, time_to_live=-1)
        elif kind is DeadLetterKind.HISTORY:
            self._restore_history(str(row["InstanceId"]), json.loads(body))
        else:
            self._send_activity(ActivityTask.from_json(body))
        self.count("table.delete")
        self._poison.delete_entity(
            "poison", message_id, etag=_etag(row), match_condition=MatchConditions.IfNotModified
        )

    def _restore_history(self, instance_id: str, texts: list[str]) -> None:
        """Make ``texts`` the rows of the instance's current history: written under its
        current execution, then its row's ``HistorySize`` (ETag-conditional, as a checkpoint;
        in one transaction up to 99 rows). A work item of this process holding the instance
        keeps its lock (the history is new, the step is still its own to write)."""
        pk = table_key(instance_id)
        for _ in range(_RESTORE_ATTEMPTS):
            row = self._read_row(instance_id)
            if row is None:
                raise ProviderError(f"Instance '{instance_id}' has no row to restore into")
            old = etag = _etag(row)
            execution = str(row.get("ExecutionId", ""))
            rows: list[dict[str, Any]] = []
            for seq, text in enumerate(texts):
                entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": f"{execution}.{seq:08d}"}
                put_property(entity, "Event", text, instance_id, self.blobs)
                rows.append(entity)
            chunks = list(_chunks(rows, HISTORY_BATCH_ROWS)) or [[]]
            try:
                for number, chunk in enumerate(chunks):
                    sentinel: dict[str, Any] = {"PartitionKey": pk, "RowKey": _SENTINEL}
                    if number == len(chunks) - 1:
                        sentinel["HistorySize"] = len(rows)
                    else:
                        sentinel["Touched"] = utcnow()
                    guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
                    operations: list[Any] = [
                        ("update", sentinel, {"mode": UpdateMode.MERGE, **guard})
                    ]
                    operations += [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in chunk]
                    self.count("table.batch")
                    etag = str(self._instances.submit_transaction(operations)[0]["etag"])
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    continue  # the row changed under us: read it again
                raise
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            self._cache_row(instance_id, None)
            with self._mutex:
                lock = self._locks.get(instance_id)
                if lock is not None and lock.sentinel_etag == old:
                    lock.sentinel_etag = etag
                    lock.sentinel_size = len(rows)
            return
        raise ProviderError(
            f"The row of '{instance_id}' kept changing while its history was restored"
        )


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


def task_named_in(body: str) -> ActivityTask | None:
    """The task an undecodable activity message's JSON still names (instance, execution and
    task id; its name and input may be lost), else ``None``."""
    try:
        data = json.loads(body)
        task = ActivityTask(
            instance_id=data["instance_id"],
            execution_id=data["execution_id"],
            task_id=data["task_id"],
            name=str(data.get("name", "")),
            input=None,
        )
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    valid = isinstance(task.instance_id, str) and isinstance(task.execution_id, str)
    return task if valid and type(task.task_id) is int else None
