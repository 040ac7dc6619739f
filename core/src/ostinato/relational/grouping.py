"""Running concurrent calls together: one transaction for many callers.

An engine that serializes its writes (SQLite: one writer at a time) pays for each caller's
transaction in turn: the write lock changes hands, and every commit waits for its sync.
:class:`CallGroup` lets the first caller that finds no batch in progress run every request
that is waiting, its own included, in one call; the others sleep until their result is in.
When the batch is done, leadership passes to the first request that arrived meanwhile, so no
caller serves others for longer than one batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["CallGroup"]

R = TypeVar("R")


class _Waiter(Generic[R]):
    __slots__ = ("done", "error", "request", "wake")

    def __init__(self, request: R) -> None:
        self.request = request
        self.error: BaseException | None = None
        self.done = False
        # Held until the waiter is woken (a bare lock: cheaper to make than an Event).
        self.wake = threading.Lock()
        self.wake.acquire()


class CallGroup(Generic[R]):
    """Runs concurrent requests in batches through ``run``.

    ``run(requests)`` handles the requests in one go and returns, per request, the exception
    it failed with or ``None``; an exception out of ``run`` fails the whole batch.
    """

    def __init__(self, run: Callable[[Sequence[R]], Sequence[BaseException | None]]) -> None:
        self._run = run
        self._guard = threading.Lock()
        self._waiting: list[_Waiter[R]] = []
        self._busy = False

    def __call__(self, request: R) -> None:
        """Handle ``request`` (in some batch); raise what it failed with."""
        me = _Waiter(request)
        with self._guard:
            self._waiting.append(me)
            follower = self._busy
            self._busy = True
        if follower:
            me.wake.acquire()
        if not me.done:  # our turn to lead: run everything waiting, ourselves included
            self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        with self._guard:
            batch, self._waiting = self._waiting, []
        errors: Sequence[BaseException | None]
        try:
            errors = self._run([waiter.request for waiter in batch])
        except BaseException as exc:  # noqa: BLE001 - every request of the batch gets it
            errors = [exc] * len(batch)
        for waiter, error in zip(batch, errors, strict=True):
            waiter.error = error
            waiter.done = True
        with self._guard:
            if self._waiting:
                self._waiting[0].wake.release()  # the next batch's leader
            else:
                self._busy = False
        for waiter in batch:
            waiter.wake.release()
