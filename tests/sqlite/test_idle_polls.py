"""Idle polls don't take the write lock; polls after this provider's own writes claim at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
