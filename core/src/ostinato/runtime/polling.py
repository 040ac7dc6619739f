"""How long an idle worker thread sleeps between polls that found nothing.

* :class:`Backoff`: short after work was found, doubling while polls come back empty (how a
  worker sees writes that no change signal told it about: other processes', expired locks,
  delayed messages coming due);
* :class:`DueTimes`: when the delayed messages (timers, retries) a worker committed come due,
  for a worker whose provider signals other processes' writes too
  (``ChangeSignal.cross_process``) and so needs to poll only for those.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable

#: The first poll delay after an empty poll; it doubles up to ``max_poll_interval``.
MIN_POLL_DELAY = 0.001


class Backoff:
    """Poll delays: short after work was found, doubling while polls come back empty."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.delay = MIN_POLL_DELAY

    def found(self) -> None:
        self.delay = MIN_POLL_DELAY

    def empty(self) -> float:
        delay = self.delay
        self.delay = min(delay * 2, self.ceiling)
        return delay


class DueTimes:
    """When the delayed messages (timers, retries) this worker committed become due.

    A poller whose provider signals other processes' writes too (``ChangeSignal.
    cross_process``) needs no quick polls to see new work, only to see delayed messages come
    due: it sleeps until the next one this worker knows of, or ``max_poll_interval``.
    """

    def __init__(self) -> None:
        self._due: list[float] = []  # a heap of time.monotonic() values
        self._mutex = threading.Lock()

    def add(self, delays: Iterable[float]) -> None:
        """Messages that become visible in ``delays`` seconds."""
        now = time.monotonic()
        with self._mutex:
            for delay in delays:
                heapq.heappush(self._due, now + delay)

    def wait(self, ceiling: float) -> float:
        """How long an idle poller may sleep: until the next due time, at most ``ceiling``
        (0 once for each that came due)."""
        now = time.monotonic()
        with self._mutex:
            if not self._due:
                return ceiling
            first = self._due[0]
            if first <= now:
                heapq.heappop(self._due)
                return 0.0
        return min(ceiling, first - now + MIN_POLL_DELAY)


__all__ = ["MIN_POLL_DELAY", "Backoff", "DueTimes"]
