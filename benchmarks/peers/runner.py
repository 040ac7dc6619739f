"""Host side of the peer benchmarks: one virtual environment and one subprocess per peer.

Each peer gets ``benchmarks/.venvs/<peer>`` (git-ignored), created with ``uv venv`` and filled
with ``uv pip install -r benchmarks/peers/<peer>/requirements.txt`` (pinned versions). The
environment is reused while its requirements file is unchanged (a stamp file holds a hash of
it). The peer's ``bench.py`` then runs in that environment and prints its results as JSON on
the last line of stdout; its stderr goes to ``benchmarks/.venvs/<peer>.log``. Anything that goes
wrong (install, start, a workload, a timeout) becomes a reason in the results: never a number.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
VENVS = BENCHMARKS / ".venvs"
PEERS = ("dbos", "durabletask", "temporal")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class PeerRun:
    """What one peer produced: results per workload, or the reasons it could not."""

    peer: str
    version: str = ""
    settings: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def uv_binary() -> str | None:
    """The ``uv`` executable (``uv run`` exports it as ``UV``)."""
    return os.environ.get("UV") or shutil.which("uv")


def _short(text: str, limit: int = 300) -> str:
    """The last meaningful line of a tool's output, for a table cell."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else "no output"
    return message if len(message) <= limit else message[: limit - 1] + "…"


def ensure_environment(peer: str, log: Any = print, requirements: Path | None = None) -> Path:
    """Create (or reuse) ``benchmarks/.venvs/<peer>``; returns its Python.

    ``requirements`` defaults to ``benchmarks/peers/<peer>/requirements.txt``. Raises
    ``RuntimeError`` with the reason when ``uv`` is missing or the install fails.
    """
    requirements = requirements or HERE / peer / "requirements.txt"
    venv = VENVS / peer
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes() + PYTHON.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    uv = uv_binary()
    if uv is None:
        raise RuntimeError("uv not found (needed to create the peer's environment)")
    log(f"Installing {peer} into {venv.relative_to(BENCHMARKS.parent)} ...")
    for command in (
        [uv, "venv", "--quiet", "--clear", "--python", PYTHON, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command[1:3])}` failed: {_short(done.stderr)}")
    stamp.write_text(digest)
    return python


def run_peer(
    peer: str,
    sizes: dict[str, Any],
    workloads: list[str],
    timeout: float,
    log: Any = print,
    env: dict[str, str] | None = None,
    label: str | None = None,
) -> PeerRun:
    """Install (if needed) and run one peer's benchmark script; never raises.

    The ``idle`` workload runs in a process of its own, as ostinato's does, so that memory
    left behind by the other workloads does not blur its resident-size difference.
    ``env`` adds environment variables for the peer's script; ``label`` names its log files
    (default: the peer's name).
    """
    label = label or peer
    others = [w for w in workloads if w != "idle"]
    result = _run_peer(peer, sizes, others, timeout, log, label, env) if others else PeerRun(peer)
    if "idle" in workloads and "setup" not in result.errors:
        idle = _run_peer(peer, sizes, ["idle"], timeout, log, f"{label}-idle", env)
        result.version = result.version or idle.version
        result.settings = result.settings or idle.settings
        result.sizes = result.sizes or idle.sizes
        result.results.update(idle.results)
        reason = idle.errors.get("idle") or idle.errors.get("setup")
        if reason:
            result.errors["idle"] = reason
    return result


def _run_peer(
    peer: str,
    sizes: dict[str, Any],
    workloads: list[str],
    timeout: float,
    log: Any = print,
    label: str = "",
    env: dict[str, str] | None = None,
) -> PeerRun:
    """One subprocess of a peer's benchmark script running ``workloads``."""
    result = PeerRun(peer, sizes={k: v for k, v in sizes.items() if isinstance(v, int)})
    try:
        python = ensure_environment(peer, log)
    except (RuntimeError, OSError) as exc:
        result.errors["setup"] = f"not installed: {exc}"
        return result
    command = [str(python), str(HERE / peer / "bench.py"), "--workloads", *workloads]
    for key, value in sizes.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    log_path = VENVS / f"{label or peer}.log"
    log(f"Running {peer} (log: {log_path.relative_to(BENCHMARKS.parent)}) ...")
    with open(log_path, "w", encoding="utf-8") as stderr:
        # Own process group: a timeout also ends what the peer started (e.g. Temporal's server).
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            result.errors["setup"] = f"did not finish within {timeout:.0f} s (see {log_path.name})"
            return result
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    last = stdout.strip().splitlines()[-1:] if stdout else []
    try:
        data = json.loads(last[0]) if last else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        tail = log_path.read_text(encoding="utf-8", errors="replace")
        result.errors["setup"] = f"exited {process.returncode} without results: {_short(tail)}"
        return result
    result.version = str(data.get("version", ""))
    result.settings = str(data.get("settings", ""))
    result.results = dict(data.get("results", {}))
    result.errors = {k: str(v) for k, v in dict(data.get("errors", {})).items()}
    return result
