"""The relational toolkit's and the SQLite provider's public names, pinned.

A change to any ``__all__`` here is a deliberate change of the extension API that provider
packages build on (docs/custom-provider.md, "Writing a relational provider").
"""

from __future__ import annotations

import importlib
import pkgutil

import ostinato.relational
import pytest

PUBLIC: dict[str, list[str]] = {
    "ostinato.relational": [
        "ACTIVITIES",
        "ACTIVITY_CLAIMED_INSERT_COLUMNS",
        "ACTIVITY_INSERT_COLUMNS",
        "BacklogStatements",
        "BatchOutcome",
        "CallGroup",
        "Column",
        "ColumnType",
        "CreateRequest",
        "Cursor",
        "DEAD_LETTERS",
        "Dialect",
        "HISTORY",
        "HISTORY_COLUMNS",
        "INBOX",
        "INBOX_COLUMNS",
        "INSTANCES",
        "INSTANCE_COLUMNS",
        "INSTANCE_ROW_COLUMNS",
        "Index",
        "LATEST_VERSION",
        "LEASES",
        "LeaseStatements",
        "MAX_ROWS",
        "MIGRATIONS",
        "Migration",
        "ORCHESTRATION_QUEUE",
        "QUEUE_COLUMNS",
        "RelationalProvider",
        "RetriesTransientErrors",
        "RowLock",
        "SCHEMA_TABLE",
        "SCHEMA_VERSION_TABLE",
        "Script",
        "Statements",
        "TABLES",
        "Table",
        "Transaction",
        "TransferStatements",
        "TransientDatabaseError",
        "chunk_sizes",
        "create_index",
        "create_table",
        "current_version",
        "from_micros",
        "instance_record",
        "instance_row",
        "largest_chunk",
        "migrate",
        "render",
        "table_names",
        "to_micros",
    ],
    "ostinato.relational.connection": [
        "Cursor",
        "Transaction",
    ],
    "ostinato.relational.dialect": [
        "ColumnType",
        "Dialect",
        "RowLock",
    ],
    "ostinato.relational.grouping": [
        "CallGroup",
    ],
    "ostinato.relational.leases": ["LeaseStatements"],
    "ostinato.relational.migrations": [
        "current_version",
        "migrate",
        "table_names",
    ],
    "ostinato.relational.provider": [
        "BatchOutcome",
        "CreateRequest",
        "RelationalProvider",
        "Script",
    ],
    "ostinato.relational.retry": [
        "RetriesTransientErrors",
        "TransientDatabaseError",
    ],
    "ostinato.relational.rows": [
        "from_micros",
        "instance_record",
        "instance_row",
        "to_micros",
    ],
    "ostinato.relational.schema": [
        "ACTIVITIES",
        "Column",
        "DEAD_LETTERS",
        "HISTORY",
        "INBOX",
        "INSTANCES",
        "INSTANCE_COLUMNS",
        "Index",
        "LATEST_VERSION",
        "LEASES",
        "MIGRATIONS",
        "Migration",
        "ORCHESTRATION_QUEUE",
        "SCHEMA_TABLE",
        "SCHEMA_VERSION_TABLE",
        "TABLES",
        "Table",
        "create_index",
        "create_table",
        "render",
    ],
    "ostinato.relational.statements": [
        "ACTIVITY_CLAIMED_INSERT_COLUMNS",
        "ACTIVITY_INSERT_COLUMNS",
        "HISTORY_COLUMNS",
        "INBOX_COLUMNS",
        "INSTANCE_ROW_COLUMNS",
        "MAX_ROWS",
        "QUEUE_COLUMNS",
        "Statements",
        "chunk_sizes",
        "largest_chunk",
    ],
    "ostinato.relational.transfer": ["BacklogStatements", "TransferStatements"],
    "ostinato.sqlite": [
        "SYNCHRONOUS_MODES",
        "SqliteDialect",
        "SqliteProvider",
    ],
    "ostinato.sqlite.provider": [
        "SYNCHRONOUS_MODES",
        "SqliteDialect",
        "SqliteProvider",
    ],
    "ostinato.sqlite.write_lock": [
        "FIRST_RETRY",
        "LAST_RETRY",
        "LOCK_SUFFIX",
        "WriteLock",
    ],
}


def _modules(package: str) -> list[str]:
    path = importlib.import_module(package).__path__
    return [package] + [f"{package}.{info.name}" for info in pkgutil.iter_modules(path)]


def test_every_module_is_pinned() -> None:
    modules = _modules("ostinato.relational") + _modules("ostinato.sqlite")
    assert sorted(m for m in modules if not m.endswith("__main__")) == sorted(PUBLIC)


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == PUBLIC[module]


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_exported_name_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    assert [name for name in loaded.__all__ if not hasattr(loaded, name)] == []


def test_the_package_re_exports_every_module_s_names() -> None:
    exported = {
        name: getattr(loaded, name)
        for module in _modules("ostinato.relational")[1:]
        for loaded in [importlib.import_module(module)]
        for name in loaded.__all__
    }
    assert sorted(exported) == sorted(ostinato.relational.__all__)
    assert [n for n, v in exported.items() if getattr(ostinato.relational, n) is not v] == []
