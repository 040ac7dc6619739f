"""The README as a newcomer reads it: every command it shows runs as written, and its example
passes ``mypy --strict`` and prints what it says.

Commands run from the repository root (where the README's commands are typed) with
``OSTINATO_SQLITE_PATH`` pointing into a temporary directory, so nothing is left behind.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TYPING = ROOT / "docs" / "typing.md"
#: The long description of the ``ostinato`` distribution (its PyPI page).
CORE_README = ROOT / "core" / "README.md"
VENV_BIN = Path(sys.executable).parent


def blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Command:
    """One line of a console block: environment assignments, then the command."""

    line: str
    env: dict[str, str]
    argv: list[str]

    @property
    def dev_py(self) -> list[str]:
        """What follows ``python3 dev.py`` (empty if it is not a dev.py command)."""
        return self.argv[2:] if self.argv[:2] == ["python3", "dev.py"] else []


def console_commands() -> list[Command]:
    commands = []
    for block in blocks(README, "console"):
        for line in block.splitlines():
            # A placeholder such as <instance id> is one word.
            line = re.sub(r"<([^<>]+)>", lambda m: "<" + m.group(1).replace(" ", "_") + ">", line)
            words = shlex.split(line, comments=True)
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            if words:
                commands.append(Command(line, env, words))
    return commands


COMMANDS = console_commands()


def dev_py_commands() -> set[str]:
    source = (ROOT / "dev.py").read_text(encoding="utf-8")
    return set(re.findall(r'if command == "(\w+)"', source))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OSTINATO_", "VIRTUAL_ENV"))}
    return clean | {"OSTINATO_SQLITE_PATH": str(tmp_path / "readme.db"), "PYTHONUNBUFFERED": "1"}


def run(command: Command, env: dict[str, str], *replace: tuple[str, str]) -> str:
    argv = list(command.argv)
    for old, new in replace:
        argv = [new if word == old else word for word in argv]
    result = subprocess.run(
        argv, cwd=ROOT, env=env | command.env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command.line}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_console_command_names_a_program_that_exists() -> None:
    assert len(COMMANDS) >= 7, [c.line for c in COMMANDS]
    known = dev_py_commands()
    for command in COMMANDS:
        program = command.argv[0]
        assert shutil.which(program), f"{command.line}: {program!r} is not on PATH"
        assert command.dev_py, f"{command.line}: run it through python3 dev.py (uv may be absent)"
        assert command.dev_py[0] in known, f"{command.line}: dev.py has no {command.dev_py[0]!r}"
        if command.dev_py[0] == "run":
            tool = command.dev_py[1]
            assert (VENV_BIN / tool).exists(), f"{command.line}: {tool!r} is not installed"
        for key in command.env:
            assert key.startswith("OSTINATO_"), f"{command.line}: what is {key}?"


def test_the_demo_command_runs(env: dict[str, str]) -> None:
    (demo,) = [c for c in COMMANDS if c.dev_py == ["demo"]]
    out = run(demo, env)
    assert "Status: COMPLETED" in out and "ExecutionCompleted" in out


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c.env],
    ids=[c.env.get("OSTINATO_PROVIDER", "?") for c in COMMANDS if c.env],
)
def test_provider_switch_lines_configure_a_valid_provider(
    command: Command, env: dict[str, str]
) -> None:
    """Their workers need a server; what they configure must be accepted as written."""
    assert command.dev_py[:3] == ["run", "ostinato", "worker"]
    config = Command(command.line, command.env, ["python3", "dev.py", "run", "ostinato", "config"])
    out = run(config, env)
    assert f"Provider: {command.env['OSTINATO_PROVIDER']}" in out


def test_the_cli_session_runs_as_written(env: dict[str, str]) -> None:
    session = [c for c in COMMANDS if c.dev_py[:2] == ["run", "ostinato"] and not c.env]
    verbs = [c.dev_py[2] for c in session]
    assert verbs == ["worker", "start", "history"], verbs
    worker_command, start, history = session
    worker = subprocess.Popen(
        worker_command.argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stderr is not None
        for line in worker.stderr:
            if "Press Ctrl+C to stop" in line:
                break
        else:
            pytest.fail(f"the worker did not start (exit {worker.wait()})")
        instance_id = run(start, env).strip()
        assert re.fullmatch(r"[0-9a-f]{32}", instance_id), instance_id
        deadline = time.monotonic() + 120
        while "ExecutionCompleted" not in (
            table := run(history, env, ("<instance_id>", instance_id))
        ):
            assert time.monotonic() < deadline, table
            time.sleep(0.2)
        for event in ("ExecutionStarted", "TaskScheduled", "TaskCompleted", "Hello London!"):
            assert event in table
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("readme", [README, CORE_README], ids=["README", "core-README"])
def test_the_readme_example_prints_what_it_says(readme: Path, tmp_path: Path) -> None:
    (example,) = blocks(readme, "python")
    (tmp_path / "readme_example.py").write_text(example, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")}
    result = subprocess.run(
        [sys.executable, "readme_example.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    promised = re.search(r"print\(state\.output\)\s+# (.*)", example)
    assert promised is not None and result.stdout.strip() == promised.group(1)


WRONG = """
import ostinato as ot

app = ot.App()

@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return city

@app.orchestrator
def wrong(ctx: ot.OrchestrationContext, _input: None) -> ot.Orchestration[int]:
    task = ctx.call_activity(say_hello, input="Tokyo")
    yield task
    count: int = task.get_result()
    return count
"""


@pytest.mark.slow
def test_the_examples_pass_mypy_strict_and_types_are_carried(tmp_path: Path) -> None:
    (readme_example,) = blocks(README, "python")
    (typing_example,) = blocks(TYPING, "python")
    (core_example,) = blocks(CORE_README, "python")
    files = {
        "readme_example.py": readme_example,
        "typing_example.py": typing_example,
        "core_readme_example.py": core_example,
    }
    files["wrong.py"] = WRONG
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # The only error: the activity's str reached get_result() and was assigned to an int.
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("wrong.py:") and 'expression has type "str"' in errors[0]
