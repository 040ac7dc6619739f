"""Stress mode: load beside the suite, so that races which need a busy machine show up.

While active, :class:`Stress` runs one CPU-bound hog process per CPU (they spin until
stopped) and sets the interpreter's thread switch interval to 20 microseconds (from 5 ms),
so the provider's threads, the worker's threads and the suite's threads interleave at many
more points. Selected by ``--ostinato-stress`` or ``--ostinato-profile=stress``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any

#: The thread switch interval under stress (seconds).
SWITCH_INTERVAL = 0.00002


def _hog(stop: Any) -> None:
    """Burn CPU until ``stop`` is set."""
    n = 0
    while not stop.is_set():
        for _ in range(20_000):
            n = (n * 31 + 7) % 1_000_003


class Stress:
    """CPU hogs and a short switch interval, from :meth:`start` to :meth:`stop`."""

    def __init__(self, hogs: int | None = None) -> None:
        self.hogs = hogs if hogs is not None else os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._processes: list[Any] = []
        self._interval = sys.getswitchinterval()

    def start(self) -> None:
        for _ in range(self.hogs):
            process = self._context.Process(target=_hog, args=(self._stop,), daemon=True)
            process.start()
            self._processes.append(process)
        sys.setswitchinterval(SWITCH_INTERVAL)

    def stop(self) -> None:
        sys.setswitchinterval(self._interval)
        self._stop.set()
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
        self._processes.clear()

    @property
    def running(self) -> int:
        """How many hog processes are alive."""
        return sum(p.is_alive() for p in self._processes)
