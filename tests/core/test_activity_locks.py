"""A worker locks an activity task only when something can start it at once.

Two workers share one SQLite store, each with its own app (the same names, so each test
knows which worker ran what). A synchronous activity blocks until the test releases it, so
the first worker's threads stay busy while the second one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
from ostinato.sqlite import SqliteProvider

#: Generous: the machine may be busy.
DEADLINE = 30.0


class Runs:
    """What each worker's activities did, and the event that lets blocked ones finish."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.release = threading.Event()
        #: Per activity input: the workers that started it, in order.
        self.started: dict[str, list[str]] = {}
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def begin(self, worker: str, key: str) -> None:
        with self.changed:
            self.started.setdefault(key, []).append(worker)
            self.running[worker] = self.running.get(worker, 0) + 1
            self.peak[worker] = max(self.peak.get(worker, 0), self.running[worker])
            self.changed.notify_all()

    def end(self, worker: str) -> None:
        with self.changed:
            self.running[worker] -= 1
            self.changed.notify_all()

    def on(self, worker: str) -> list[str]:
        with self.changed:
            return [key for key, workers in self.started.items() if worker in workers]

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        with self.changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting until {what}: {self.started}")
                self.changed.wait(left)


def make_app(worker: str, runs: Runs) -> ot.App:
    """An app whose ``slow`` activity blocks until ``runs.release``, whose ``quick`` one is
    ``async def`` (both record that ``worker`` ran them), and whose ``short`` one returns at
    once."""
    app = ot.App()

    @app.activity(name="slow")
    def slow(ctx: ot.ActivityContext, key: str) -> str:
        runs.begin(worker, key)
        try:
            assert runs.release.wait(DEADLINE * 4), "never released"
        finally:
            runs.end(worker)
        return key

    @app.activity(name="short")
    def short(ctx: ot.ActivityContext, key: str) -> str:
        return key

    @app.activity(name="quick")
    async def quick(ctx: ot.ActivityContext, key: str) -> str:
        runs.begin(worker, key)
        await asyncio.sleep(0)
        runs.end(worker)
        return key

    @app.orchestrator(name="fan")
    def fan(ctx: ot.OrchestrationContext, calls: list[list[str]]) -> Any:
        return (yield ot.when_all([ctx.call_activity(name, input=key) for name, key in calls]))

    return app


@contextlib.contextmanager
def worker(
    app: ot.App, path: Path, threads: int, runs: Runs, **options: Any
) -> Iterator[ot.Worker]:
    """A worker on the store at ``path``; blocked activities are released when the block
    ends, even when it fails (so the worker stops promptly)."""
    with ot.Worker(
        app, SqliteProvider(path), activity_threads=threads, max_poll_interval=0.05, **options
    ) as running:
        try:
            yield running
        finally:
            runs.release.set()


def test_a_busy_worker_leaves_sync_tasks_to_another_worker_and_none_runs_twice(
    tmp_path: Path,
) -> None:
    runs = Runs()
    path = tmp_path / "hub.db"
    client = ot.Client(SqliteProvider(path))
    calls = [["slow", str(n)] for n in range(20)]
    with worker(make_app("first", runs), path, 2, runs):
        instance_id = client.schedule_new_orchestration("fan", input=calls)
        runs.wait_until(lambda: runs.running.get("first") == 2, "the first worker is busy")
        with worker(make_app("second", runs), path, 2, runs):
            # The first worker holds only what its two threads run: the second gets work.
            runs.wait_until(lambda: runs.running.get("second") == 2, "the second worker runs 2")
            assert runs.running["first"] == 2, "the first worker's activities are still blocked"
            runs.release.set()
            state = client.wait_for_orchestration_completion(instance_id, timeout=DEADLINE)
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.output == [str(n) for n in range(20)]
    twice = {key: workers for key, workers in runs.started.items() if len(workers) > 1}
    assert not twice, f"activities run more than once: {twice}"
    assert sorted(runs.started, key=int) == [str(n) for n in range(20)]
    assert runs.peak == {"first": 2, "second": 2}
    assert runs.on("first") and runs.on("second")


def test_async_tasks_run_and_commit_while_every_thread_is_busy_and_sync_ones_are_not_held(
    tmp_path: Path,
) -> None:
    runs = Runs()
    path = tmp_path / "hub.db"
    client = ot.Client(SqliteProvider(path))
    with worker(make_app("first", runs), path, 1, runs):
        slow = client.schedule_new_orchestration("fan", input=[["slow", "s0"], ["slow", "s1"]])
        runs.wait_until(lambda: runs.running.get("first") == 1, "the one thread is busy")
        # The async activities run, and their results are committed, beside the busy thread.
        quick = client.schedule_new_orchestration("fan", input=[["quick", "q0"], ["quick", "q1"]])
        done = client.wait_for_orchestration_completion(quick, timeout=DEADLINE)
        assert done is not None and done.output == ["q0", "q1"]
        assert runs.running["first"] == 1, "the sync activity is still blocked"
        (blocked,) = [key for key in runs.on("first") if key.startswith("s")]
        # The other sync task is not held by the busy worker: a second worker runs it.
        with worker(make_app("second", runs), path, 1, runs):
            runs.wait_until(lambda: runs.running.get("second") == 1, "the second worker runs it")
            assert runs.running["first"] == 1
            runs.release.set()
            state = client.wait_for_orchestration_completion(slow, timeout=DEADLINE)
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.output == ["s0", "s1"]
    assert all(len(workers) == 1 for workers in runs.started.values()), runs.started
    assert runs.on("second") == [({"s0", "s1"} - {blocked}).pop()]


def test_sync_tasks_locked_after_short_ones_are_given_back_if_no_thread_takes_them_up(
    tmp_path: Path,
) -> None:
    """After short activities the worker locks more sync tasks than it has threads (they
    would start within milliseconds); behind a blocked one, the renewer gives them back
    instead of renewing them, and another worker runs them, each once."""
    runs = Runs()
    path = tmp_path / "hub.db"
    client = ot.Client(SqliteProvider(path))
    lock = {"lock_timeout": timedelta(seconds=1.5)}  # renewals due every quarter second
    with worker(make_app("first", runs), path, 1, runs, **lock):
        short = client.schedule_new_orchestration(
            "fan", input=[["short", str(n)] for n in range(50)]
        )
        done = client.wait_for_orchestration_completion(short, timeout=DEADLINE)
        assert done is not None and done.runtime_status is ot.OrchestrationStatus.COMPLETED
        calls = [["slow", f"s{n}"] for n in range(10)]
        slow = client.schedule_new_orchestration("fan", input=calls)
        runs.wait_until(lambda: runs.running.get("first") == 1, "the one thread is busy")
        with worker(make_app("second", runs), path, 1, runs, **lock):
            runs.wait_until(lambda: runs.running.get("second") == 1, "the second worker runs one")
            assert runs.running["first"] == 1
            runs.release.set()
            state = client.wait_for_orchestration_completion(slow, timeout=DEADLINE)
    assert state is not None and state.output == [f"s{n}" for n in range(10)]
    slow_runs = {key: w for key, w in runs.started.items() if key.startswith("s")}
    assert sorted(slow_runs) == sorted(f"s{n}" for n in range(10))
    assert all(len(w) == 1 for w in slow_runs.values()), slow_runs
