"""``ostinato export``, ``import`` and ``migrate`` on SQLite files named by config files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import ostinato as ot
import pytest
from click.testing import CliRunner, Result
from ostinato.cli.commands import cli
from ostinato.sqlite import SqliteProvider

from . import scenario


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'provider = "sqlite"\n\n[sqlite]\npath = "{name}.db"\n', encoding="utf-8")
    return path


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Path]:
    config = _config(tmp_path, "source")
    provider = SqliteProvider(tmp_path / "source.db")
    provider.setup()
    scenario.start_in_flight(provider, timer_seconds=2)
    provider.close()
    yield config


def _finish(tmp_path: Path, name: str) -> None:
    provider = SqliteProvider(tmp_path / f"{name}.db")
    try:
        assert scenario.finish(provider) == scenario.EXPECTED
    finally:
        provider.close()


def test_export_to_a_file_then_import(source: Path, tmp_path: Path) -> None:
    result = run("-c", str(source), "export", "--to", "hub.jsonl")
    assert "No worker is running on the task hub (checked)." in result.stderr
    assert "Exported 6 instances, 1 entities" in result.stderr
    lines = (tmp_path / "hub.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["format"] == "ostinato.taskhub"
    assert json.loads(lines[-1])["type"] == "end"
    destination = _config(tmp_path, "destination")
    imported = run("-c", str(destination), "import", "hub.jsonl", "--json")
    assert json.loads(imported.stdout)["imported"]["instances"] == 6
    # A second import finds every id taken: reported, exit code 1, nothing changed.
    again = run("-c", str(destination), "import", "hub.jsonl", code=1)
    assert "7 instance(s) were not imported" in again.stderr
    _finish(tmp_path, "destination")


def test_export_to_stdout_with_a_status_filter(source: Path) -> None:
    result = run("-c", str(source), "export", "--status", "completed")
    lines = result.stdout.splitlines()
    assert [json.loads(line).get("id") for line in lines[1:-1]] == ["done"]


def test_a_cut_file_imports_what_it_holds_and_fails_clearly(source: Path, tmp_path: Path) -> None:
    run("-c", str(source), "export", "--to", "hub.jsonl")
    lines = (tmp_path / "hub.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")
    result = run("-c", str(_config(tmp_path, "destination")), "import", "cut.jsonl", code=1)
    assert "ends without its trailer line" in result.stderr
    # Everything before the cut was imported, and the output says so.
    assert "Imported 6 instances, 1 entities" in result.stderr
    assert SqliteProvider(tmp_path / "destination.db").get_instance("timer") is not None
    (tmp_path / "other.jsonl").write_text('{"format": "x", "version": 1}\n', encoding="utf-8")
    result = run("-c", str(_config(tmp_path, "d2")), "import", "other.jsonl", code=1)
    assert "Not an ostinato transfer file" in result.stderr


def test_migrate_dry_run_then_for_real(source: Path, tmp_path: Path) -> None:
    destination = _config(tmp_path, "destination")
    dry = run("migrate", "--from", str(source), "--to", str(destination), "--dry-run", "--json")
    report = json.loads(dry.stdout)
    assert report["ok"] and report["dry_run"] and report["source"]["instances"] == 6
    assert report["verification"] is None
    assert (
        ot.Client(SqliteProvider(tmp_path / "destination.db")).get_orchestration_state("event")
        is None
    )
    real = run("migrate", "--from", str(source), "--to", str(destination))
    # docs/migration.md shows this output.
    assert (
        "Source: 6 instances, 1 entities, 30 history events, 0 messages, 1 timers, "
        "1 activity tasks." in real.stderr
    )
    assert "Verified: every instance's history digest and pending work match." in real.stderr
    _finish(tmp_path, "destination")
    again = run("migrate", "--from", str(source), "--to", str(destination), code=1)
    assert "7 ids already exist in the destination" in again.stderr


def test_a_provider_without_export_fails_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "fake.toml"
    config.write_text('provider = "memory"\n', encoding="utf-8")
    from ostinato.memory import InMemoryProvider

    original = InMemoryProvider.export_state
    try:
        del InMemoryProvider.export_state  # the contract's default: not supported
        result = run("-c", str(config), "export", "--to", "x.jsonl", code=1)
    finally:
        InMemoryProvider.export_state = original  # type: ignore[method-assign]
    assert "InMemoryProvider cannot export its state" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
