"""The replayer: current code against recorded histories, from Python and from the CLI."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from click.testing import CliRunner
from ostinato.cli.commands import cli
from ostinato.sqlite import SqliteProvider
from ostinato.testing import Replayer

from .replay_apps import RENAMED, TIMER_ADDED, UNCHANGED, V1, write_module

_modules = iter(range(10**6))


def load(tmp_path: Path, source: str) -> tuple[str, ot.App]:
    """Write ``source`` as a fresh module and import its app; returns ``module:app`` too."""
    name = f"replay_app_{next(_modules)}"
    target = write_module(tmp_path, name, source)
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    return target, importlib.import_module(name).app


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, dict[str, list[Any]]]]:
    """A SQLite hub where v1 ran: one instance finished, one waiting for its event."""
    path = tmp_path / "hub.db"
    _, app = load(tmp_path, V1)
    provider = SqliteProvider(path)
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.05):
            done = client.schedule_new_orchestration("checkout", input="book", instance_id="done")
            client.wait_for_orchestration_start(done)
            client.raise_orchestration_event(done, "confirm")
            state = client.wait_for_orchestration_completion(done, timeout=30)
            assert state.output == ["reserved book", "charged book"]
            waiting = client.schedule_new_orchestration("checkout", input="pen", instance_id="wait")
            _wait_for_custom(client, waiting)
        histories = {iid: client.get_orchestration_history(iid) for iid in ("done", "wait")}
    finally:
        provider.close()
    yield path, histories


def _wait_for_custom(client: ot.Client, instance_id: str) -> None:
    """Wait until the instance has run its first activity (its history has its result)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        history = client.get_orchestration_history(instance_id)
        if any(type(e).__name__ == "TaskCompleted" for e in history) and isinstance(
            history[-1], ot.history.OrchestratorCompleted
        ):
            return
        time.sleep(0.01)
    raise TimeoutError(instance_id)


