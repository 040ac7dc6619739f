"""Deliberately broken variants of the in-memory provider, each breaking exactly one guarantee.

They exist to prove the conformance suite has teeth: ``test_broken_providers.py`` runs the
suite against each one and requires at least one failure, and ``kill_matrix.py`` reports
which tests catch which variant (docs/conformance-kill-matrix-memory.md).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta

from ostinato.history import HistoryEvent
from ostinato.memory import InMemoryProvider, _Inbox, _Lock
from ostinato.provider import (
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ReuseIdPolicy,
)
from ostinato.status import OrchestrationStatus


class LosesMessagesOnAbandon(InMemoryProvider):
    """Breaks *no lost message*: abandoning a work item deletes its messages."""

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._mutex:
            inbox = self._held_inbox(item)
            assert inbox.lock is not None
            for seq in inbox.lock.message_seqs:
                inbox.messages.pop(seq, None)
            super().abandon_orchestration_work_item(item, delay)


class LosesMessagesOnLockExpiry(InMemoryProvider):
    """Breaks *no lost message*: when a lock expires, the messages it held are dropped."""

    def _wake_orchestrations(self, now):  # type: ignore[no-untyped-def]
        for inbox in self._inboxes.values():
            if inbox.lock is not None and inbox.lock.expires <= now:
                for seq in inbox.lock.message_seqs:
                    inbox.messages.pop(seq, None)
        super()._wake_orchestrations(now)


class IgnoresLockExpiry(InMemoryProvider):
    """Breaks *lock expiry*: locks never expire, so a crashed worker's work is stuck forever."""

    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        return super().lock_next_orchestration_work_item(worker_id, timedelta(days=365))

    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        return super().lock_next_activity_work_item(worker_id, timedelta(days=365))


class HandsOutLockedInstances(InMemoryProvider):
    """Breaks *one owner*: a locked instance with messages is handed to the next worker too."""

    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        with self._mutex:
            now = self.now()
            for instance_id, inbox in self._inboxes.items():
                if inbox.lock is not None and self._visible(inbox, now):
                    inbox.lock = None
                    self._ready[instance_id] = None
            return super().lock_next_orchestration_work_item(worker_id, lock_timeout)


class ActivityLockNotExclusive(InMemoryProvider):
    """Breaks *one owner* for activities: locked tasks are handed out again."""

    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        with self._mutex:
            for seq, activity in self._activities.items():
                if activity.lock is not None:
                    activity.lock = None
                    self._ready_activities[seq] = None
            return super().lock_next_activity_work_item(worker_id, lock_timeout)


class NoLockCheckOnComplete(InMemoryProvider):
    """Breaks *two workers never both commit*: complete doesn't check the lock token."""

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._mutex:
            inbox = self._inboxes.setdefault(item.instance_id, _Inbox())
            ids = {m.message_id for m in item.messages}
            seqs = frozenset(s for s, m in inbox.messages.items() if m.message_id in ids)
            inbox.lock = _Lock(item.lock_token, self.now() + timedelta(hours=1), seqs)
            super().complete_orchestration_work_item(item, checkpoint)


class FiresTimersEarly(InMemoryProvider):
    """Breaks *timers never fire early*: ``visible_at`` is ignored."""

    def _enqueue(self, message: OrchestrationMessage) -> None:
        super()._enqueue(replace(message, visible_at=None))


class ConsumesLateMessages(InMemoryProvider):
    """Breaks *exactly-once*: complete also deletes messages that arrived after the lock."""

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._mutex:
            inbox = self._held_inbox(item)
            assert inbox.lock is not None
            inbox.lock.message_seqs = frozenset(inbox.messages)
            super().complete_orchestration_work_item(item, checkpoint)


class RedeliversConsumedMessages(InMemoryProvider):
    """Breaks *exactly-once*: completed messages are not deleted and come back."""

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._mutex:
            inbox = self._held_inbox(item)
            assert inbox.lock is not None
            inbox.lock.message_seqs = frozenset()
            super().complete_orchestration_work_item(item, checkpoint)


class DropsOutboundMessages(InMemoryProvider):
    """Breaks *the whole checkpoint is applied*: messages to other instances are dropped."""

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        kept = [m for m in checkpoint.messages if m.instance_id == item.instance_id]
        super().complete_orchestration_work_item(item, replace(checkpoint, messages=kept))


