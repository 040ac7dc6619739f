"""Worker processes on one task hub: real children, a real SQLite file, real signals."""

from __future__ import annotations

import functools
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.runtime.supervisor import WorkerSupervisor

app = ot.App()


@app.activity
def whose_pid(ctx: ot.ActivityContext, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@app.activity
def mark(ctx: ot.ActivityContext, args: tuple[str, float]) -> str:
    path, seconds = args
    Path(path + ".started").touch()
    time.sleep(seconds)
    Path(path + ".done").touch()
    return "done"


@app.orchestrator
def one(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    return (yield ctx.call_activity(whose_pid, input=seconds))


@app.orchestrator
def marked(ctx: ot.OrchestrationContext, args: tuple[str, float]) -> Any:
    return (yield ctx.call_activity(mark, input=args))


def the_app() -> ot.App:
    return app


def sqlite_at(path: Path) -> functools.partial[ot.StorageProvider]:
    return functools.partial(ot.provider_from_config, provider="sqlite", settings={"path": path})


def supervisor(path: Path, **options: Any) -> WorkerSupervisor:
    return WorkerSupervisor(
        the_app,
        sqlite_at(path),
        processes=2,
        max_poll_interval=0.05,
        max_concurrent_activities=2,
        lock_timeout=timedelta(seconds=2),
        **options,
    )


def run_all(client: ot.Client, n: int, seconds: float) -> list[int]:
    ids = [client.schedule_new_orchestration(one, input=seconds) for _ in range(n)]
    states = [client.wait_for_orchestration_completion(i, timeout=60) for i in ids]
    assert all(s.runtime_status is ot.OrchestrationStatus.COMPLETED for s in states), states
    return [s.output for s in states]


def test_children_share_one_hub_and_a_killed_child_is_restarted(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    provider = sqlite_at(db)()
    with supervisor(db, grace_period=5) as sup:
        client = ot.Client(provider)
        first = sup.pids
        assert len(first) == 2 and os.getpid() not in first
        # Each child holds at most two activities, so both take a share of the work.
        assert set(run_all(client, 16, 0.2)) == set(first)

        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while sup.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sup.restarts == 1
        assert sup.wait_ready(60)
        second = sup.pids
        assert second[1] == first[1] and second[0] not in first
        assert set(run_all(client, 16, 0.2)) <= set(second)
    provider.close()


def test_stop_is_graceful_in_every_child(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    sup = supervisor(db, grace_period=20)
    sup.start()
    provider = sqlite_at(db)()
    client = ot.Client(provider)
    marker = str(tmp_path / "activity")
    client.schedule_new_orchestration(marked, input=(marker, 1.0))
    deadline = time.monotonic() + 60
    while not Path(marker + ".started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Path(marker + ".started").exists()
    codes = sup.stop()
    provider.close()
    # SIGTERM was handled (an unhandled one exits with -15) and the running activity finished.
    assert codes == [0, 0]
    assert Path(marker + ".done").exists()


def test_a_provider_without_multi_process_support_is_refused() -> None:
    sup = WorkerSupervisor(the_app, ot.InMemoryProvider, processes=2)
    with pytest.raises(ot.ConfigurationError, match="cannot share a task hub"):
        sup.start()
    assert sup.pids == []


def test_the_default_process_count_follows_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One per CPU, at most what the provider says adds throughput (2 for SQLite's single
    writer), and 1 where processes cannot share a hub."""
    from ostinato.runtime import supervisor as module
    from ostinato.sqlite import SqliteProvider

    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: set(range(8)))
    sqlite = SqliteProvider(str(tmp_path / "hub.db"))
    try:
        assert module.default_processes() == 8
        assert module.default_processes(sqlite.capabilities) == 2
        assert module.default_processes(ot.InMemoryProvider().capabilities) == 1
        server = ot.ProviderCapabilities(multi_process=True)
        assert module.default_processes(server) == 8  # PostgreSQL, SQL Server, Azure
    finally:
        sqlite.close()
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: {0})
    assert module.default_processes(SqliteProvider.capabilities) == 1


def test_a_supervisor_without_a_count_starts_the_providers_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ostinato.runtime import supervisor as module

    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: set(range(8)))
    sup = WorkerSupervisor(the_app, sqlite_at(tmp_path / "hub.db"), max_poll_interval=0.05)
    with sup:
        assert sup.processes == 2 and len(sup.pids) == 2
