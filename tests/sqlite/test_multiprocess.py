"""Several processes on one SQLite file: atomic starts, shared workers, and kill -9 recovery."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.history import (
    EventType,
    ExecutionStarted,
    TaskCompleted,
    TaskScheduled,
)
from ostinato.sqlite import SqliteProvider

HERE = Path(__file__).parent
EXPECTED = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
CITIES = ("Tokyo", "Seattle", "London")


def test_processes_starting_one_id_create_exactly_one(db_path: Path) -> None:
    SqliteProvider(db_path).setup()
    start_at = time.time() + 2.0  # after every interpreter has started
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "create_process.py"),
                str(db_path),
                "only-one",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["created"] + ["exists"] * 5
    provider = SqliteProvider(db_path)
    item = provider.lock_next_orchestration_work_item("w", timedelta(minutes=5))
    assert item is not None and len(item.messages) == 1
    provider.close()


class Workers:
    """Worker processes running ``worker_process.py`` against one database."""

    def __init__(self, db: Path, effects: Path) -> None:
        self.db, self.effects = db, effects
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, count: int, *, lock_timeout: float, sleep: float, max_activities: int) -> None:
        started = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "worker_process.py"),
                    str(self.db),
                    str(self.effects),
                    str(lock_timeout),
                    str(sleep),
                    str(max_activities),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for proc in started:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        self.procs += started

    def kill(self) -> None:
        for proc in self.procs:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self.procs = []

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    path = tmp_path / "effects.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE effects (instance_id TEXT, city TEXT, pid INTEGER)")
    return path


@pytest.fixture
def workers(db_path: Path, effects: Path) -> Iterator[Workers]:
    SqliteProvider(db_path).setup()
    w = Workers(db_path, effects)
    yield w
    w.kill()


def _effects(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path, timeout=30) as conn:
        return [tuple(r) for r in conn.execute("SELECT instance_id, city, pid FROM effects")]


def _check_history(client: ot.Client, instance_id: str) -> None:
    """Exactly one execution whose every state change was applied once."""
    history = client.get_orchestration_history(instance_id)
    kinds = Counter(e.event_type for e in history)
    assert kinds[EventType.EXECUTION_STARTED] == 1
    assert kinds[EventType.TASK_SCHEDULED] == 3
    assert kinds[EventType.TASK_COMPLETED] == 3
    assert kinds[EventType.EXECUTION_COMPLETED] == 1
    assert isinstance(history[0], ExecutionStarted)
    scheduled = [e.task_id for e in history if isinstance(e, TaskScheduled)]
    completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
    assert sorted(scheduled) == sorted(completed) == sorted(set(scheduled))


def test_several_worker_processes_share_one_file(
    db_path: Path, effects: Path, workers: Workers
) -> None:
    workers.start(3, lock_timeout=30, sleep=0.01, max_activities=4)
    client = ot.Client(SqliteProvider(db_path))
    ids = [client.schedule_new_orchestration("hello_cities") for _ in range(60)]
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
        assert state.output == EXPECTED
        _check_history(client, instance_id)
    workers.stop()
    done = _effects(effects)
    per_step = Counter((iid, city) for iid, city, _ in done)
    assert per_step == Counter({(iid, city): 1 for iid in ids for city in CITIES})
    assert len({pid for _, _, pid in done}) >= 2  # the work really was shared


def test_kill_9_mid_run_then_a_new_worker_finishes_everything(
    db_path: Path, effects: Path, workers: Workers
) -> None:
    max_activities = 4
    workers.start(2, lock_timeout=1.5, sleep=0.03, max_activities=max_activities)
    client = ot.Client(SqliteProvider(db_path))
    ids = [client.schedule_new_orchestration("hello_cities") for _ in range(40)]
    deadline = time.monotonic() + 60
    while len(_effects(effects)) < 20:  # well into the run...
        assert time.monotonic() < deadline
        time.sleep(0.01)
    workers.kill()  # ...kill -9 every worker, mid-checkpoint or mid-activity
    finished_before = sum(
        client.get_orchestration_state(i).runtime_status.is_terminal  # type: ignore[union-attr]
        for i in ids
    )
    assert finished_before < len(ids), "the kill came too late to test anything"
    workers.start(1, lock_timeout=1.5, sleep=0.0, max_activities=max_activities)
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
        assert state.output == EXPECTED
        _check_history(client, instance_id)
    workers.stop()
    per_step = Counter((iid, city) for iid, city, _ in _effects(effects))
    assert set(per_step) == {(iid, city) for iid in ids for city in CITIES}  # nothing lost
    # Activities run at least once: only those in flight at the kill may have run twice.
    repeated = sum(n - 1 for n in per_step.values())
    assert repeated <= 2 * max_activities
