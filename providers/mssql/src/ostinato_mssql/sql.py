"""Every statement the SQL Server provider runs, in one reviewable place.

The provider runs exactly three kinds of SQL, all produced here:

1. the relational toolkit's statements (:class:`ostinato.relational.Statements`) rendered
   through :class:`SqlServerDialect`, which names every table in the configured schema
   (``[schema].[table]``) and places each lock hint right after its table;
   :meth:`SqlServerSql.all_statements` lists them;
2. the schema's DDL (the toolkit's migrations, rendered through the same dialect);
3. the provider's own statements, the constants below: the session settings, the
   application lock that serializes schema creation between processes, and schema creation.

``python -m ostinato_mssql.sql [schema]`` prints all of them (``statements.sql`` beside this
module is that output, checked in for review).

T-SQL choices:

* keys are ``NVARCHAR(200) COLLATE Latin1_General_100_BIN2``: case-, accent- and width-sensitive,
  ordered by code point, so ids compare exactly as in Python (except that SQL Server ignores
  trailing spaces in comparisons: ids differing only in trailing spaces collide);
* the hot path never waits for another worker's rows: claims read ``WITH (UPDLOCK, READPAST,
  ROWLOCK)`` (skip rows others hold, lock what is read), paged with ``OFFSET 0 ROWS FETCH NEXT
  ? ROWS ONLY``; the "anything claimable?" probes read ``WITH (READCOMMITTEDLOCK, READPAST)``;
* rows whose values a transaction relies on (lock checks, the reuse-id check) are read
  ``WITH (UPDLOCK, HOLDLOCK, ROWLOCK)`` (``HOLDLOCK`` also locks the key range of a missing
  row, which makes the create-if-absent check atomic);
* upserts are ``MERGE ... WITH (HOLDLOCK)`` over a multi-row ``VALUES`` source; batches stay
  under SQL Server's 2,100 parameters per request;
* savepoints are ``SAVE TRANSACTION`` / ``ROLLBACK TRANSACTION name``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from ostinato.relational import (
    ACTIVITIES,
    HISTORY,
    INBOX,
    INSTANCES,
    MIGRATIONS,
    ORCHESTRATION_QUEUE,
    SCHEMA_VERSION_TABLE,
    TABLES,
    ColumnType,
    Dialect,
    RowLock,
    Statements,
    create_table,
)

__all__ = [
    "APPLOCK",
    "CLAIM_HINT",
    "CREATE_SCHEMA",
    "KEY_COLLATION",
    "KEY_TYPE",
    "LOCK_HINT",
    "PROBE_HINT",
    "SERVER_VERSION",
    "SESSION_SETUP",
    "TABLES",
    "SqlServerDialect",
    "SqlServerSql",
    "script",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

#: Rows about to be claimed: skip rows other transactions hold, lock what is read.
CLAIM_HINT = "WITH (UPDLOCK, READPAST, ROWLOCK)"
#: An existence probe ("is anything claimable?"): never waits for rows other workers hold (a
#: held row is not claimable anyway); locking read committed even where the database uses
#: row versioning (READ_COMMITTED_SNAPSHOT), because READPAST needs it.
PROBE_HINT = "WITH (READCOMMITTEDLOCK, READPAST)"
#: Rows (or the key range of a missing row) whose values the transaction relies on.
LOCK_HINT = "WITH (UPDLOCK, HOLDLOCK, ROWLOCK)"

KEY_COLLATION = "Latin1_General_100_BIN2"
KEY_TYPE = f"NVARCHAR(200) COLLATE {KEY_COLLATION}"

# -- the provider's own statements --------------------------------------------------------
#: Run once on every new connection.
SESSION_SETUP = (
    "SET XACT_ABORT OFF; SET LOCK_TIMEOUT 30000; SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
)
#: Serializes schema creation and upgrades between processes until the transaction ends.
#: Parameter: the resource name. Returns sp_getapplock's result (>= 0: granted).
APPLOCK = (
    "SET NOCOUNT ON; DECLARE @r INT; "
    "EXEC @r = sp_getapplock @Resource = ?, @LockMode = 'Exclusive', "
    "@LockOwner = 'Transaction', @LockTimeout = 120000; SELECT @r AS result"
)
#: Creates the schema if it is missing. Parameter: the schema name.
CREATE_SCHEMA = (
    "DECLARE @s SYSNAME = ?; IF SCHEMA_ID(@s) IS NULL EXEC(N'CREATE SCHEMA ' + QUOTENAME(@s))"
)
#: The server's version (for reports).
SERVER_VERSION = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(128))"


class SqlServerDialect(Dialect):
    """T-SQL for SQL Server 2016+ / Azure SQL through pyodbc."""

    placeholder = "?"
    type_names = {
        ColumnType.IDENTITY: "BIGINT IDENTITY(1,1) PRIMARY KEY",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.INTEGER: "INT",
        ColumnType.KEY: KEY_TYPE,
        ColumnType.TEXT: "NVARCHAR(MAX)",
    }
    #: SQL Server allows 2,100 parameters per request.
    max_parameters = 2000

    def __init__(self, schema: str = "dbo") -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"not a plain SQL Server identifier: {schema!r}")
        self.schema = schema

    def table(self, name: str) -> str:
        """``[schema].[name]`` (both validated identifiers)."""
        return f"[{self.schema}].[{name}]"

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
        sql = f"SELECT {columns} FROM {table}{self.table_hint(lock)} WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit:
            if not order_by:
                sql += " ORDER BY (SELECT NULL)"
            sql += " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"
        return sql

    def table_hint(self, lock: RowLock) -> str:
        return _HINTS[lock]

    def starts_with(self, column: str) -> str:
        return f"LEFT({column}, ?) = ?"

    def upsert(
        self,
        table: str,
        key_columns: Sequence[str],
        columns: Sequence[str],
        rows: int,
        update_set: str,
    ) -> str:
        """``MERGE ... WITH (HOLDLOCK)`` with ``rows`` rows of parameters as its source."""
        assignments = update_set.format(target="target", excluded="excluded")
        on = " AND ".join(f"target.{c} = excluded.{c}" for c in key_columns)
        names = ", ".join(columns)
        values = ", ".join(f"excluded.{c}" for c in columns)
        source = f"VALUES {self.values(rows, len(columns))}"
        return (
            f"MERGE {table} WITH (HOLDLOCK) AS target USING ({source}) AS excluded ({names}) "
            f"ON {on} WHEN MATCHED THEN UPDATE SET {assignments} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values});"
        )

    def savepoint(self, name: str) -> str:
        return f"SAVE TRANSACTION {name}"

    def release_savepoint(self, name: str) -> str | None:
        return None

    def rollback_to_savepoint(self, name: str) -> str:
        return f"ROLLBACK TRANSACTION {name}"

    def is_unique_violation(self, error: BaseException) -> bool:
        cause: BaseException | None = error
        while cause is not None:
            text = str(cause)
            if "(2627)" in text or "(2601)" in text:
                return True
            cause = cause.__cause__
        return False

    def table_names_sql(self) -> str:
        # The schema name is a validated identifier.
        return (
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
            f"WHERE TABLE_SCHEMA = N'{self.schema}'"
        )


_HINTS = {
    RowLock.NONE: "",
    RowLock.PROBE: f" {PROBE_HINT}",
    RowLock.CLAIM: f" {CLAIM_HINT}",
    RowLock.HOLD: f" {LOCK_HINT}",
}


class SqlServerSql:
    """Every statement of the provider in one schema: the toolkit's, the DDL, its own."""

    def __init__(self, schema: str) -> None:
        self.dialect = SqlServerDialect(schema)
        self.schema = schema
        self.statements = Statements(self.dialect)
        #: Drops the task hub's rows (not the schema: other hubs may share it). Parameter:
        #: the hub.
        self.delete_hub_rows = tuple(
            f"DELETE FROM {self.dialect.table(table)} WHERE task_hub = ?"
            for table in (HISTORY, INBOX, ORCHESTRATION_QUEUE, ACTIVITIES, INSTANCES)
        )

    def ddl(self) -> list[str]:
        """The schema's DDL, every migration in order (as :func:`migrate` runs it)."""
        statements = [create_table(SCHEMA_VERSION_TABLE, self.dialect)]
        for migration in MIGRATIONS:
            statements.extend(migration.statements(self.dialect))
        return statements

    def all_statements(self) -> dict[str, str]:
        """Every fixed statement of the toolkit, rendered, by attribute name."""
        found: dict[str, str] = {}
        for name, value in sorted(vars(self.statements).items()):
            if callable(value):
                # Statements for n rows / n list items: shown for n = 2.
                value = value(2)
                name = f"{name} (2 rows or ids)"
            if (
                isinstance(value, str)
                and value.lstrip().split(" ", 1)[0] in _VERBS
                and not value.endswith("IN ")
            ):
                found[name] = value
        found["instance_delete_if (3 statuses)"] = self.statements.instance_delete_if(3)
        found["query (all filters)"] = self.statements.query(
            after=True,
            id_prefix=True,
            name_prefix=True,
            statuses=2,
            created_from=True,
            created_to=True,
        )
        return found


_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH"}


def script(schema: str = "ostinato") -> str:
    """Every statement, for review (what ``python -m ostinato_mssql.sql`` prints)."""
    sql = SqlServerSql(schema)
    out = [f"-- Every statement of the SQL Server provider, schema [{schema}]", ""]
    out += ["-- provider: session setup", SESSION_SETUP + ";", ""]
    out += ["-- provider: schema creation lock (parameter: resource)", APPLOCK + ";", ""]
    out += ["-- provider: create schema (parameter: schema)", CREATE_SCHEMA + ";", ""]
    out += ["-- provider: server version", SERVER_VERSION + ";", ""]
    out += ["-- provider: delete a task hub's rows (parameter: hub)"]
    out += [s + ";" for s in sql.delete_hub_rows] + [""]
    out += ["-- schema (toolkit migrations)"]
    out += [s + ";" for s in sql.ddl()] + [""]
    for name, statement in sql.all_statements().items():
        out += [f"-- toolkit: {name}", statement + ("" if statement.endswith(";") else ";"), ""]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(script(*sys.argv[1:2]))
