"""Idle polls don't take the write lock; polls after this provider's own writes that add work
of their kind claim at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ostinato.history import ExecutionStarted
from ostinato.provider import ActivityTask, OrchestrationCheckpoint
from ostinato.sqlite import SqliteProvider

from .helpers import LONG, create


@contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock meanwhile."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_polls_that_find_nothing_only_read(db_path: Path) -> None:
    provider = SqliteProvider(db_path, busy_timeout=0.2)
    try:
        provider.setup()
        # Nothing there: the first claim of each kind finds nothing ...
        assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
        assert provider.lock_next_activity_work_items("w", LONG, 10) == []
        # ... and from then on, while nothing is written, polls look without writing: a
        # write lock held by another connection does not get in their way.
        with write_lock_held_elsewhere(db_path):
            for _ in range(3):
                assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
                assert provider.lock_next_activity_work_items("w", LONG, 10) == []
    finally:
        provider.close()


def test_after_its_own_write_a_provider_claims_without_looking_first(db_path: Path) -> None:
    provider = SqliteProvider(db_path)
    try:
        provider.setup()
        assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
        reads: list[str] = []
        # This thread's read connection: where a look before the claim would run.
        provider._reader().connection.set_trace_callback(reads.append)
        assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
        assert len(reads) == 1  # nothing written since the last empty claim: one look

        reads.clear()
        create(provider, "mine")  # this provider's write: a claim will likely find work
        (item,) = provider.lock_next_orchestration_work_items("w", LONG, 10)
        assert item.instance_id == "mine"
        assert reads == []  # it claimed without looking first
    finally:
        provider.close()


def test_work_written_by_another_provider_is_found_by_looking(db_path: Path) -> None:
    poller = SqliteProvider(db_path)
    writer = SqliteProvider(db_path)  # another process's writes: no signal reaches the poller
    try:
        assert poller.lock_next_orchestration_work_items("w", LONG, 10) == []
        create(writer, "theirs")
        (item,) = poller.lock_next_orchestration_work_items("w", LONG, 10)
        assert item.instance_id == "theirs"
    finally:
        poller.close()
        writer.close()


def test_a_write_skips_the_look_only_for_the_kind_of_work_it_adds(db_path: Path) -> None:
    provider = SqliteProvider(db_path)
    try:
        rec = create(provider, "inst")
        item = provider.lock_next_orchestration_work_item("w", LONG)
        assert item is not None
        assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
        assert provider.lock_next_activity_work_items("w", LONG, 10) == []
        reads: list[str] = []
        provider._reader().connection.set_trace_callback(reads.append)
        # A step that schedules an activity and sends no message: activity work, likely;
        # orchestration work, not.
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=rec.with_changes(history_size=1),
                new_history=[ExecutionStarted(name=rec.name, execution_id=rec.execution_id)],
                activity_tasks=[ActivityTask("inst", rec.execution_id, 0, "act")],
            ),
        )
        assert provider.lock_next_orchestration_work_items("w", LONG, 10) == []
        assert len(reads) == 1  # the orchestration poll looked first ...
        (task,) = provider.lock_next_activity_work_items("w", LONG, 10)
        assert task.task.name == "act" and len(reads) == 1  # ... the activity claim did not
    finally:
        provider.close()
