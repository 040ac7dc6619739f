"""Holds a SQLite database's write lock on command (for test_write_lock.py).

usage: lock_holder.py DB MODE, MODE one of

* ``transaction``: a write transaction of a :class:`SqliteProvider` (ostinato's lock file and
  SQLite's write lock);
* ``lock``: only ostinato's lock file;
* ``sqlite``: only SQLite's write lock, as a writer that ignores the lock file (the shell).

Reads commands from stdin: ``hold`` (prints ``holding``) and ``release`` (prints
``released SECONDS``, the ``time.monotonic()`` just after letting go); exits at EOF.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator

from ostinato.sqlite import SqliteProvider
from ostinato.sqlite.write_lock import WriteLock

db, mode = sys.argv[1], sys.argv[2]


@contextlib.contextmanager
def held() -> Iterator[None]:
    if mode == "transaction":
        provider = SqliteProvider(db)
        with provider.transaction(durable=False):
            yield
    elif mode == "lock":
        lock = WriteLock(os.path.realpath(db))
        assert lock.acquire(0)
        try:
            yield
        finally:
            lock.release()
    else:
        connection = sqlite3.connect(db, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")


for line in sys.stdin:
    assert line.strip() == "hold", line
    with held():
        print("holding", flush=True)
        line = sys.stdin.readline()
        assert line.strip() == "release", line
    print("released", time.monotonic(), flush=True)
