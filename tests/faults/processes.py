"""Worker processes for the fault tests, restarted whenever one dies."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class RestartingWorker:
    """Keeps one ``worker_process.py`` running: a watcher thread starts a new one each time
    the last one exits (``crashes`` counts those exits)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.crashes = 0
        self.proc: subprocess.Popen[str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> RestartingWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "worker_process.py"), json.dumps(self.spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.proc = proc
            proc.wait()
            if not self._stop.is_set():
                self.crashes += 1


def start_worker(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """One ``worker_process.py``; returns once it prints ``ready``."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "worker_process.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"the worker process did not start: {line!r}"
    return proc
