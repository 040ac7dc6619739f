"""The cross-process write lock of a SQLite database file: ``flock`` on a file beside it.

SQLite lets a writer that finds the write lock taken retry in steps of up to 100 ms (its busy
handler sleeps 1, 2, 5, 10 ... 100 ms between attempts), so a process waiting for another
one sleeps on long after the lock is free. Writers on one file therefore take this lock
around each write transaction first. A writer that finds it taken tries again after 50 µs,
doubling up to 1 ms between tries, so it goes on within a millisecond of the holder letting
go; the kernel releases the lock of a process that dies. (A blocking ``flock`` would wake
at once but cannot time out, and handing it to a helper thread cost more than it saved.)

SQLite's own locking still guards the data; this lock only makes ostinato's processes take
turns promptly. A writer that ignores it (the ``sqlite3`` shell, say) is waited for by
SQLite's busy timeout as before. Where ``fcntl`` is missing (Windows), the lock file cannot
be opened or the file system has no locks, there is no lock and SQLite's busy timeout does
all the waiting.
"""

from __future__ import annotations

import contextlib
import os
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FIRST_RETRY", "LAST_RETRY", "LOCK_SUFFIX", "WriteLock"]

#: The lock file is the database's path with this appended (beside ``-wal`` and ``-shm``).
LOCK_SUFFIX = "-ostinato-lock"
#: Seconds before a waiting writer's first retry; the pause doubles ...
FIRST_RETRY = 0.00005
#: ... up to this.
LAST_RETRY = 0.001


class WriteLock:
    """An exclusive lock shared by every process that opens the same lock file.

    Not reentrant and not for concurrent use within a process: callers hold an in-process
    mutex around :meth:`acquire` ... :meth:`release`.
    """

    def __init__(self, database: str) -> None:
        #: The database file's path (the lock file is beside it).
        self.database = database
        self.path = database + LOCK_SUFFIX
        self._fd: int | None = None
        self._opened = False

    def _file(self) -> int | None:
        if not self._opened:
            self._opened = True
            if fcntl is not None:
                # flock needs no write access: another user's lock file is opened read-only.
                for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
                    with contextlib.suppress(OSError):  # e.g. a read-only directory: no lock
                        self._fd = os.open(self.path, flags, 0o666)  # less the umask
                        break
        return self._fd

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; ``False`` if it stayed taken.

        ``True`` at once when there is no lock (see the module doc).
        """
        fd = self._fd if self._opened else self._file()
        if fd is None:
            return True
        flock, mode = fcntl.flock, fcntl.LOCK_EX | fcntl.LOCK_NB
        deadline = 0.0
        pause = FIRST_RETRY
        while True:
            try:
                flock(fd, mode)
                return True
            except BlockingIOError:
                pass
            except OSError:  # no locks on this file system (ENOLCK): see the module doc
                self.close()
                return True
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            if now >= deadline:
                return False
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, LAST_RETRY)

    def release(self) -> None:
        """Let the lock go (after :meth:`acquire` returned ``True``)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (releasing the lock if held); later calls take no lock."""
        fd, self._fd = self._fd, None
        self._opened = True
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
