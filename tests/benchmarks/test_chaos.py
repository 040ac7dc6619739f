"""A small chaos run (``benchmarks/chaos.py``) on SQLite, PostgreSQL and Azure (Azurite):
worker processes killed with SIGKILL at random, the back end restarted mid-run, a poison
activity and orchestrator, an undecodable inbox message; nothing lost, failed, wrong or
duplicated, the special instances end as they must, and the report is written (rows of
other providers kept)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def chaos() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("chaos")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _skip_without_backend(provider: str) -> None:
    if provider == "postgres":
        try:
            from ostinato_postgres.testing import PostgresUnavailable, start_private_cluster
        except ImportError as exc:
            pytest.skip(f"ostinato-postgres is not importable: {exc}")
        try:
            start_private_cluster().stop()
        except PostgresUnavailable as exc:
            pytest.skip(f"no PostgreSQL cluster of our own (it is restarted): {exc}")
    elif provider == "azure":
        sys.path.insert(0, str(BENCHMARKS.parent / "azurite"))
        try:
            from start import missing_tools
        finally:
            sys.path.remove(str(BENCHMARKS.parent / "azurite"))
        reason = missing_tools()
        if reason:
            pytest.skip(f"Azurite cannot run: {reason}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "provider",
    [
        "sqlite",
        "postgres",
        "azure",
    ],
)
def test_a_small_chaos_run_loses_nothing(chaos: ModuleType, tmp_path: Path, provider: str) -> None:
    _skip_without_backend(provider)
    out = tmp_path / "RELIABILITY.md"
    other = "sqlite" if provider != "sqlite" else "postgres"
    earlier = {key: 7 for key, _ in chaos._COLUMNS} | {
        "provider": other, "restart": "r", "restart_down_seconds": 1, "restart_seconds": 1,
        "restart_kills": 0, "command": "c", "date": "d",
    }  # fmt: skip
    out.write_text("# Reliability\n\n" + chaos._MARKER + json.dumps([earlier]) + " -->\n")
    (result,) = chaos.main(
        [
            "--provider", provider, "--orchestrations", "16", "--kills", "3",
            "--down-for", "1", "--drain-timeout", "120", "--out", str(out),
        ]
    )  # fmt: skip
    assert (result["lost"], result["failed"], result["wrong"], result["duplicated"]) == (
        0, 0, 0, 0,
    ), result  # fmt: skip
    assert result["poison_activity"] == '["caught","PoisonMessageError"]', result
    assert result["poison_orchestrator"] == "FAILED, PoisonMessageError", result
    assert result["corrupt_message"] == "FAILED, 1 dead letter(s)", result
    assert result["specials_ok"] is True
    assert result["activity_executions"] >= 16
    assert result["restart_seconds"] >= 1.0  # the back end was down
    assert result["other_worker_exits"] == 0  # the workers rode through it
    if provider == "sqlite":
        assert result["restart_kills"] >= 1  # the workers holding the file were killed
    report = out.read_text()
    assert report.startswith("# Reliability") and f"| {provider} | 16 | 3 | 3 | 0 | 0 |" in report
    assert f"| {other} | 7 | 7 | 7 |" in report  # another provider's earlier row is kept