def test_unchanged_code_replays_cleanly(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    _, histories = recorded
    _, app = load(tmp_path, UNCHANGED)
    replayer = Replayer(app)
    done = replayer.replay(histories["done"], instance_id="done")
    assert done.runtime_status is ot.OrchestrationStatus.COMPLETED
    waiting = replayer.replay(histories["wait"], instance_id="wait")
    assert waiting.runtime_status is ot.OrchestrationStatus.RUNNING


def test_a_renamed_activity_is_caught_at_the_first_divergence(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    _, histories = recorded
    _, app = load(tmp_path, RENAMED)
    for instance_id, history in histories.items():
        with pytest.raises(ot.NonDeterminismError) as caught:
            Replayer(app).replay(history, instance_id=instance_id)
        message = str(caught.value)
        assert f"'{instance_id}'" in message
        assert "task 0 was call_activity('reserve') in history" in message
        assert "now does call_activity('hold')" in message


def test_an_added_timer_diverges_only_where_the_history_reached_it(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    _, histories = recorded
    _, app = load(tmp_path, TIMER_ADDED)
    replayer = Replayer(app)
    with pytest.raises(ot.NonDeterminismError, match=r"task 1 was call_activity\('charge'\)"):
        replayer.replay(histories["done"], instance_id="done")
    # The waiting instance has not reached the timer yet: it can run the new code.
    assert replayer.replay(histories["wait"]).runtime_status is ot.OrchestrationStatus.RUNNING


def test_a_changed_result_and_an_unknown_orchestrator_diverge(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    _, histories = recorded
    _, app = load(tmp_path, V1.replace("return [reserved, charged]", "return [charged]"))
    with pytest.raises(ot.NonDeterminismError, match="COMPLETED with output"):
        Replayer(app).replay(histories["done"])
    with pytest.raises(ot.NonDeterminismError, match="no orchestrator named 'checkout'"):
        Replayer(ot.App()).replay(histories["done"])


def test_replay_instance_reads_through_a_client(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    path, _ = recorded
    _, app = load(tmp_path, RENAMED)
    provider = SqliteProvider(path)
    try:
        with pytest.raises(ot.NonDeterminismError, match="hold"):
            Replayer(app).replay_instance(ot.Client(provider), "wait")
    finally:
        provider.close()


def _cli(tmp_path: Path, path: Path, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(
        cli, ["--provider", "sqlite", "--set", f"path={path}", *args], catch_exceptions=False
    )


def test_the_cli_replays_instances_of_the_task_hub(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = recorded
    monkeypatch.chdir(tmp_path)
    same, _ = load(tmp_path, UNCHANGED)
    result = _cli(tmp_path, path, "replay", "done", "wait", "--app", same)
    assert result.exit_code == 0, result.output
    assert "ok        done (checkout)" in result.stdout
    renamed, _ = load(tmp_path, RENAMED)
    result = _cli(tmp_path, path, "replay", "done", "wait", "--app", renamed, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(r["instance_id"], r["ok"]) for r in report] == [("done", False), ("wait", False)]
    assert "call_activity('hold')" in report[0]["error"]


def test_the_cli_replays_every_instance_with_a_status(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = recorded
    monkeypatch.chdir(tmp_path)
    renamed, _ = load(tmp_path, RENAMED)
    result = _cli(tmp_path, path, "replay", "--status", "running", "--app", renamed, "--json")
    assert result.exit_code == 1
    assert [(r["instance_id"], r["ok"]) for r in json.loads(result.stdout)] == [("wait", False)]
    result = _cli(tmp_path, path, "replay", "--app", renamed)
    assert result.exit_code == 2
    assert "Give instance ids or --status" in result.stderr


def _export(tmp_path: Path, path: Path) -> Path:
    """Export the recorded hub with the CLI (``ostinato export --to``)."""
    target = tmp_path / "sample.jsonl"
    result = _cli(tmp_path, path, "export", "--to", str(target))
    assert result.exit_code == 0, result.output
    return target


def test_the_replayer_checks_an_exported_file(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]]
) -> None:
    path, _ = recorded
    exported = _export(tmp_path, path)
    _, same = load(tmp_path, UNCHANGED)
    outcomes = Replayer(same).replay_file(exported)
    assert sorted((o.instance_id, o.ok) for o in outcomes) == [("done", True), ("wait", True)]
    _, renamed = load(tmp_path, RENAMED)
    outcomes = Replayer(renamed).replay_file(exported)
    assert sorted((o.instance_id, o.ok) for o in outcomes) == [("done", False), ("wait", False)]
    assert all("call_activity('hold')" in str(o.error) for o in outcomes)


def test_the_cli_replays_an_exported_file(
    tmp_path: Path, recorded: tuple[Path, dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = recorded
    exported = _export(tmp_path, path)
    monkeypatch.chdir(tmp_path)
    same, _ = load(tmp_path, UNCHANGED)
    result = _cli(tmp_path, path, "replay", "--from", str(exported), "--app", same)
    assert result.exit_code == 0, result.output
    assert "ok        done (checkout)" in result.stdout
    assert "ok        wait (checkout)" in result.stdout
    renamed, _ = load(tmp_path, RENAMED)
    result = _cli(tmp_path, path, "replay", "--from", str(exported), "--app", renamed, "wait")
    assert result.exit_code == 1
    assert "DIVERGES  wait (checkout)" in result.stdout and "done" not in result.stdout
    result = _cli(tmp_path, path, "replay", "--from", str(exported), "--app", renamed, "nope")
    assert result.exit_code == 1 and "has no orchestration 'nope'" in result.stderr
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(exported.read_text().splitlines()[:-1]) + "\n")
    result = _cli(tmp_path, path, "replay", "--from", str(cut), "--app", same)
    assert result.exit_code == 1 and "incomplete" in result.stderr
