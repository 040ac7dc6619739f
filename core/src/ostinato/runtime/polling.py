"""How a worker polls for work items: one loop per kind (orchestration, activity).

A :class:`PollLoop` locks batches of its kind while the worker has room for them, and waits
in between on its :class:`Signal`: the worker bumps it when the provider's change signal
names that kind of work, or when an item of it ends and frees room. With no news, the wait
backs off (:class:`Backoff`) up to ``max_poll_interval`` (how writes by other processes are
seen when the provider does not signal them). A poll that got fewer items than it asked for
got all there were, so the next poll first waits for news. Every poll goes through the
worker's poison :class:`~ostinato.runtime.poison.Isolation`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from ostinato.runtime.poison import Isolation

log = logging.getLogger("ostinato.runtime.worker")

#: The first poll delay after an empty poll; it doubles up to ``max_poll_interval``.
MIN_POLL_DELAY = 0.001
#: How long a loop with no room waits before it looks again (an ending item wakes it sooner).
NO_ROOM_WAIT = 0.05


class Signal:
    """A wake-up with a version: waiters sleep only if nothing happened since they looked."""

    def __init__(self) -> None:
        #: Entered directly (a C call), not through the Condition (two Python calls).
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self.version = 0

    def bump(self) -> None:
        with self._lock:
            self.version += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._lock:
            if self.version == seen:
                self._condition.wait(timeout)


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


class Delivered(Protocol):
    """A work item as the loop sees it: how many times it was handed out."""

    @property
    def dequeue_count(self) -> int: ...


ItemT = TypeVar("ItemT", bound=Delivered)


class PollLoop(Generic[ItemT]):
    """The polling of one kind of work item (see the module doc).

    :param kind: what it locks, for logs ("orchestration", "activity").
    :param lock: locks up to ``n`` items: ``lock(n)``.
    :param room: how many more items the worker takes of this kind now.
    :param taken: called with each locked batch before the next poll may start.
    """

    def __init__(
        self,
        kind: str,
        *,
        lock: Callable[[int], list[ItemT]],
        room: Callable[[], int],
        batch_size: int,
        max_poll_interval: float,
        taken: Callable[[Sequence[ItemT]], None] = lambda items: None,
    ) -> None:
        self.kind = kind
        self.signal = Signal()
        self._lock = lock
        self._room = room
        self._taken = taken
        self._batch_size = batch_size
        self._backoff = Backoff(max_poll_interval)
        self._room_wanted = False
        #: The signal version before the last poll, if it came back short.
        self._short_poll_seen: int | None = None

    def room_freed(self) -> None:
        """An item of this kind ended: wake the loop if it waits for room."""
        if self._room_wanted:
            self._room_wanted = False
            self.signal.bump()

    def poll(self, isolation: Isolation, stopping: threading.Event) -> tuple[list[ItemT], int]:
        """Lock the next batch (waiting while there is none, or no room), and the signal's
        version before the poll that locked it; ``([], version)`` once ``stopping`` is set."""
        signal, backoff = self.signal, self._backoff
        while not stopping.is_set():
            short = self._short_poll_seen
            if short is not None:  # the last poll got all there was: wait for news first
                self._short_poll_seen = None
                signal.wait(short, backoff.empty())
            seen = signal.version
            room = self._room()
            if room <= 0:
                self._room_wanted = True
                signal.wait(seen, NO_ROOM_WAIT)
                continue
            wanted = isolation.before_poll(min(room, self._batch_size), stopping)
            if not wanted:
                continue
            items: list[ItemT] = []
            try:
                items = self._lock(wanted)
            except Exception:
                log.exception("Locking %s work items failed; retrying", self.kind)
                signal.wait(seen, backoff.empty())
                continue
            finally:
                isolation.after_poll(len(items), any(item.dequeue_count <= 1 for item in items))
            if items:
                backoff.found()
                if len(items) < wanted:
                    self._short_poll_seen = seen
                self._taken(items)
                return items, seen
            signal.wait(seen, backoff.empty())
        return [], signal.version


__all__ = ["MIN_POLL_DELAY", "Backoff", "PollLoop", "Signal"]