class NonAtomicCreate(InMemoryProvider):
    """Breaks *atomic create*: the reuse-id check and the write are separate steps."""

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        existing = self.get_instance(record.instance_id)
        if existing is not None and existing.runtime_status not in policy.replaceable_statuses:
            super().create_instance(record, start, policy)  # raises
        time.sleep(0.01)
        super().create_instance(record, start, ReuseIdPolicy.REPLACE_ANY)


class ReplaceKeepsOldHistory(InMemoryProvider):
    """Breaks *replace*: replacing a finished instance keeps its history and messages."""

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        with self._mutex:
            old_history = self._history.get(record.instance_id)
            inbox = self._inboxes.get(record.instance_id)
            old_messages = dict(inbox.messages) if inbox else {}
            super().create_instance(record, start, policy)
            if old_history is not None:
                self._history[record.instance_id] = old_history
            if inbox is not None:
                inbox.messages.update(old_messages)


class PurgeLeavesHistory(InMemoryProvider):
    """Breaks *purge removes everything*: the history survives the purge."""

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        with self._mutex:
            kept = self._history.get(instance_id)
            deleted = super().purge_instance(instance_id, only_if_status)
            if deleted and kept is not None:
                self._history[instance_id] = kept
            return deleted


class QueryPagingSkipsItems(InMemoryProvider):
    """Breaks *exact paging*: the continuation token skips the first item of the next page."""

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        page = super().query_instances(replace(query, page_size=query.page_size + 1))
        if len(page.items) <= query.page_size:
            return page
        return Page(page.items[: query.page_size], page.items[query.page_size].instance_id)


class QueryCreatedToExclusive(InMemoryProvider):
    """Breaks *exact filters*: ``created_to`` excludes its bound (it is inclusive)."""

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        page = super().query_instances(query)
        if query.created_to is None:
            return page
        return Page(
            [r for r in page.items if r.created_at < query.created_to], page.continuation_token
        )


PAYLOAD_LIMIT = 60_000


def _truncate(text: str | None) -> str | None:
    return text[:PAYLOAD_LIMIT] if text is not None else None


class TruncatesLargePayloads(InMemoryProvider):
    """Breaks *payloads round-trip*: stored inputs and outputs are cut to 60,000 characters."""

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        super().create_instance(record.with_changes(input=_truncate(record.input)), start, policy)

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        record = checkpoint.instance
        if record is not None:
            record = record.with_changes(
                input=_truncate(record.input), output=_truncate(record.output)
            )
        super().complete_orchestration_work_item(item, replace(checkpoint, instance=record))


def _mangle(instance_id: str) -> str:
    return unicodedata.normalize("NFKC", instance_id)


class MangledUnicodeIds(InMemoryProvider):
    """Breaks *ids round-trip*: instance ids are stored NFKC-normalized."""

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        iid = _mangle(record.instance_id)
        super().create_instance(
            record.with_changes(instance_id=iid), replace(start, instance_id=iid), policy
        )

    def send_message(self, message: OrchestrationMessage) -> None:
        super().send_message(replace(message, instance_id=_mangle(message.instance_id)))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return super().get_instance(_mangle(instance_id))

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        return super().get_history(_mangle(instance_id))

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        return super().purge_instance(_mangle(instance_id), only_if_status)


#: Every variant, by name, with the guarantee it breaks (first line of its docstring).
VARIANTS: dict[str, type[InMemoryProvider]] = {
    cls.__name__: cls
    for cls in (
        LosesMessagesOnAbandon,
        LosesMessagesOnLockExpiry,
        IgnoresLockExpiry,
        HandsOutLockedInstances,
        ActivityLockNotExclusive,
        NoLockCheckOnComplete,
        FiresTimersEarly,
        ConsumesLateMessages,
        RedeliversConsumedMessages,
        DropsOutboundMessages,
        NonAtomicCreate,
        ReplaceKeepsOldHistory,
        PurgeLeavesHistory,
        QueryPagingSkipsItems,
        QueryCreatedToExclusive,
        TruncatesLargePayloads,
        MangledUnicodeIds,
    )
}
