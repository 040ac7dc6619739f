"""Receive pacing: fewer, fuller receives while in-process hand-overs keep a worker busy."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable

#: Bounds of the wait between two receives of one queue while busy (seconds).
MIN_INTERVAL = 0.25
MAX_INTERVAL = 1.0


class ReceivePacer:
    """When to receive from a queue while this process has in-process work for its workers.

    A worker that is fed from memory (activity tasks its own steps sent, activity results
    its own activity worker produced) would otherwise receive from every queue at each poll,
    mostly for nothing. While such work keeps coming (:meth:`busy` within the last
    :data:`MAX_INTERVAL`), a queue is received from again only after an interval that doubles
    with each empty receive (from :data:`MIN_INTERVAL` up to :data:`MAX_INTERVAL`) and stays
    after one that found messages, and at once after a full one. Idle, every poll receives,
    as without pacing. A message sent by this process makes its queue due at once
    (:meth:`news`); one sent by another process waits at most :data:`MAX_INTERVAL` longer
    while this one is busy.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy_until = -math.inf
        self._queues: dict[Hashable, tuple[float, float]] = {}
        self._news: set[Hashable] = set()

    def busy(self) -> None:
        """In-process work was just handed out."""
        with self._mutex:
            self._busy_until = time.monotonic() + MAX_INTERVAL

    def due(self, queue: Hashable) -> bool:
        """Whether to receive from ``queue`` now."""
        now = time.monotonic()
        with self._mutex:
            if now >= self._busy_until:
                return True
            last, interval = self._queues.get(queue, (-math.inf, 0.0))
        return now - last >= interval

    def news(self, queue: Hashable) -> None:
        """This process just sent a message to ``queue``: receive from it at the next poll."""
        with self._mutex:
            self._queues.pop(queue, None)
            self._news.add(queue)

    def with_news(self, queues: list[int]) -> list[int]:
        """Those of ``queues`` this process sent to since their last receive."""
        with self._mutex:
            return [q for q in queues if q in self._news]

    def received(self, queue: Hashable, count: int, full: bool) -> None:
        """A receive from ``queue`` returned ``count`` messages (``full``: as many as asked)."""
        now = time.monotonic()
        with self._mutex:
            self._news.discard(queue)
            interval = self._queues.get(queue, (now, MIN_INTERVAL / 2))[1]
            if full:
                interval = 0.0
            elif count:
                interval = max(MIN_INTERVAL, interval)
            else:
                interval = min(MAX_INTERVAL, max(MIN_INTERVAL, interval * 2))
            self._queues[queue] = (now, interval)
