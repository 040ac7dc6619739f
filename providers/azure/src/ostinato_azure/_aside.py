"""Moving records the core cannot decode aside: an instance's history and an activity task,
into the dead letters (:mod:`._poison`), when the core asks (the contract's
``dead_letter_history`` and ``dead_letter_activity_task``)."""

from __future__ import annotations

import json
import uuid

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from ostinato.provider import (
    ActivityWorkItem,
    DeadLetter,
    DeadLetterKind,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Work,
)

from ostinato_azure._activities import Activities
from ostinato_azure._base import _SENTINEL, log
from ostinato_azure._keys import table_key
from ostinato_azure._poison import RECORD


class RecordsAside(Activities):
    """Moves an undecodable history or activity task into the dead letters."""

    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        """The dead-letter row first (the rows' texts), then the instance row's
        ``HistorySize`` set to 0 (conditional on the lock's ETag: the history is empty from
        then on; a crash before leaves the history as it was and a spare letter), then the
        rows deleted."""
        lock = self._held(item)
        instance_id = item.instance_id
        with self._mapped_errors("move a history to the dead letters"):
            if lock.sentinel_etag is None or not lock.sentinel_size:
                return None
            execution = lock.sentinel_execution or ""
            size = lock.sentinel_size
            texts = self._history_texts(instance_id, execution, size)
            body = json.dumps(texts, ensure_ascii=False)
            letter = self._store_poison(
                "", uuid.uuid4().hex, body, 0, reason, instance_id, DeadLetterKind.HISTORY, RECORD
            )
            sentinel = {"PartitionKey": table_key(instance_id), "RowKey": _SENTINEL}
            self.count("table.update")
            try:
                written = self._instances.update_entity(
                    {**sentinel, "HistorySize": 0},
                    mode=UpdateMode.MERGE,
                    etag=lock.sentinel_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                self.count("table.delete")  # another writer has the instance: undo
                self._poison.delete_entity("poison", letter.id)
                raise self._release_lost(item, lock) from exc
            lock.sentinel_etag = str(written["etag"])
            lock.sentinel_size = 0
            self._cache_row(instance_id, None)
            try:
                self._delete_rows(instance_id, [f"{execution}.{seq:08d}" for seq in range(size)])
            except AzureError:  # beyond HistorySize, they are never read
                log.warning("Deleting the moved history rows of '%s' failed", instance_id)
        log.error("Moved the history of '%s' to the dead letters: %s", instance_id, reason)
        return letter

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        """As completing the item: the dead-letter row (keyed by the message id: written
        again if a crash comes before the delete), the result, then the message deleted."""
        lock = self._held_activity(item, claim=True)
        task = item.task
        with self._mapped_errors("move an activity task to the dead letters"):
            try:
                letter = self._store_poison(
                    self.names.activity_queue,
                    lock.message_id,
                    task.to_json(),
                    lock.deliveries,
                    reason,
                    task.instance_id,
                    DeadLetterKind.ACTIVITY_TASK,
                    RECORD,
                )
            except Exception:
                lock.done = False  # the task is still ours (the core may abandon it)
                raise
            self._answer_task(lock, task.name, result)
        log.error("Moved activity task %s of '%s' to the dead letters", task.name, task.instance_id)
        self.changes.notify(work=Work.of_messages([result]))
        return letter
