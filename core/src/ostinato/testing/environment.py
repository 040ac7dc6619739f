"""The time-skipping test environment: a worker and a client on a virtual clock."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ostinato.client import Client
from ostinato.converter import DataConverter
from ostinato.orchestration.app import App
from ostinato.runtime.worker import Worker
from ostinato.status import OrchestrationState
from ostinato.testing.clock import (
    VirtualClock,
    VirtualTimeMemoryProvider,
    VirtualTimeSqliteProvider,
)
from ostinato.testing.skipping import SkippingProvider

#: Seconds (real time) the environment waits for the worker to run out of work.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Seconds between the clock driver's looks while time skipping is on.
_DRIVER_INTERVAL = 0.002


class TimeSkippingEnvironment:
    """A worker and a client for ``app`` on a virtual clock that jumps over idle time.

    Time stands still until it is moved. It moves on its own while the environment's client
    waits (``env.client.wait_for_orchestration_completion`` or ``..._start``) or inside
    ``with env.skipping():``: whenever no work can run and something is due later (a timer,
    a retry delay, a scheduled start, a ``call_http`` poll), the clock jumps to it. Outside
    those, ``env.advance(timedelta)`` and ``env.sleep_until(datetime)`` move it, firing what
    falls due on the way in order. With ``auto_skip=True`` it jumps whenever the worker is
    idle, waits or not. ``ctx.current_utc_datetime`` is the virtual time.

    The store is the in-memory provider, or SQLite in ``sqlite_path`` for tests that want a
    file. Use it as a context manager; other keyword arguments go to the :class:`Worker`.
    """

    def __init__(
        self,
        app: App,
        *,
        start: datetime | None = None,
        sqlite_path: str | os.PathLike[str] | None = None,
        converter: DataConverter | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        auto_skip: bool = False,
        **worker_options: Any,
    ) -> None:
        self.app = app
        self.clock = VirtualClock(start)
        self.start_time = self.clock.now()
        inner = (
            VirtualTimeMemoryProvider(self.clock)
            if sqlite_path is None
            else VirtualTimeSqliteProvider(self.clock, sqlite_path)
        )
        self.provider = SkippingProvider(inner, self.clock)
        self.idle_timeout = idle_timeout
        worker_options.setdefault("max_poll_interval", 0.05)
        self.worker = Worker(app, self.provider, converter=converter, **worker_options)
        self.client = TimeSkippingClient(self, converter=converter)
        self._skipping = 1 if auto_skip else 0
        self._skipping_mutex = threading.Lock()
        self._stopping = threading.Event()
        self._driver: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and the clock driver."""
        self.provider.setup()
        self.worker.start()
        self._stopping.clear()
        self._driver = threading.Thread(
            target=self._drive, name="ostinato-time-skipping", daemon=True
        )
        self._driver.start()

    def stop(self) -> None:
        """Stop the clock driver and the worker, and close the store."""
        self._stopping.set()
        if self._driver is not None:
            self._driver.join()
            self._driver = None
        self.worker.stop()
        self.provider.close()

    def __enter__(self) -> TimeSkippingEnvironment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- time -----------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The virtual time."""
        return self.clock.now()

    @contextmanager
    def skipping(self) -> Iterator[None]:
        """Let the clock jump over idle time while the block runs."""
        with self._skipping_mutex:
            self._skipping += 1
        try:
            yield
        finally:
            with self._skipping_mutex:
                self._skipping -= 1

    def advance(self, duration: timedelta) -> None:
        """Move the clock forward by ``duration`` (see :meth:`sleep_until`)."""
        if duration < timedelta(0):
            raise ValueError("advance() needs a duration of zero or more")
        self.sleep_until(self.now() + duration)

    def sleep_until(self, when: datetime) -> None:
        """Move the clock forward to ``when``, stopping at each timer (or other delayed work)
        due on the way so it runs at its own time, and return once the worker is idle."""
        if when.tzinfo is None:
            raise ValueError("sleep_until() needs an aware datetime (tzinfo=timezone.utc)")
        if when < self.now():
            raise ValueError(f"The clock is at {self.now()}; it cannot go back to {when}")
        self.wait_until_idle()
        while True:
            wakeup = self.provider.next_wakeup()
            if wakeup is None or wakeup > when:
                break
            self.provider.move_clock(wakeup)
            self.wait_until_idle()
        if when > self.now():
            self.provider.move_clock(when)
        self.wait_until_idle()

    def wait_until_idle(self, timeout: float | None = None) -> None:
        """Wait until no work can run at the current virtual time; raises ``TimeoutError``."""
        limit = self.idle_timeout if timeout is None else timeout
        if not self._wait_for(self.provider.idle, limit):
            raise TimeoutError(f"The worker was still busy after {limit}s (real time)")

    def _wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        changes = self.provider.changes
        seen = changes.version
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            seen = changes.wait(seen, min(_DRIVER_INTERVAL, remaining))
        return True

    def _drive(self) -> None:
        """Jump the clock while skipping is on and nothing can run."""
        changes = self.provider.changes
        seen = changes.version
        while not self._stopping.is_set():
            if self._skipping and self.provider.idle():
                wakeup = self.provider.next_wakeup()
                if wakeup is not None:
                    self.provider.move_clock(wakeup)
                    continue
            if self._skipping:
                seen = changes.wait(seen, _DRIVER_INTERVAL)
            else:
                self._stopping.wait(0.01)


class TimeSkippingClient(Client):
    """A :class:`Client` whose waits let the environment's clock skip ahead."""

    def __init__(
        self, env: TimeSkippingEnvironment, *, converter: DataConverter | None = None
    ) -> None:
        super().__init__(env.provider, converter=converter)
        self.env = env

    def wait_for_orchestration_start(
        self, instance_id: str, *, timeout: float = 60
    ) -> OrchestrationState:
        with self.env.skipping():
            return super().wait_for_orchestration_start(instance_id, timeout=timeout)

    def wait_for_orchestration_completion(
        self, instance_id: str, *, timeout: float = 60
    ) -> OrchestrationState:
        with self.env.skipping():
            return super().wait_for_orchestration_completion(instance_id, timeout=timeout)


__all__ = ["DEFAULT_IDLE_TIMEOUT", "TimeSkippingClient", "TimeSkippingEnvironment"]
