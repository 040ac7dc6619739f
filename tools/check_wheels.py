"""Build, check and try the five distributions the way a user gets them.

    python3 dev.py wheels [--out-dir DIR] [--skip-postgres]

1. ``uv build --all-packages``: an sdist and a wheel of ``ostinato``, ``ostinato-conformance``,
   ``ostinato-postgres``, ``ostinato-mssql`` and ``ostinato-azure`` into ``dist/`` (each wheel is
   built from its sdist, so the sdists are complete);
2. ``twine check --strict``: the metadata and long descriptions PyPI will render;
3. a fresh virtual environment outside the repository gets the built wheels (not the source
   tree) from ``dist/``, their dependencies from the package index;
4. in an empty directory there: ``ostinato --version`` (the one version of ``VERSION``),
   ``ostinato demo`` on the default provider (SQLite), then a switch to PostgreSQL by
   configuration only (an ``ostinato.toml``) against a throwaway server, ``ostinato demo``
   again, and ``ostinato list``; ``--skip-postgres`` leaves the switch out where no PostgreSQL
   can start.

Exit code 0 when every step passed; each step prints one line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = (
    "ostinato",
    "ostinato_conformance",
    "ostinato_postgres",
    "ostinato_mssql",
    "ostinato_azure",
)
BIN = "Scripts" if os.name == "nt" else "bin"


class StepFailed(Exception):
    """A step failed; the message says which and why."""


def sh(
    command: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    what: str,
) -> str:
    """Run ``command``; its stdout, or :class:`StepFailed` with its output."""
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StepFailed(
            f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def step(message: str, started: float) -> None:
    print(f"  {message} ({time.monotonic() - started:.1f}s)", flush=True)


def build(uv: str, out: Path) -> list[Path]:
    if out.exists():
        shutil.rmtree(out)
    sh([uv, "build", "--all-packages", "--out-dir", out], cwd=ROOT, what="uv build")
    files = sorted(f for f in out.iterdir() if f.name.endswith((".whl", ".tar.gz")))
    for name in DISTRIBUTIONS:
        kinds = {f.suffix for f in files if f.name.startswith(f"{name}-")}
        if kinds != {".whl", ".gz"}:
            raise StepFailed(f"uv build made no sdist and wheel of {name}: {files}")
    return files


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a user who activated ``venv``: nothing of this repository."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OSTINATO_", "PYTHON", "UV_", "VIRTUAL_ENV", "PG"))
    }
    env["PATH"] = f"{venv / BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def demo(ostinato: Path, cwd: Path, env: dict[str, str], provider: str) -> None:
    out = sh([ostinato, "demo"], cwd=cwd, env=env, what=f"ostinato demo on {provider}")
    expected = 'Result: ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]'
    if "Status: COMPLETED" not in out or expected not in out or "ExecutionCompleted" not in out:
        raise StepFailed(f"ostinato demo on {provider} printed something else:\n{out}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uv", default=shutil.which("uv"), help="the uv executable")
    parser.add_argument("--out-dir", default=str(ROOT / "dist"), help="where dists go")
    parser.add_argument("--skip-postgres", action="store_true", help="no provider switch")
    options = parser.parse_args(argv)
    if not options.uv:
        parser.error("uv is needed (python3 dev.py wheels installs it)")
    uv, out = options.uv, Path(options.out_dir).resolve()
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    started = time.monotonic()
    print(f"Distributions of ostinato {version}:", flush=True)
    try:
        files = build(uv, out)
        step(f"built {len(files)} files into {out}", started)
        sh(
            [sys.executable, "-m", "twine", "check", "--strict", *files],
            what="twine check",
        )
        step("twine check --strict passed", started)
        with tempfile.TemporaryDirectory(prefix="ostinato-wheels-") as tmp:
            venv, work = Path(tmp) / "venv", Path(tmp) / "app"
            work.mkdir()
            sh(
                [uv, "venv", "--quiet", "--python", sys.executable, venv],
                env=user_env(venv) | {"UV_PYTHON_DOWNLOADS": "never"},
                what="uv venv",
            )
            wheels = [f for f in files if f.suffix == ".whl"]
            core = next(f for f in wheels if f.name.startswith("ostinato-"))
            extras = [f"{core}[cli]", *(str(f) for f in wheels if f != core)]
            sh(
                [uv, "pip", "install", "--quiet", "--python", venv / BIN / "python", *extras],
                env=user_env(venv),
                what="installing the wheels",
            )
            step(f"installed the {len(wheels)} wheels into a fresh venv", started)
            env = user_env(venv)
            ostinato = venv / BIN / "ostinato"
            shown = sh([ostinato, "--version"], cwd=work, env=env, what="ostinato --version")
            if version not in shown:
                raise StepFailed(f"ostinato --version says {shown.strip()!r}, not {version}")
            located = sh(
                [venv / BIN / "python", "-c", "import ostinato; print(ostinato.__file__)"],
                cwd=work,
                env=env,
                what="import ostinato",
            )
            if str(ROOT) in located:
                raise StepFailed(f"ostinato came from the repository, not the wheel: {located}")
            demo(ostinato, work, env, "sqlite")
            if not (work / "ostinato.db").is_file():
                raise StepFailed("ostinato demo did not use ./ostinato.db (the default)")
            step("ostinato demo ran HelloCities on SQLite (./ostinato.db)", started)
            if not options.skip_postgres:
                switch_to_postgres(ostinato, work, env)
                step("the same app on PostgreSQL, switched by ostinato.toml alone", started)
    except StepFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"All distribution checks passed in {time.monotonic() - started:.1f}s.", flush=True)
    return 0


def switch_to_postgres(ostinato: Path, work: Path, env: dict[str, str]) -> None:
    """Write an ostinato.toml naming PostgreSQL and run the demo again (a throwaway server)."""
    from ostinato_postgres.testing import PostgresUnavailable, postgres_server

    try:
        with postgres_server() as server:
            (work / "ostinato.toml").write_text(
                f'provider = "postgres"\ntask_hub = "wheels"\n\n[postgres]\ndsn = "{server.dsn}"\n',
                encoding="utf-8",
            )
            demo(ostinato, work, env, "postgres")
            listed = sh([ostinato, "list", "--json"], cwd=work, env=env, what="ostinato list")
            if '"hello_cities"' not in listed:
                raise StepFailed(f"ostinato list on PostgreSQL shows no hello_cities:\n{listed}")
    except PostgresUnavailable as exc:
        raise StepFailed(f"no PostgreSQL for the provider switch ({exc}); --skip-postgres") from exc


if __name__ == "__main__":
    sys.exit(main())
