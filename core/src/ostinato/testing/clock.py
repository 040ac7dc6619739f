"""A virtual clock, and the built-in providers reading their time from one."""

from __future__ import annotations

import os
import threading
from datetime import datetime

from ostinato.clock import utcnow
from ostinato.memory import InMemoryProvider
from ostinato.sqlite import SqliteProvider


class VirtualClock:
    """A clock that stands still until it is moved forward.

    Frozen time makes tests exact: after a 30-day timer, ``ctx.current_utc_datetime`` is the
    start plus 30 days to the microsecond.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("The clock's start needs an aware datetime (tzinfo=timezone.utc)")
        self._now = start if start is not None else utcnow()
        self._mutex = threading.Lock()

    def now(self) -> datetime:
        """The virtual time (aware UTC)."""
        return self._now

    def move_to(self, when: datetime) -> None:
        """Move forward to ``when``; a time in the past raises ``ValueError``."""
        if when.tzinfo is None:
            raise ValueError("The clock needs an aware datetime (tzinfo=timezone.utc)")
        with self._mutex:
            if when < self._now:
                raise ValueError(f"The clock cannot go back from {self._now} to {when}")
            self._now = when


class VirtualTimeMemoryProvider(InMemoryProvider):
    """The in-memory provider on a :class:`VirtualClock`."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock

    def now(self) -> datetime:  # type: ignore[override]
        return self.clock.now()


class VirtualTimeSqliteProvider(SqliteProvider):
    """The SQLite provider on a :class:`VirtualClock` (same file format as the real one)."""

    def __init__(
        self,
        clock: VirtualClock,
        path: str | os.PathLike[str],
        *,
        task_hub: str = "default",
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__(path, task_hub=task_hub, synchronous=synchronous)
        self.clock = clock

    def now(self) -> datetime:  # type: ignore[override]
        return self.clock.now()


__all__ = ["VirtualClock", "VirtualTimeMemoryProvider", "VirtualTimeSqliteProvider"]
