"""The SQLite provider, ostinato's embedded default (see :class:`SqliteProvider`)."""

from ostinato.sqlite.provider import SYNCHRONOUS_MODES, SqliteDialect, SqliteProvider

__all__ = ["SYNCHRONOUS_MODES", "SqliteDialect", "SqliteProvider"]
