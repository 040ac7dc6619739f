"""``TinySqlProvider``: a relational provider in a page, on Python's ``sqlite3``, written with
the relational toolkit's public hooks only (``ostinato.relational``), as the worked example of
docs/custom-provider.md, "Writing a relational provider".

The toolkit supplies the schema, every statement and the whole storage contract; this module
supplies a :class:`~ostinato.relational.Dialect` (what the engine spells differently) and the
connection handling: :meth:`TinySqlProvider.transaction` and :meth:`TinySqlProvider.read`.
One connection serves every thread, behind a lock, so it suits tests and small deployments;
``ostinato.sqlite`` is the production SQLite provider.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator

from ostinato.errors import ProviderError
from ostinato.provider import ProviderCapabilities
from ostinato.relational import (
    ColumnType,
    Cursor,
    Dialect,
    RelationalProvider,
    Transaction,
    migrate,
    to_micros,
)

__all__ = ["TinySqlDialect", "TinySqlProvider"]


class TinySqlDialect(Dialect):
    """SQLite: the toolkit's defaults, plus SQLite's type names and error codes."""

    type_names = {
        ColumnType.IDENTITY: "INTEGER PRIMARY KEY",
        ColumnType.BIGINT: "INTEGER",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.KEY: "TEXT",
        ColumnType.TEXT: "TEXT",
    }

    def is_unique_violation(self, error: BaseException) -> bool:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, sqlite3.IntegrityError):
                return True
            cause = cause.__cause__
        return False

    def table_names_sql(self) -> str:
        return "SELECT name FROM sqlite_master WHERE type = 'table'"


class TinySqlProvider(RelationalProvider):
    """Stores task hubs in one SQLite file through one connection."""

    capabilities = ProviderCapabilities(
        transactional_checkpoints=True,
        max_payload_bytes=100 * 1024 * 1024,
        multi_process=False,
        lock_expiry=True,
        # The toolkit implements these calls: a provider built on it claims them as they are.
        eager_activities=True,
        eager_orchestrations=True,
        eager_steps=True,
    )

    def __init__(self, path: str | os.PathLike[str], *, task_hub: str = "default") -> None:
        super().__init__(TinySqlDialect(), task_hub)
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._ready = False

    def _cursor(self) -> sqlite3.Cursor:
        """The connection's cursor (call with the lock held)."""
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            # Write-ahead log: a commit is one append and one sync.
            self._connection.execute("PRAGMA journal_mode = WAL").fetchall()
        return self._connection.cursor()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver errors in ostinato's terms (the driver's stays as ``__cause__``)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise ProviderError(f"SQLite error on '{self.path}': {exc}") from exc

    # -- the hooks the toolkit calls ------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, durable: bool) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the body raises."""
        if not self._ready:
            self.setup()
        with self._lock, self._errors():
            cursor = self._cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        if not self._ready:
            self.setup()
        with self._lock, self._errors():
            yield self._cursor()

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create or migrate the schema (idempotent)."""
        with self._lock:
            if self._ready:
                return
            with self._errors():
                cursor = self._cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    migrate(cursor, self.dialect, to_micros(self.now()))
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            self._ready = True

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._ready = False
