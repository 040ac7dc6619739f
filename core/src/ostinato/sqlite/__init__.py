"""The SQLite provider, ostinato's embedded default (see :class:`SqliteProvider`)."""

from ostinato.sqlite.provider import SqliteDialect, SqliteProvider

__all__ = ["SqliteDialect", "SqliteProvider"]
