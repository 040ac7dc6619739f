"""Retention: workers purge exactly the instances older than their status allows, on SQLite,
PostgreSQL and Azure Storage; one worker at a time holds a task hub's lease."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import ostinato as ot
import pytest
from click.testing import CliRunner
from ostinato.clock import utcnow
from ostinato.config import retention_from_config
from ostinato.history import ExecutionCompleted, ExecutionStarted
from ostinato.provider import InstanceRecord, InstanceSnapshot
from ostinato.runtime.retention import (
    RetentionPolicy,
    parse_duration,
    purge_expired,
)
from ostinato.sqlite import SqliteProvider
from ostinato.status import OrchestrationStatus as S

from .conftest import Factory

DAY = timedelta(days=1)
POLICY = RetentionPolicy(completed=7 * DAY, failed=30 * DAY, interval=0.2, batch_size=2)


def _instance(
    instance_id: str, status: S, finished_days_ago: float, created_days_ago: float | None = None
) -> InstanceSnapshot:
    now = utcnow()
    created = now - timedelta(days=created_days_ago or finished_days_ago + 0.5)
    finished = now - timedelta(days=finished_days_ago)
    events = [ExecutionStarted(timestamp=created, name="job", execution_id=f"e-{instance_id}")]
    if status.is_terminal:
        events.append(ExecutionCompleted(timestamp=finished, status=status, result='"ok"'))
    record = InstanceRecord(
        instance_id=instance_id,
        name="job",
        execution_id=f"e-{instance_id}",
        runtime_status=status,
        created_at=created,
        last_updated_at=finished,
        input='"in"',
        output='"ok"' if status.is_terminal else None,
        history_size=len(events),
    )
    return InstanceSnapshot(instance_id, record, events)


#: (id, status, finished days ago, created days ago) and whether POLICY purges it.
HUB = [
    (("completed-8d", S.COMPLETED, 8.0, None), True),
    (("completed-7d-1h", S.COMPLETED, 7.05, None), True),
    (("completed-6d", S.COMPLETED, 6.0, None), False),
    # Created long ago but finished recently: its age counts from when it finished.
    (("completed-1d-created-40d", S.COMPLETED, 1.0, 40.0), False),
    (("failed-31d", S.FAILED, 31.0, None), True),
    (("failed-8d", S.FAILED, 8.0, None), False),
    (("terminated-90d", S.TERMINATED, 90.0, None), False),  # no age for terminated
    (("running-100d", S.RUNNING, 100.0, None), False),
    (("suspended-50d", S.SUSPENDED, 50.0, None), False),
    (("completed-9d", S.COMPLETED, 9.0, None), True),
    (("failed-45d", S.FAILED, 45.0, None), True),
]


def _fill(provider: ot.StorageProvider) -> tuple[set[str], set[str]]:
    for args, _ in HUB:
        provider.import_snapshot(_instance(*args))
    expired = {args[0] for args, purged in HUB if purged}
    kept = {args[0] for args, purged in HUB if not purged}
    return expired, kept


def _present(provider: ot.StorageProvider) -> set[str]:
    return {args[0] for args, _ in HUB if provider.get_instance(args[0]) is not None}


def test_worker_retention_purges_exactly_the_expired_instances(make: Factory) -> None:
    provider = make()
    expired, kept = _fill(provider)
    worker = ot.Worker(ot.App(), provider, max_poll_interval=0.05, retention=POLICY)
    with worker:
        sweeper = worker._async_worker.retention
        assert sweeper is not None
        sweeper.swept.clear()
        assert sweeper.swept.wait(60)
    assert _present(provider) == kept
    # Five expired with batches of two: the sweep went on batch after batch.
    assert sweeper.purged == len(expired) == 5
    for instance_id in expired:
        assert provider.get_history(instance_id) == []


def test_leases_admit_one_owner_at_a_time(make: Factory) -> None:
    provider = make()
    assert provider.acquire_lease("retention", "a", timedelta(seconds=30))
    assert not provider.acquire_lease("retention", "b", timedelta(seconds=30))
    assert provider.acquire_lease("retention", "a", timedelta(seconds=30))  # renewal
    assert provider.acquire_lease("other", "b", timedelta(seconds=30))  # another lease
    provider.release_lease("retention", "b")  # not b's: nothing happens
    assert not provider.acquire_lease("retention", "b", timedelta(seconds=30))
    provider.release_lease("retention", "a")
    assert provider.acquire_lease("retention", "b", timedelta(milliseconds=1))
    time.sleep(0.05)
    # Expired: taken over.
    assert provider.acquire_lease("retention", "a", timedelta(seconds=30))


def test_two_workers_sweep_one_at_a_time(make_sqlite: Callable[..., SqliteProvider]) -> None:
    provider = make_sqlite("hub")
    expired, kept = _fill(provider)
    other = make_sqlite("hub")  # a second provider on the same file: another process's view
    first = ot.Worker(ot.App(), provider, retention=POLICY, worker_id="first")
    second = ot.Worker(ot.App(), other, retention=POLICY, worker_id="second")
    with first, second:
        sweepers = [w._async_worker.retention for w in (first, second)]
        for sweeper in sweepers:
            assert sweeper is not None
            sweeper.swept.clear()
        for sweeper in sweepers:
            assert sweeper is not None and sweeper.swept.wait(60)
        purged = [s.purged for s in sweepers if s is not None]
    assert _present(provider) == kept
    assert sorted(purged) == [0, len(expired)]


def test_purge_expired_honours_now_and_limit(make_sqlite: Callable[..., SqliteProvider]) -> None:
    provider = make_sqlite()
    _fill(provider)
    policy = RetentionPolicy(completed=7 * DAY)
    assert purge_expired(provider, policy, limit=1) == 1
    assert purge_expired(provider, policy) == 2
    assert purge_expired(provider, policy) == 0
    # Two days later completed-6d is due too; the one that finished a day ago is not.
    assert purge_expired(provider, policy, now=utcnow() + 2 * DAY) == 1
    present = _present(provider)
    assert {i for i in present if i.startswith("completed")} == {"completed-1d-created-40d"}


def test_sqlite_gives_the_space_back(make_sqlite: Callable[..., SqliteProvider]) -> None:
    provider = make_sqlite("space")
    big = json.dumps("x" * 200_000)
    for n in range(40):
        snapshot = _instance(f"big-{n}", S.COMPLETED, 10.0)
        assert snapshot.record is not None
        provider.import_snapshot(
            InstanceSnapshot(snapshot.instance_id, snapshot.record.with_changes(input=big), [])
        )
    path = Path(provider.path)
    provider.close()  # checkpoint the WAL into the file
    provider = make_sqlite("space")
    full = path.stat().st_size
    assert purge_expired(provider, RetentionPolicy(completed=DAY), limit=100) == 40
    provider.reclaim_space(max_pages=1_000_000)
    provider.close()
    with sqlite3.connect(path) as connection:
        (free,) = connection.execute("PRAGMA freelist_count").fetchone()
        (mode,) = connection.execute("PRAGMA auto_vacuum").fetchone()
    assert mode == 2  # incremental
    assert free == 0
    assert path.stat().st_size < full / 4, (path.stat().st_size, full)


def test_retention_from_config_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "ostinato.toml"
    config.write_text(
        'provider = "sqlite"\n\n[retention]\ncompleted = "7d"\nfailed = "30d"\ninterval = 5\n',
        encoding="utf-8",
    )
    policy = retention_from_config(config, environ={})
    assert policy == RetentionPolicy(completed=7 * DAY, failed=30 * DAY, interval=5.0)
    policy = retention_from_config(config, environ={"OSTINATO_RETENTION_FAILED": "12h"})
    assert policy is not None and policy.failed == timedelta(hours=12)
    empty = tmp_path / "empty.toml"
    empty.write_text('provider = "sqlite"\n', encoding="utf-8")
    assert retention_from_config(empty, environ={}) is None
    config.write_text('[retention]\ncompleted = "soon"\n', encoding="utf-8")
    with pytest.raises(ot.ConfigurationError, match=r"'completed'.*not a duration"):
        retention_from_config(config, environ={})
    config.write_text('[retention]\ncompleted_after = "7d"\n', encoding="utf-8")
    with pytest.raises(ot.ConfigurationError, match="unknown key 'completed_after'"):
        retention_from_config(config, environ={})
    assert parse_duration("90m") == timedelta(minutes=90)


def test_cli_purge_older_than(
    make_sqlite: Callable[..., SqliteProvider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ostinato.cli.commands import cli

    for name in list(os.environ):
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)
    provider = make_sqlite("cli")
    _fill(provider)
    monkeypatch.setenv("OSTINATO_SQLITE_PATH", str(provider.path))
    result = CliRunner().invoke(
        cli, ["purge", "--older-than", "20d", "--status", "failed", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"deleted_instance_count": 2}
    assert {"failed-31d", "failed-45d"}.isdisjoint(_present(provider))
    result = CliRunner().invoke(cli, ["purge", "--older-than", "7d"])
    assert result.exit_code == 0, result.stderr
    # Every finished status by default: three completed, failed-8d and terminated-90d.
    assert "Purged 5 instances." in result.stdout
    bad = CliRunner().invoke(cli, ["purge", "--older-than", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.stderr
