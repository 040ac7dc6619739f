"""Processes on one file take turns on its write lock promptly, time out clearly, survive a
killed holder, and hear of each other's writes (real processes: ``lock_holder.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ostinato.errors import ProviderError
from ostinato.sqlite import SqliteProvider

from .helpers import create

HERE = Path(__file__).parent


class Holder:
    """A process running ``lock_holder.py``: holds the write lock while told to."""

    def __init__(self, db: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "lock_holder.py"), str(db), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _say(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, self.proc.stderr.read() if self.proc.stderr else "no answer"
        return answer

    def hold(self) -> None:
        assert self._say("hold").strip() == "holding"

    def release(self) -> float:
        """Let go; when it did (``time.monotonic()``, the same clock in every process)."""
        word, at = self._say("release").split()
        assert word == "released"
        return float(at)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def holders(db_path: Path) -> Iterator[Callable[[str], Holder]]:
    SqliteProvider(db_path).setup()
    started: list[Holder] = []

    def start(mode: str) -> Holder:
        started.append(Holder(db_path, mode))
        return started[-1]

    yield start
    for holder in started:
        holder.stop()


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``call`` in a thread; its result (``"value"``) or exception (``"error"``) and
    when it ended (``"at"``) land in the dict."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_waiting_process_goes_on_as_soon_as_the_holder_lets_go(
    db_path: Path, holders: Callable[[str], Holder]
) -> None:
    holder = holders("transaction")
    waiter = SqliteProvider(db_path, busy_timeout=60)
    try:
        waiter.setup()
        lags = []

        def write() -> float:
            with waiter.transaction(durable=False):
                return time.monotonic()

        for _ in range(5):  # the best of five: a loaded machine may delay any one
            holder.hold()
            began = time.monotonic()
            thread, outcome = in_thread(write)
            # Let go between two retries of SQLite's busy handler (328 and 428 ms into a
            # wait): a waiter on those alone would go on about 50 ms later.
            time.sleep(max(0.0, began + 0.38 - time.monotonic()))
            released = holder.release()
            thread.join(timeout=60)
            assert "error" not in outcome, outcome
            lags.append(float(outcome["value"]) - released)  # type: ignore[arg-type]
        assert min(lags) < 0.025, lags
    finally:
        waiter.close()


@pytest.mark.parametrize("mode", ["lock", "transaction", "sqlite"])
def test_a_write_waits_for_the_lock_at_most_busy_timeout(
    db_path: Path, holders: Callable[[str], Holder], mode: str
) -> None:
    holder = holders(mode)
    waiter = SqliteProvider(db_path, busy_timeout=0.5)
    try:
        waiter.setup()
        holder.hold()
        began = time.monotonic()
        thread, outcome = in_thread(lambda: create(waiter, "waits"))
        thread.join(timeout=60)
        assert not thread.is_alive(), "the write waited far longer than busy_timeout"
        error = outcome.get("error")
        assert isinstance(error, ProviderError), outcome
        assert "stayed locked by another connection for more than 0.5s" in str(error)
        assert float(outcome["at"]) - began >= 0.5  # type: ignore[arg-type]
        # Nothing is lost: once the lock is free, the write goes through.
        holder.release()
        create(waiter, "waits")
        assert waiter.get_instance("waits") is not None
    finally:
        waiter.close()


@pytest.mark.parametrize("mode", ["lock", "transaction"])
def test_a_holder_killed_holding_the_lock_blocks_no_one(
    db_path: Path, holders: Callable[[str], Holder], mode: str
) -> None:
    holder = holders(mode)
    waiter = SqliteProvider(db_path, busy_timeout=60)
    try:
        waiter.setup()
        holder.hold()
        thread, outcome = in_thread(lambda: create(waiter, "after-kill"))
        os.kill(holder.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        thread.join(timeout=60)
        assert not thread.is_alive() and "error" not in outcome, outcome
        assert float(outcome["at"]) - killed < 30  # type: ignore[arg-type]
        assert waiter.get_instance("after-kill") is not None
    finally:
        waiter.close()


def test_another_process_write_wakes_this_process_waiters(db_path: Path) -> None:
    """A waiter that would not poll for a minute hears of another process's write at once."""
    provider = SqliteProvider(db_path)
    try:
        provider.setup()
        seen = provider.changes.version
        started = subprocess.run(
            [sys.executable, str(HERE / "create_process.py"), str(db_path), "theirs", "0"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.stdout.strip() == "created", started.stderr
        written = time.monotonic()
        assert provider.changes.wait(seen, timeout=60) != seen
        assert time.monotonic() - written < 5
    finally:
        provider.close()


def test_a_provider_hears_nothing_of_its_own_writes_from_the_watcher(db_path: Path) -> None:
    """Its own writes notify once each (from the writing thread), not again from the
    watcher: a busy worker's pollers are not woken twice for every write."""
    provider = SqliteProvider(db_path)
    try:
        provider.setup()
        notified: list[str] = []
        provider.changes.subscribe(lambda work: notified.append(threading.current_thread().name))
        for i in range(20):
            create(provider, f"mine-{i}")
        # The watcher looks every few milliseconds: give it time to (wrongly) notice.
        time.sleep(0.5)
        assert "ostinato-sqlite-watch" not in notified
        assert len(notified) == 20
    finally:
        provider.close()


def test_close_stops_the_watcher_and_a_later_call_starts_it_again(db_path: Path) -> None:
    def watchers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "ostinato-sqlite-watch"}

    before = watchers()
    provider = SqliteProvider(db_path)
    try:
        provider.setup()
        (mine,) = watchers() - before
        provider.close()
        mine.join(timeout=30)
        assert not mine.is_alive()
        create(provider, "reopened")  # reopens: a new watcher
        assert len(watchers() - before) == 1
    finally:
        provider.close()
    assert not {t for t in watchers() - before if t.is_alive()}
