"""The ``ostinato`` commands through click's CliRunner, on a SQLite file, with a worker in-process.

Each invocation builds its own provider from the configuration (``OSTINATO_SQLITE_PATH``), just
as separate ``ostinato`` processes would.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from click.testing import CliRunner, Result
from ostinato.cli import render
from ostinato.cli.commands import cli
from rich.console import Console

from .conftest import HAS_SQLITE

pytestmark = [
    pytest.mark.usefixtures("db"),
    pytest.mark.skipif(not HAS_SQLITE, reason="the sqlite provider is not installed"),
]

HELLO_CITIES_EVENTS = [
    "ExecutionStarted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "OrchestratorCompleted",
    "ExecutionCompleted",
]


@pytest.fixture
def db(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = isolated / "cli.db"
    monkeypatch.setenv("OSTINATO_SQLITE_PATH", str(path))
    return path


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def run_json(*args: str, code: int = 0) -> Any:
    return json.loads(run(*args, "--json", code=code).stdout)


def run_error(*args: str, code: int) -> str:
    """Run a failing command: one line on stderr, no traceback; returns that line."""
    result = run(*args, code=code)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


def combined_app() -> ot.App:
    """One app serving several examples (a worker serves one app)."""
    from examples import course_recommendations, hello_cities, human_interaction

    app = ot.App()
    for module in (hello_cities, course_recommendations, human_interaction):
        for reg in module.app.orchestrators.values():
            app.add_orchestrator(reg.fn, name=reg.name)
        for reg in module.app.activities.values():
            if reg.name not in app.activities:  # built-ins (e.g. ostinato.http) are in every app
                app.add_activity(reg.fn, name=reg.name)
    return app


@pytest.fixture
def worker(db: Path) -> Iterator[None]:
    provider = ot.provider_from_config()
    with ot.Worker(combined_app(), provider, max_poll_interval=0.05):
        yield
    provider.close()


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the HelloCities walk-through --------------------------------------------------------------
def test_start_wait_status_history(worker: None) -> None:
    started = run_json("start", "hello_cities")
    instance_id = started["instance_id"]
    assert started["name"] == "hello_cities"
    final = run_json("wait", instance_id, "--timeout", "30")
    assert final["runtime_status"] == "COMPLETED"
    assert final["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

    state = run_json("status", instance_id)
    assert state["instance_id"] == instance_id
    assert state["name"] == "hello_cities"
    assert state["runtime_status"] == "COMPLETED"
    assert state["output"] == final["output"]
    assert state["failure_details"] is None
    assert datetime.fromisoformat(state["created_at"]) <= datetime.now(UTC)

    history = run_json("history", instance_id)
    assert history["instance_id"] == instance_id
    rows = history["events"]
    assert [row["event_type"] for row in rows] == HELLO_CITIES_EVENTS
    assert rows[0]["name"] == "hello_cities"
    scheduled = [row for row in rows if row["event_type"] == "TaskScheduled"]
    assert [(r["name"], r["input"]) for r in scheduled] == [
        ("say_hello", "Tokyo"),
        ("say_hello", "Seattle"),
        ("say_hello", "London"),
    ]
    completed = [row for row in rows if row["event_type"] == "TaskCompleted"]
    assert [(r["name"], r["result"]) for r in completed] == [
        ("say_hello", "Hello Tokyo!"),
        ("say_hello", "Hello Seattle!"),
        ("say_hello", "Hello London!"),
    ]
    assert rows[-1]["status"] == "Completed"
    assert rows[-1]["result"] == final["output"]
    assert all(row["timestamp"] and row["event"]["type"] == row["event_type"] for row in rows)

    # The same for people: a table, and the status as a table.
    table = run("history", instance_id).stdout
    for header in ("Event type", "Timestamp", "Name", "Input", "Result", "Status"):
        assert header in table
    prefixes = ("Execution", "Orch", "Task")
    lines = [line for line in table.splitlines() if line.strip().startswith(prefixes)]
    assert [line.split()[0] for line in lines] == HELLO_CITIES_EVENTS
    assert '"Hello Tokyo!"' in table
    status_text = run("status", instance_id).stdout
    assert "COMPLETED" in status_text and "Hello London!" in status_text


def test_start_prints_the_id_and_takes_input_and_id(worker: None) -> None:
    result = run(
        "start",
        "recommend_courses",
        "--id",
        "student-ada",
        "--input",
        '{"name": "Ada", "major": "Mathematics", "year": 1}',
    )
    assert result.stdout.strip() == "student-ada"
    assert "Started orchestration 'recommend_courses'" in result.stderr
    final = run_json("wait", "student-ada")
    assert final["input"] == {"name": "Ada", "major": "Mathematics", "year": 1}
    assert final["output"]["credits"] == 12
    # Starting it again while... it finished, so the default policy replaces it.
    again = run_json(
        "start",
        "recommend_courses",
        "--id",
        "student-ada",
        "--input",
        '{"name": "Ada", "major": "Mathematics", "year": 2}',
        "--wait",
    )
    assert again["runtime_status"] == "COMPLETED"
    assert again["output"]["courses"] == ["MA210 Linear Algebra", "MA330 Probability"]


def test_start_wait_reports_a_failed_orchestration(worker: None) -> None:
    result = run(
        "start",
        "recommend_courses",
        "--wait",
        "--json",
        "--input",
        '{"name": "Bo", "major": "Astrology", "year": 1}',
        code=1,
    )
    assert json.loads(result.stdout)["runtime_status"] == "FAILED"
    line = result.stderr.strip()
    assert line.startswith("Error: Orchestration '") and "Unknown major 'Astrology'" in line
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_active_id_cannot_be_started_twice() -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    run("start", "hello_cities", "--id", "once", "--start-at", later)
    message = run_error("start", "hello_cities", "--id", "once", code=1)
    assert message == "Error: An instance with ID 'once' already exists."


# -- signalling ------------------------------------------------------------------------------
def is_waiting(instance_id: str) -> bool:
    return bool(run_json("status", instance_id)["custom_status"] == "waiting for approval")


def test_suspend_raise_event_resume_terminate(worker: None) -> None:
    request = '{"request_id": "po-1", "amount": 10, "timeout_seconds": 60}'
    run("start", "approval_workflow", "--id", "po-1", "--input", request)
    run("start", "approval_workflow", "--id", "po-2", "--input", request)
    for instance_id in ("po-1", "po-2"):
        wait_until(lambda i=instance_id: is_waiting(i))  # type: ignore[misc]

    assert run_json("suspend", "po-1", "--reason", "audit") == {
        "instance_id": "po-1",
        "action": "suspend",
        "ok": True,
    }
    wait_until(lambda: run_json("status", "po-1")["runtime_status"] == "SUSPENDED")
    assert (
        "Raised event 'approval'"
        in run(
            "raise-event", "po-1", "approval", "--data", '{"approved": true, "approver": "cli"}'
        ).stdout
    )
    time.sleep(0.3)
    assert run_json("status", "po-1")["runtime_status"] == "SUSPENDED"  # held while suspended
    run("resume", "po-1")
    final = run_json("wait", "po-1")
    assert final["output"] == {"request_id": "po-1", "outcome": "approved", "by": "cli"}

    assert "Terminating 'po-2'" in run("terminate", "po-2", "--output", '"cancelled"').stdout
    result = run("wait", "po-2", "--json", code=1)
    state = json.loads(result.stdout)
    assert state["runtime_status"] == "TERMINATED" and state["output"] == "cancelled"
    assert "was terminated" in result.stderr

    events = [r["event_type"] for r in run_json("history", "po-1")["events"]]
    for expected in ("ExecutionSuspended", "EventRaised", "ExecutionResumed"):
        assert expected in events
    rows = run_json("history", "po-1")["events"]
    reasons = [r["input"] for r in rows if r["event_type"] == "ExecutionSuspended"]
    assert reasons == ["audit"]


# -- list ------------------------------------------------------------------------------------
def test_list_filters_and_paging() -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for instance_id, name in [
        ("alpha-1", "job_a"),
        ("alpha-2", "job_a"),
        ("alpha-3", "job_a"),
        ("beta-1", "job_b"),
        ("beta-2", "job_b"),
    ]:
        run("start", name, "--id", instance_id, "--start-at", later)

    def ids(*args: str) -> list[str]:
        return [s["instance_id"] for s in run_json("list", *args)["instances"]]

    assert ids() == ["alpha-1", "alpha-2", "alpha-3", "beta-1", "beta-2"]
    assert ids("--name-prefix", "job_b") == ["beta-1", "beta-2"]
    assert ids("--id-prefix", "alpha-") == ["alpha-1", "alpha-2", "alpha-3"]
    assert len(ids("--status", "pending")) == 5
    assert ids("--status", "completed,failed") == []
    assert ids("--status", "completed", "--status", "PENDING", "--id-prefix", "beta") == [
        "beta-1",
        "beta-2",
    ]
    assert len(ids("--created-from", "1h")) == 5
    assert ids("--created-to", "1h") == []
    assert len(ids("--created-to", later)) == 5

    first = run_json("list", "--page-size", "2")
    assert [s["instance_id"] for s in first["instances"]] == ["alpha-1", "alpha-2"]
    token = first["continuation_token"]
    assert token
    second = run_json("list", "--page-size", "2", "--continuation-token", token)
    assert [s["instance_id"] for s in second["instances"]] == ["alpha-3", "beta-1"]
    everything = run_json("list", "--page-size", "2", "--all")
    assert len(everything["instances"]) == 5 and everything["continuation_token"] is None

    text = run("list", "--page-size", "2")
    assert "Instance ID" in text.stdout and "alpha-2" in text.stdout and "beta-1" not in text.stdout
    assert f"--continuation-token {token}" in text.stderr
    empty = run("list", "--name-prefix", "zzz")
    assert (empty.stdout, empty.stderr) == ("No instances.\n", "")


# -- purge -----------------------------------------------------------------------------------
def test_purge_one_and_in_bulk(worker: None) -> None:
    done = []
    for _ in range(3):
        done.append(run_json("start", "hello_cities", "--wait")["instance_id"])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    run("start", "hello_cities", "--id", "still-pending", "--start-at", later)

    assert run_json("purge", done[0]) == {"deleted_instance_count": 1}
    run_error("status", done[0], code=1)
    assert run_json("purge", "still-pending") == {"deleted_instance_count": 0}  # active

    result = run("purge", "--status", "completed", "--created-before", "0s")
    assert result.stdout.strip() == "Purged 2 instances."
    assert run_json("purge", "--all") == {"deleted_instance_count": 0}
    remaining = [s["instance_id"] for s in run_json("list")["instances"]]
    assert remaining == ["still-pending"]


def test_bulk_purge_shows_progress_on_a_terminal(
    worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        run("start", "hello_cities", "--wait")
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(render, "console", lambda *, stderr=False: terminal)
    assert "Purged 2 instances." in run("purge", "--all").stdout
    assert "Purging finished instances: 2 deleted" in screen.getvalue()


# -- demo and config -------------------------------------------------------------------------
def test_demo_runs_hello_cities_on_the_configured_sqlite_file(db: Path) -> None:
    data = run_json("demo")
    assert data["runtime_status"] == "COMPLETED"
    assert data["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert [row["event_type"] for row in data["history"]] == HELLO_CITIES_EVENTS
    assert db.is_file()
    # It is durable: another process (here: another invocation) sees it.
    assert run_json("status", data["instance_id"])["runtime_status"] == "COMPLETED"
    text = run("demo")
    assert 'Result: ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]' in text.stdout
    assert "ExecutionCompleted" in text.stdout
    assert f"on sqlite ({db})" in text.stderr


def test_demo_with_no_configuration_uses_ostinato_db_here(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OSTINATO_SQLITE_PATH")
    assert run_json("demo")["runtime_status"] == "COMPLETED"
    assert (isolated / "ostinato.db").is_file()


def test_global_options_pick_provider_task_hub_and_settings(isolated: Path, db: Path) -> None:
    other = isolated / "other.db"
    config = run_json("--set", f"path={other}", "--task-hub", "hub2", "config")
    assert config["provider"] == "sqlite"
    assert config["settings"] == {"task_hub": "hub2", "path": str(other)}
    assert config["sources"]["path"] == "argument"
    assert "sqlite" in config["installed_providers"] and "memory" in config["installed_providers"]

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    run("-s", f"path={other}", "-t", "hub2", "start", "x", "--id", "in-hub2", "--start-at", later)
    assert run_json("-s", f"path={other}", "-t", "hub2", "status", "in-hub2")["name"] == "x"
    run_error("-s", f"path={other}", "status", "in-hub2", code=1)  # another task hub
    run_error("status", "in-hub2", code=1)  # OSTINATO_SQLITE_PATH: another file
    assert run_json("--provider", "memory", "config")["provider"] == "memory"

    (isolated / "ostinato.toml").write_text(f'[sqlite]\npath = "{isolated / "file.db"}"\n')
    assert run_json("config")["sources"]["path"] == "OSTINATO_SQLITE_PATH"
    listed = run_json("--config", str(isolated / "ostinato.toml"), "config")
    assert listed["config_file"] == str(isolated / "ostinato.toml")
    assert "Provider: sqlite" in run("config").stdout


# -- errors: one line, non-zero exit, no traceback ---------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["status", "nope"], 1, "No orchestration instance with ID 'nope' was found."),
        (["history", "nope"], 1, "No orchestration instance with ID 'nope'"),
        (["wait", "nope"], 1, "No orchestration instance with ID 'nope'"),
        (["raise-event", "nope", "go"], 1, "No orchestration instance with ID 'nope'"),
        (["terminate", "nope"], 1, "No orchestration instance with ID 'nope'"),
        (["suspend", "nope"], 1, "No orchestration instance with ID 'nope'"),
        (["resume", "nope"], 1, "No orchestration instance with ID 'nope'"),
        (["status", "a/b"], 1, "contains '/'"),
        (["start", "x", "--id", "@bad"], 1, "'@'"),
        (["start", "x", "--input", "{bad"], 2, "is not valid JSON"),
        (["start", "x", "--input", "Tokyo"], 2, """a string needs quotes: '"Tokyo"'"""),
        (["raise-event", "i", "e", "--data", "[1,"], 2, "is not valid JSON"),
        (["terminate", "i", "--output", "{"], 2, "is not valid JSON"),
        (["list", "--status", "done"], 2, "'done' is not a status"),
        (["list", "--created-from", "yesterday"], 2, "'yesterday' is not a time"),
        (["list", "--page-size", "0"], 2, "--page-size"),
        (["purge"], 2, "Give an instance ID, or filters"),
        (["purge", "x", "--all"], 2, "not both"),
        (["purge", "--status", "running"], 2, "Only finished instances can be purged"),
        (["--set", "busy_timeout", "status", "x"], 2, "is not KEY=VALUE"),
        (["--provider", "nosuch", "status", "x"], 1, "Unknown provider 'nosuch'; installed"),
        (["--set", "busy_timeout=soon", "status", "x"], 1, "Setting 'busy_timeout'"),
        (["--set", "colour=blue", "status", "x"], 1, "Unknown setting 'colour'"),
        (["--config", "missing.toml", "status", "x"], 1, "does not exist"),
        (["worker", "no_such_module:app"], 1, "Cannot import 'no_such_module'"),
        (["worker", "examples.no_such:app"], 1, "Cannot import 'examples.no_such'"),
        (["worker", "examples.hello_cities:nope"], 1, "has no attribute 'nope'"),
        (["worker", "examples.hello_cities:say_hello"], 1, "is a function, not an ostinato.App"),
        (["worker", "examples.course_recommendations:CATALOG"], 1, "is a dict, not"),
        (["worker", "not a module"], 2, "is not MODULE:APP"),
        (["bogus"], 2, "No such command 'bogus'"),
        (["start"], 2, "Missing argument 'NAME'"),
        (["status", "x", "--bogus"], 2, "--bogus"),
        (["status", "x", "--bogus"], 2, "(see 'ostinato status --help')"),
    ],
)
def test_user_mistakes_are_one_line_errors(args: list[str], code: int, expected: str) -> None:
    assert expected in run_error(*args, code=code)


def test_json_mode_errors_keep_stdout_empty() -> None:
    result = run("status", "nope", "--json", code=1)
    assert result.stdout == ""


def test_an_app_module_that_fails_to_import(isolated: Path) -> None:
    (isolated / "broken_app_module.py").write_text("raise RuntimeError('boom at import')\n")
    message = run_error("worker", "broken_app_module:app", code=1)
    assert message == "Error: Importing 'broken_app_module' failed: RuntimeError: boom at import"


def test_an_app_module_that_imports_something_missing(isolated: Path) -> None:
    (isolated / "needs_missing.py").write_text("import ostinato_not_installed_anywhere\n")
    message = run_error("worker", "needs_missing", code=1)
    assert "Importing 'needs_missing' failed: ModuleNotFoundError" in message


def test_several_processes_need_a_provider_that_shares_its_task_hub() -> None:
    message = run_error(
        "--provider", "memory", "worker", "examples.hello_cities:app", "--processes", "2", code=1
    )
    assert message.startswith("Error: Provider InMemoryProvider cannot share a task hub")


def test_wait_times_out_with_one_line() -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    run("start", "hello_cities", "--id", "slow", "--start-at", later)
    assert "Timed out after 0.2s" in run_error("wait", "slow", "--timeout", "0.2", code=1)


def test_help_and_version() -> None:
    text = run("--help").stdout
    for command in (
        "worker",
        "start",
        "status",
        "history",
        "list",
        "raise-event",
        "terminate",
        "suspend",
        "resume",
        "purge",
        "demo",
        "config",
        "wait",
    ):
        assert command in text
    assert ot.__version__ in run("--version").stdout
