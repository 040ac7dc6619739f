#!/usr/bin/env python3
"""Development entry point: needs only Python 3.11+ (and Node 20+ for the Azurite tests).

    python3 dev.py demo            # run the HelloCities demo (SQLite file, no server)
    python3 dev.py test [ARGS]     # run every test that can run on this machine (pytest ARGS)
    python3 dev.py lint            # ruff + mypy
    python3 dev.py bench [ARGS]    # the benchmark harness (benchmarks/run.py ARGS)
    python3 dev.py run CMD [ARGS]  # any command in the project's environment, e.g.
                                   #   python3 dev.py run ostinato worker examples.hello_cities:app
    python3 dev.py wheels          # build the five distributions into dist/, twine-check them,
                                   # install the wheels in a fresh venv and run ostinato there

It installs uv into ``.tools/`` if uv is not on PATH, then lets uv create ``.venv`` with every
distribution of the repository in editable mode, exactly as pinned in ``uv.lock``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
UV_VERSION = "0.13.9"


def uv() -> str:
    """Path of a uv executable, installing a pinned one into .tools/ if needed."""
    found = shutil.which("uv")
    if found:
        return found
    bindir = TOOLS / ("Scripts" if os.name == "nt" else "bin")
    local = bindir / ("uv.exe" if os.name == "nt" else "uv")
    if not local.exists():
        print(f"Installing uv {UV_VERSION} into {TOOLS} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        python = bindir / ("python.exe" if os.name == "nt" else "python")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], check=True
        )
    return str(local)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the Python that is here
    return env


def run(*args: str) -> int:
    return subprocess.run([uv(), "run", "--locked", *args], cwd=ROOT, env=_env()).returncode


def passthrough(*args: str) -> int:
    """Run a command in the project's environment, from the current directory.

    On POSIX the process becomes uv (exec), so signals reach the command directly: Ctrl+C or
    SIGTERM stops ``ostinato worker`` gracefully.
    """
    command = [uv(), "run", "--locked", "--project", str(ROOT), *args]
    if os.name == "posix":
        os.execve(command[0], command, _env())
    return subprocess.run(command, env=_env()).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return run("ostinato", "demo", *rest)
    if command == "test":
        return run("pytest", *rest)
    if command == "lint":
        return run("ruff", "check", ".") or run("ruff", "format", "--check", ".") or run("mypy")
    if command == "bench":
        return run("python", "benchmarks/run.py", *rest)
    if command == "run":
        if not rest:
            print("Usage: python3 dev.py run COMMAND [ARGS...]", file=sys.stderr)
            return 2
        return passthrough(*rest)
    if command == "wheels":
        return run("python", "tools/check_wheels.py", "--uv", uv(), *rest)
    print(f"Unknown command {command!r}; see `python3 dev.py --help`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
