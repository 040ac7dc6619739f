"""Forward migrations: bring a database's schema up to the latest version."""

from __future__ import annotations

from ostinato.errors import ConfigurationError
from ostinato.relational.connection import Cursor
from ostinato.relational.dialect import Dialect
from ostinato.relational.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    SCHEMA_TABLE,
    SCHEMA_VERSION_TABLE,
    create_table,
)

__all__ = ["current_version", "migrate", "table_names"]


def table_names(cursor: Cursor, dialect: Dialect) -> set[str]:
    """The (lower-cased) names of the database's tables."""
    cursor.execute(dialect.table_names_sql())
    return {str(row[0]).lower() for row in cursor.fetchall()}


def current_version(cursor: Cursor, dialect: Dialect) -> int | None:
    """The schema version of the database, or ``None`` if it has no ostinato schema."""
    if SCHEMA_TABLE not in table_names(cursor, dialect):
        return None
    cursor.execute(f"SELECT MAX(version) FROM {dialect.table(SCHEMA_TABLE)}")
    rows = cursor.fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def migrate(cursor: Cursor, dialect: Dialect, now_micros: int) -> int:
    """Apply every migration newer than the database's version; return the new version.

    Call it inside a write transaction so that concurrent callers serialize and a failed
    migration leaves nothing behind. Raises ``ConfigurationError`` if the database was written
    by a newer ostinato.
    """
    version = current_version(cursor, dialect)
    if version is None:
        cursor.execute(create_table(SCHEMA_VERSION_TABLE, dialect))
        version = 0
    if version > LATEST_VERSION:
        raise ConfigurationError(
            f"The database has ostinato schema version {version}, newer than this ostinato "
            f"understands ({LATEST_VERSION}); upgrade ostinato"
        )
    p = dialect.placeholder
    insert = (
        f"INSERT INTO {dialect.table(SCHEMA_TABLE)} (version, description, applied_at) "
        f"VALUES ({p}, {p}, {p})"
    )
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        for statement in migration.statements(dialect):
            cursor.execute(statement)
        cursor.execute(insert, (migration.version, migration.description, now_micros))
        version = migration.version
    return version
