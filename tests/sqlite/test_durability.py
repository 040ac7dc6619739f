"""Which SQLite commits wait for the disk: the ones a caller or a later step relies on."""

from __future__ import annotations

from pathlib import Path

from ostinato.history import ExecutionStarted, OrchestratorStarted, TaskCompleted
from ostinato.provider import ActivityTask, OrchestrationCheckpoint, OrchestrationMessage, Work
from ostinato.sqlite import SqliteProvider

from .helpers import LONG, create


def test_activity_results_do_not_wait_for_the_disk_but_the_next_checkpoint_syncs_them(
    db_path: Path,
) -> None:
    provider = SqliteProvider(db_path)  # synchronous=FULL, group commit
    try:
        rec = create(provider, "inst")
        syncs = provider.wal_syncs
        assert syncs >= 1  # the create waited for its sync
        item = provider.lock_next_orchestration_work_item("w", LONG)
        assert item is not None and provider.wal_syncs == syncs  # a claim: no sync
        started = rec.with_changes(history_size=2)
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=started,
                new_history=[
                    ExecutionStarted(name=rec.name, execution_id=rec.execution_id),
                    OrchestratorStarted(),
                ],
                activity_tasks=[ActivityTask("inst", rec.execution_id, 0, "act")],
            ),
        )
        assert provider.wal_syncs == syncs + 1  # a checkpoint is durable when it returns
        task = provider.lock_next_activity_work_item("w", LONG)
        assert task is not None
        result = OrchestrationMessage(
            instance_id="inst",
            execution_id=rec.execution_id,
            event=TaskCompleted(task_scheduled_id=0, result='"done"'),
        )
        provider.complete_activity_work_item(task, result)
        assert provider.wal_syncs == syncs + 1  # the result did not wait for a sync ...
        woken = provider.lock_next_orchestration_work_item("w", LONG)
        assert woken is not None and [m.message_id for m in woken.messages] == [
            result.message_id
        ]  # ... yet it is committed: the step it wakes sees it
        provider.complete_orchestration_work_item(
            woken,
            OrchestrationCheckpoint(
                instance=started.with_changes(history_size=4),
                new_history=[result.event, OrchestratorStarted()],
            ),
        )
        assert provider.wal_syncs == syncs + 2  # the step that consumed it synced both
    finally:
        provider.close()


def test_waiters_are_woken_when_a_commit_is_visible_and_the_call_returns_once_it_is_synced(
    db_path: Path,
) -> None:
    provider = SqliteProvider(db_path)  # synchronous=FULL, group commit
    try:
        create(provider, "inst")
        seen: list[tuple[int, list[str]]] = []
        reader = SqliteProvider(db_path)

        def woken(work: Work) -> None:
            # What a woken waiter finds: the message is visible, its sync still to come.
            item = reader.lock_next_orchestration_work_item("w", LONG)
            messages = [] if item is None else [m.message_id for m in item.messages]
            seen.append((provider.wal_syncs, messages))

        syncs = provider.wal_syncs
        provider.changes.subscribe(woken)
        message = OrchestrationMessage(
            instance_id="inst", event=TaskCompleted(task_scheduled_id=0, result="1")
        )
        provider.send_message(message)
        provider.changes.unsubscribe(woken)
        reader.close()
        assert provider.wal_syncs == syncs + 1  # the call returned once its commit was synced
        # The first wake-up is the send's; the provider's watcher may add more for the
        # reader's own commits (another connection's writes).
        assert seen
        synced_then, messages = seen[0]
        assert synced_then == syncs  # woken before the sync ...
        assert message.message_id in messages  # ... when the commit was already visible
    finally:
        provider.close()
