"""A small chaos run (``benchmarks/chaos.py``) on SQLite and PostgreSQL: worker processes
killed with SIGKILL at random, a poison activity and orchestrator, an undecodable inbox
message; nothing lost, nothing wrong, nothing duplicated, and the report is written."""

from __future__ import annotations

import importlib
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


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["sqlite", "postgres"])
def test_a_small_chaos_run_loses_nothing(chaos: ModuleType, tmp_path: Path, provider: str) -> None:
    if provider == "postgres":
        try:
            from ostinato_postgres.testing import PostgresUnavailable, start_server
        except ImportError as exc:
            pytest.skip(f"ostinato-postgres is not importable: {exc}")
        try:
            start_server().stop()
        except PostgresUnavailable as exc:
            pytest.skip(f"no PostgreSQL server: {exc}")
    out = tmp_path / "RELIABILITY.md"
    (result,) = chaos.main(
        ["--provider", provider, "--orchestrations", "16", "--kills", "3", "--out", str(out)]
    )
    assert (result["lost"], result["wrong"], result["duplicated"]) == (0, 0, 0), result
    assert result["poison_activity"] == '["caught","PoisonMessageError"]'
    assert result["poison_orchestrator"] == "PoisonMessageError"
    assert result["corrupt_message"] == "FAILED, 1 dead letter(s)"
    assert result["activity_executions"] >= 16
    report = out.read_text()
    assert report.startswith("# Reliability") and f"| {provider} | 16 | 3 | 3 |" in report
