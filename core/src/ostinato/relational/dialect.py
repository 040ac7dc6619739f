"""The dialect seam: the few pieces of SQL that differ between database engines.

The relational toolkit writes every statement once (see :mod:`ostinato.relational.statements`)
and asks the dialect only for what engines spell differently:

* the parameter placeholder (``?`` for sqlite3/pyodbc, ``%s`` for psycopg);
* column type names, and how an auto-numbered primary key and a clustered table are declared;
* how a table is named (:meth:`Dialect.table`: SQL Server qualifies it with the configured
  schema, ``[schema].[table]``);
* ``LIMIT n`` versus ``OFFSET ... FETCH``, and row-lock hints for each :class:`RowLock`, placed
  where the engine wants them: after the table (:meth:`Dialect.table_hint`, SQL Server's
  ``WITH (UPDLOCK, READPAST, ROWLOCK)``) or at the end of the SELECT
  (:meth:`Dialect.lock_clause`, PostgreSQL's ``FOR UPDATE SKIP LOCKED``); nothing for SQLite,
  whose write transactions are already exclusive;
* an upsert (``INSERT ... ON CONFLICT DO UPDATE`` versus ``MERGE``);
* multi-row ``VALUES`` and the parameter limit (SQLite before 3.32: 999; SQL Server: 2,100),
  so a group commit is a handful of statements whatever its size;
* savepoint statements, and how to recognise a unique-key violation from the driver.

A provider for a new engine subclasses :class:`Dialect`, overrides what differs, and
implements the connection hooks of :class:`~ostinato.relational.provider.RelationalProvider`;
the schema, the statements and the contract logic are shared.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

__all__ = ["ColumnType", "Dialect", "RowLock"]


class ColumnType(enum.Enum):
    """Engine-neutral column types of the toolkit's schema."""

    #: An auto-numbered 64-bit integer primary key (insertion order).
    IDENTITY = "identity"
    #: A 64-bit integer (timestamps are microseconds since the Unix epoch, UTC).
    BIGINT = "bigint"
    #: A 32-bit integer.
    INTEGER = "integer"
    #: A short string that takes part in keys and indexes (task hub, instance id, names).
    KEY = "key"
    #: An unbounded string (payloads, serialized events).
    TEXT = "text"


class RowLock(enum.Enum):
    """What a SELECT inside a write transaction does to the rows it reads."""

    #: A plain read.
    NONE = "none"
    #: "Is anything there?": never wait for rows other transactions hold.
    PROBE = "probe"
    #: Rows about to be claimed by this transaction: skip rows others hold, lock what is read.
    CLAIM = "claim"
    #: Rows (or the key range of a missing row) whose values this transaction relies on.
    HOLD = "hold"


class Dialect:
    """The defaults here are standard SQL as SQLite and PostgreSQL accept it."""

    #: The driver's placeholder for one positional parameter.
    placeholder: str = "?"
    #: Type names for each :class:`ColumnType`.
    type_names: dict[ColumnType, str] = {
        ColumnType.IDENTITY: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.KEY: "TEXT",
        ColumnType.TEXT: "TEXT",
    }
    #: The most parameters one statement may carry.
    max_parameters: int = 999

    # -- names ----------------------------------------------------------------------------
    def table(self, name: str) -> str:
        """How statements name the toolkit's table ``name`` (default: as is).

        Every statement names its tables through this. Column qualifiers (``table.column``)
        keep the bare name, which every engine accepts for a schema-qualified table too.
        """
        return name

    # -- DDL ------------------------------------------------------------------------------
    def column_type(self, column_type: ColumnType) -> str:
        return self.type_names[column_type]

    def table_suffix(self, clustered: bool) -> str:
        """Text after ``CREATE TABLE name (...)``; ``clustered`` asks for key-ordered storage."""
        return ""

    # -- queries --------------------------------------------------------------------------
    def params(self, count: int) -> str:
        """``count`` placeholders separated by commas (for ``IN (...)`` and ``VALUES (...)``)."""
        return ", ".join([self.placeholder] * count)

    def select(
        self,
        columns: str,
        table: str,
        where: str,
        *,
        order_by: str | None = None,
        limit: bool = False,
        lock: RowLock = RowLock.NONE,
    ) -> str:
        """A SELECT from ``table`` (as :meth:`table` renders it); with ``limit`` the last
        parameter is the row count; ``lock`` places the engine's hints for it."""
        sql = f"SELECT {columns} FROM {table}{self.table_hint(lock)} WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit:
            sql += f" LIMIT {self.placeholder}"
        return sql + self.lock_clause(lock)

    def table_hint(self, lock: RowLock) -> str:
        """Text right after the table of a SELECT with ``lock`` (SQL Server's ``WITH (...)``)."""
        return ""

    def lock_clause(self, lock: RowLock) -> str:
        """Text at the end of a SELECT with ``lock`` (PostgreSQL's ``FOR UPDATE``)."""
        return ""

    def starts_with(self, column: str) -> str:
        """A condition that ``column`` starts with a prefix: parameters (length in characters,
        prefix). Case- and accent-sensitive."""
        p = self.placeholder
        return f"SUBSTR({column}, 1, {p}) = {p}"

    def values(self, rows: int, columns: int) -> str:
        """``rows`` row constructors of ``columns`` placeholders: ``(?, ?), (?, ?)``."""
        row = f"({self.params(columns)})"
        return ", ".join([row] * rows)

    def insert(self, table: str, columns: Sequence[str], rows: int) -> str:
        """A multi-row INSERT of ``rows`` rows (parameters row by row)."""
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {self.values(rows, len(columns))}"
        )

    def upsert(
        self,
        table: str,
        key_columns: Sequence[str],
        columns: Sequence[str],
        rows: int,
        update_set: str,
    ) -> str:
        """Insert ``rows`` rows of ``columns`` (parameters row by row, keys distinct); on a
        key conflict apply ``update_set`` to the existing row instead.

        ``update_set`` is a SET list in which ``{target}`` qualifies the existing row's
        columns and ``{excluded}`` the proposed row's (SQL Server overrides this with MERGE).
        """
        assignments = update_set.format(target=table, excluded="excluded")
        return (
            f"{self.insert(table, columns, rows)} "
            f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {assignments}"
        )

    # -- transactions ---------------------------------------------------------------------
    def savepoint(self, name: str) -> str:
        return f"SAVEPOINT {name}"

    def release_savepoint(self, name: str) -> str | None:
        """The statement that releases a savepoint (``None`` where there is none)."""
        return f"RELEASE SAVEPOINT {name}"

    def rollback_to_savepoint(self, name: str) -> str:
        return f"ROLLBACK TO SAVEPOINT {name}"

    def is_unique_violation(self, error: BaseException) -> bool:
        """True if ``error`` (raised by the driver) is a primary-key or unique violation."""
        return False

    def table_names_sql(self) -> str:
        """A query (no parameters) listing the names of the database's tables."""
        return "SELECT table_name FROM information_schema.tables"
