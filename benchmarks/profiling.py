"""Where time goes: a py-spy profile of the HelloCities workload, summarised for the report.

py-spy (from ``benchmarks/.venvs/tools``) starts ``run.py --profile-target <provider>`` as its
child and samples the Python stack of the thread that holds the GIL (``--gil``), without
pausing the process (``--nonblocking``, so the run is not slowed down by the sampling); the
raw (collapsed) stacks are folded here into

* categories, each sample going to the innermost frame that belongs to a known part (the
  SQLite driver calls, the relational toolkit, the replay engine, serialization, the worker,
  the client, asyncio and thread pools, ...), and
* the functions with the most samples at the top of the stack (self time).

The profile is where the interpreter's time goes, which on CPython is the resource the
worker's threads share. Work done without the GIL does not appear: SQLite's own C code
inside a statement, the kernel's WAL syncs, threads waiting for a lock. (An earlier version
sampled every thread that was not idle, and counted threads waiting for SQLite's write
mutex or a sync as busy.)
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Samples per second (``--nonblocking`` sampling costs the profiled run little).
RATE = 500

CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("SQLite provider: driver calls (execute, commit)", ("ostinato/sqlite/",)),
    ("relational toolkit: SQL, rows, payload columns", ("ostinato/relational/",)),
    ("serialization (JSON converter, json)", ("ostinato/converter", "json/")),
    (
        "replay engine and history model",
        ("ostinato/orchestration/", "ostinato/runtime/processor", "ostinato/history"),
    ),
    ("worker: dispatch, batching, activities", ("ostinato/runtime/worker",)),
    ("client: start and wait", ("ostinato/client",)),
    ("provider contract, change signal", ("ostinato/provider", "ostinato/memory")),
    (
        "asyncio, thread pools, locks",
        ("asyncio/", "concurrent/futures", "threading.py", "queue.py", "selectors.py"),
    ),
    ("benchmark harness", ("benchmarks/run.py", "run.py")),
]


WAITING = (
    # Innermost frames of threads that are parked, which py-spy cannot tell from running
    # (they wait inside C without a syscall it recognises as idle).
    ("_worker (", "concurrent/futures/thread.py"),
    ("select (", "selectors.py"),
    ("wait (", "threading.py"),
    ("_wait_for_tstate_lock (", "threading.py"),
    ("get (", "queue.py"),
    # ostinato's own waits: an idle activity thread (SimpleQueue.get), an orchestration
    # thread waiting for its turn to poll, a create waiting for its batch's leader.
    ("_Threads._run (", "ostinato/runtime/worker.py"),
    ("AsyncWorker._orchestration_thread (", "ostinato/runtime/worker.py"),
    ("CallGroup.__call__ (", "ostinato/relational/grouping.py"),
)


def _frames(stack: str) -> list[str]:
    return stack.split(";")


WAIT = "parked threads (pool workers, selectors, condition waits)"
STARTUP = "interpreter start-up (imports)"


def categorise(stack: str) -> str:
    """The category of one sample: the innermost frame that matches one."""
    frames = _frames(stack)
    if any(f in frames[-1] and p in frames[-1] for f, p in WAITING):
        return WAIT
    if any("importlib._bootstrap" in frame for frame in frames):
        return STARTUP
    for frame in reversed(frames):
        for name, patterns in CATEGORIES:
            if any(p in frame for p in patterns):
                return name
    return "other (interpreter, stdlib)"


def summarise(raw: str) -> dict[str, Any]:
    """Fold py-spy's raw output (``stack count`` lines) into categories and top functions."""
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        category = categorise(stack)
        if category in (WAIT, STARTUP):
            excluded[category] += count
            continue
        total += count
        categories[category] += count
        leaf = _frames(stack)[-1]
        # "function (path/to/file.py:123)" -> "function (file.py)"
        function, _, where = leaf.partition(" (")
        module = where.rsplit(":", 1)[0].rstrip(")")
        short = "/".join(module.split("/")[-2:])
        leaves[f"{function} ({short})"] += count
    return {
        "samples": total,
        "excluded": dict(excluded),
        "categories": [(name, n / total) for name, n in categories.most_common()] if total else [],
        "top_functions": [(name, n / total) for name, n in leaves.most_common(12)] if total else [],
    }


def profile_hello_cities(
    provider: str, n: int, runs: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Profile ``runs`` runs of ``n`` HelloCities on ``provider`` (``run.py --profile-target``
    makes them) with py-spy; a summary, or the reason not."""
    from peers.runner import ensure_environment

    try:
        tools = ensure_environment("tools", log, HERE / "tools" / "requirements.txt")
    except (RuntimeError, OSError) as exc:
        return {"error": f"py-spy not installed: {exc}"}
    py_spy = tools.parent / "py-spy"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        command = [
            str(py_spy),
            "record",
            "--rate",
            str(RATE),
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
            "--",
            sys.executable,
            str(HERE / "run.py"),
            "--profile-target",
            provider,
        ]
        command += [] if n >= 1000 else ["--quick"]
        log(f"Profiling {runs} runs of {n:,} HelloCities on {provider} with py-spy ...")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            lines = (done.stderr or done.stdout).strip().splitlines()
            return {"error": f"py-spy failed: {lines[-1] if lines else done.returncode}"}
        summary = summarise(out.read_text(encoding="utf-8", errors="replace"))
    if summary["samples"] < 50:
        return {"error": f"py-spy recorded only {summary['samples']} samples (did the run fail?)"}
    tool = f"py-spy {RATE} Hz, the thread holding the GIL"
    summary.update(provider=provider, n=n, runs=runs, tool=tool)
    return summary


class CountingProvider:
    """Wraps a provider and times every public method call (wall clock, any thread).

    Used for the "provider calls per orchestration" table: which storage calls a HelloCities
    makes on its critical path and what each costs.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.calls[name] += 1
                    self.seconds[name] += elapsed

        return timed

    def reset(self) -> None:
        """Forget what was counted so far."""
        with self._lock:
            self.calls.clear()
            self.seconds.clear()


def commit_cost(directory: str, commits: int = 300) -> dict[str, float]:
    """Milliseconds per one-row commit in a WAL SQLite file, ``FULL`` vs ``NORMAL``."""
    out = {}
    for mode in ("FULL", "NORMAL"):
        path = os.path.join(directory, f"commits-{mode}.db")
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {mode}")
        connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for i in range(commits):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 100))
            connection.execute("COMMIT")
        out[mode] = (time.perf_counter() - started) * 1000 / commits
        connection.close()
    return out
