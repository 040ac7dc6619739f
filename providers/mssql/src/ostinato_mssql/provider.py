"""The SQL Server provider: the relational toolkit in T-SQL over pyodbc.

Every statement it runs is in :mod:`ostinato_mssql.sql`. This module adds connections and
error handling:

* ``pyodbc`` is imported lazily, so the package installs and imports on machines without the
  unixODBC driver manager; the first connection then explains what is missing;
* a small pool of ODBC connections (``autocommit`` off: every call is one transaction);
* several task hubs share one schema, isolated by the ``task_hub`` key column; the schema name
  is configurable (``schema``), so several applications can share a database too;
* schema creation and versioned upgrades run under ``sp_getapplock`` in one transaction, so
  any number of workers may start at once;
* deadlock victims (1205), lock timeouts (1222) and Azure SQL's transient errors are retried
  with jittered exponential back-off: the server rolled the transaction back, so running it
  again is safe. Other errors become :class:`~ostinato.errors.ProviderError`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ostinato.errors import ConfigurationError, OstinatoError, ProviderError
from ostinato.provider import ProviderCapabilities
from ostinato.relational import (
    Cursor,
    RelationalProvider,
    RetriesTransientErrors,
    Transaction,
    TransientDatabaseError,
    migrate,
    to_micros,
)

from ostinato_mssql import sql as statements

__all__ = ["TRANSIENT_ERRORS", "SqlServerProvider", "TransientDatabaseError", "import_pyodbc"]

log = logging.getLogger("ostinato.mssql")

#: SQL Server error numbers after which the transaction was rolled back and may run again:
#: deadlock victim, lock timeout, and Azure SQL's documented transient errors.
TRANSIENT_ERRORS = frozenset(
    {1205, 1222, 40197, 40501, 40613, 49918, 49919, 49920, 10928, 10929, 4221}
)
_NATIVE_ERROR = re.compile(r"\((\d{3,5})\)")


def import_pyodbc() -> Any:
    """``pyodbc``, or a :class:`ConfigurationError` saying what to install."""
    try:
        import pyodbc  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ConfigurationError(
            f"The SQL Server provider needs pyodbc and the unixODBC driver manager ({exc}). "
            "Install them (Debian: apt-get install unixodbc; pip install pyodbc) and an ODBC "
            "driver for SQL Server: Microsoft ODBC Driver 18 (msodbcsql18) or FreeTDS (tdsodbc)"
        ) from exc
    return pyodbc


class _OdbcCursor:
    """A pyodbc cursor with DB-API parameter passing (pyodbc takes parameters spread out)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self._cursor.execute(sql, *parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        return self._cursor.executemany(sql, list(seq_of_parameters))

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


def server_of(connection_string: str) -> str:
    """Where an ODBC connection string points, without credentials: ``server/database``."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("{}")
    server = fields.get("server") or fields.get("address") or fields.get("addr") or "?"
    database = fields.get("database") or fields.get("initial catalog")
    return server + (f"/{database}" if database else "")


class SqlServerProvider(RetriesTransientErrors, RelationalProvider):
    """Stores task hubs in a SQL Server (2016+) or Azure SQL database.

    :param connection_string: an ODBC connection string naming the driver, e.g.
        ``Driver={ODBC Driver 18 for SQL Server};Server=localhost,1433;Database=ostinato;
        UID=sa;PWD=...;TrustServerCertificate=yes`` or, with FreeTDS,
        ``Driver={FreeTDS};Server=localhost;Port=1433;Database=ostinato;UID=sa;PWD=...;
        TDS_Version=7.4``; from config: ``OSTINATO_MSSQL_CONNECTION_STRING``.
    :param task_hub: the task hub's name (several share a schema, isolated).
    :param schema: the database schema of ostinato's tables (created if missing).
    :param pool_size: the most idle connections kept open.
    :param max_retries: how often a transaction rolled back by a deadlock or a transient
        error is run again before the error is raised.
    """

    retry_delay = 0.01
    retry_max_delay = 2.0
    capabilities = ProviderCapabilities(
        transactional_checkpoints=True,
        # NVARCHAR(MAX) holds 2 GB; stay well clear of it.
        max_payload_bytes=256 * 1024 * 1024,
        multi_process=True,
        lock_expiry=True,
        eager_activities=True,
        eager_orchestrations=True,
        eager_steps=True,
    )

    def __init__(
        self,
        connection_string: str = "",
        *,
        task_hub: str = "default",
        schema: str = "ostinato",
        pool_size: int = 10,
        max_retries: int = 8,
    ) -> None:
        if not isinstance(connection_string, str) or not connection_string.strip():
            raise ConfigurationError(
                "SQL Server setting 'connection_string' is required: an ODBC connection "
                "string naming the driver (OSTINATO_MSSQL_CONNECTION_STRING)"
            )
        if not isinstance(task_hub, str) or not 0 < len(task_hub) <= 100:
            raise ConfigurationError("SQL Server setting 'task_hub' must be 1-100 characters")
        try:
            sql = statements.SqlServerSql(schema)
        except ValueError as exc:
            raise ConfigurationError(f"SQL Server setting 'schema': {exc}") from exc
        super().__init__(sql.dialect, task_hub)
        self.connection_string = connection_string
        self.schema = schema
        self.sql = sql
        self.pool_size = pool_size
        self.max_retries = max(0, max_retries)
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return (
            f"SqlServerProvider({server_of(self.connection_string)!r}, schema={self.schema!r},"
            f" task_hub={self.task_hub!r})"
        )

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> Any:
        pyodbc = import_pyodbc()
        with self._errors():
            connection = pyodbc.connect(self.connection_string, autocommit=False)
            cursor = connection.cursor()
            cursor.execute(statements.SESSION_SETUP)
            connection.commit()
        return connection

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._guard:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
        healthy = False
        try:
            yield connection
            healthy = True
        except OstinatoError as exc:
            # An answer in ostinato's terms (InstanceAlreadyExistsError, ...) leaves the
            # connection as good as it was; a driver error may not.
            healthy = not isinstance(exc, ProviderError)
            raise
        finally:
            if healthy:
                with self._guard:
                    if len(self._idle) < self.pool_size:
                        self._idle.append(connection)
                        connection = None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_OdbcCursor]:
        with self._connection() as connection:
            try:
                with self._errors():
                    cursor = _OdbcCursor(connection.cursor())
                    yield cursor
                    connection.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    connection.rollback()
                raise

    @contextlib.contextmanager
    def transaction(self, durable: bool) -> Iterator[Transaction]:
        """A transaction on a pooled connection (SQL Server commits are always durable)."""
        if not self._ready:
            self.setup()
        with self._transaction() as cursor:
            yield Transaction(cursor)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """Reads run in a (read committed) transaction of their own."""
        if not self._ready:
            self.setup()
        with self._transaction() as cursor:
            yield cursor

    def close(self) -> None:
        """Close the idle connections (a later call reopens)."""
        with self._guard:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()

    # -- errors ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map pyodbc errors (the driver error stays as ``__cause__``)."""
        try:
            yield
        except ProviderError:
            raise
        except Exception as exc:
            if type(exc).__module__ != "pyodbc":
                raise
            raise self._map_error(exc) from exc

    def _map_error(self, exc: Exception) -> Exception:
        text = " ".join(str(a) for a in exc.args)
        numbers = {int(n) for n in _NATIVE_ERROR.findall(text)}
        if numbers & TRANSIENT_ERRORS or "40001" in text[:10]:
            return TransientDatabaseError(f"SQL Server rolled back a transaction: {text}")
        if text.startswith("08") or "(SQLDriverConnect)" in text:
            if "Can't open lib" in text or "IM002" in text or "file not found" in text:
                return ConfigurationError(
                    f"The ODBC driver named in the connection string is not installed: {text}"
                )
            return ProviderError(f"Cannot connect to SQL Server: {text}")
        if "IM002" in text or "Can't open lib" in text or "file not found" in text:
            return ConfigurationError(
                f"The ODBC driver named in the connection string is not installed: {text}"
            )
        return ProviderError(f"SQL Server error: {text}")

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create or upgrade the schema under an application lock (idempotent, concurrent-safe)."""
        with self._guard:
            if self._ready:
                return
        with self._transaction() as cursor:
            cursor.execute(statements.APPLOCK, (f"ostinato:schema:{self.schema}",))
            row = cursor.fetchone()
            if row is None or int(row[0]) < 0:
                raise ProviderError(
                    f"Could not take the schema lock for [{self.schema}] (sp_getapplock "
                    f"returned {None if row is None else row[0]})"
                )
            cursor.execute(statements.CREATE_SCHEMA, (self.schema,))
            migrate(cursor, self.dialect, to_micros(self.now()))
        self._ready = True

    def delete_task_hub(self) -> None:
        """Delete every row of this task hub (other hubs in the schema are untouched)."""
        with self._transaction() as cursor:
            for statement in self.sql.delete_hub_rows:
                cursor.execute(statement, (self.task_hub,))

    def server_version(self) -> str:
        with self._transaction() as cursor:
            cursor.execute(statements.SERVER_VERSION)
            row = cursor.fetchone()
        return str(row[0]) if row else "unknown"
