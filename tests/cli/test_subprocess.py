"""The real thing: ``ostinato worker`` in one process, commands from others, on one SQLite file."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from .conftest import HAS_SQLITE, REPO_ROOT
from .test_commands import HELLO_CITIES_EVENTS

pytestmark = pytest.mark.skipif(not HAS_SQLITE, reason="the sqlite provider is not installed")

#: The ``ostinato`` console script installed next to this interpreter.
CONSOLE_SCRIPT = Path(sys.executable).parent / "ostinato"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")}
    return clean | {"OSTINATO_SQLITE_PATH": str(tmp_path / "shared.db"), "PYTHONUNBUFFERED": "1"}


def ostinato(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ostinato ARGS`` in the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "ostinato", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


class WorkerProcess:
    """``ostinato worker ... --json`` in a subprocess, its stdout lines read on a thread."""

    def __init__(self, env: dict[str, str], target: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "ostinato", "worker", target, "--json", "--grace-period", "5"),
                *args,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        self.reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line)

    def next_event(self, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.1)
                break
            except queue.Empty:
                finished = not self.reader.is_alive() and self.lines.empty()  # EOF
                if finished or time.monotonic() > deadline:
                    self.process.kill()
                    _, err = self.process.communicate()
                    raise AssertionError(f"no output from the worker; stderr: {err}") from None
        data: dict[str, object] = json.loads(line)
        return data

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[WorkerProcess]:
    w = WorkerProcess(env, "examples.hello_cities:app")
    yield w
    if w.process.poll() is None:
        w.process.kill()
        w.process.wait()


def test_worker_process_serves_commands_from_other_processes(
    worker: WorkerProcess, env: dict[str, str]
) -> None:
    started = worker.next_event()
    assert started["event"] == "started"
    assert started["provider"] == "sqlite" and started["task_hub"] == "default"
    assert started["orchestrators"] == ["hello_cities"]
    assert started["pid"] == worker.process.pid

    # The console script itself, as a user runs it.
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "start", "hello_cities", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    instance_id = json.loads(result.stdout)["instance_id"]

    final = json.loads(ostinato(env, "wait", instance_id, "--timeout", "30", "--json").stdout)
    assert final["runtime_status"] == "COMPLETED"
    assert final["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    status = json.loads(ostinato(env, "status", instance_id, "--json").stdout)
    assert status["runtime_status"] == "COMPLETED"
    history = json.loads(ostinato(env, "history", instance_id, "--json").stdout)
    assert [row["event_type"] for row in history["events"]] == HELLO_CITIES_EVENTS

    code, stderr = worker.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert worker.next_event(timeout=5) == {"event": "stopped", "worker_id": started["worker_id"]}
    assert "Traceback" not in stderr


def test_ctrl_c_stops_the_worker_gracefully(worker: WorkerProcess) -> None:
    assert worker.next_event()["event"] == "started"
    code, stderr = worker.stop(signal.SIGINT)
    assert code == 0, stderr
    assert worker.next_event(timeout=5)["event"] == "stopped"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_worker_processes_share_the_hub_restart_and_stop_on_sigterm(env: dict[str, str]) -> None:
    w = WorkerProcess(env, "examples.hello_cities:app", "--processes", "2")
    try:
        started = w.next_event()
        children = started["worker_pids"]
        assert started["processes"] == 2 and isinstance(children, list) and len(children) == 2
        assert w.process.pid not in children

        os.kill(children[0], signal.SIGKILL)  # the supervisor starts another in its place
        result = ostinato(env, "start", "hello_cities", "--json")
        instance_id = json.loads(result.stdout)["instance_id"]
        final = json.loads(ostinato(env, "wait", instance_id, "--timeout", "60", "--json").stdout)
        assert final["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

        code, stderr = w.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert w.next_event(timeout=5) == {"event": "stopped", "worker_id": started["worker_id"]}
        assert "restarting it" in stderr
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if w.process.poll() is None:
            w.process.kill()


def test_errors_in_a_real_process_are_one_line(env: dict[str, str]) -> None:
    for args, code, expected in [
        (["status", "nope"], 1, "Error: No orchestration instance with ID 'nope' was found."),
        (["worker", "no_such_module:app"], 1, "Error: Cannot import 'no_such_module'"),
        (["start", "x", "--input", "{"], 2, "Error: Invalid value for '--input'"),
        (["--provider", "nosuch", "list"], 1, "Error: Unknown provider 'nosuch'"),
    ]:
        result = ostinato(env, *args, code=code)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(expected), result.stderr


def test_without_the_cli_extra_the_message_says_how_to_install_it(env: dict[str, str]) -> None:
    code = (
        "import sys; sys.modules['click'] = None; from ostinato.cli import main; main(['--help'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: the ostinato command line needs 'click': install it with pip install"
        " 'ostinato[cli]'"
    )
