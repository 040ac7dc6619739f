"""Opening a test store from a JSON-able spec, in the test process and in worker processes."""

from __future__ import annotations

from typing import Any

import ostinato as ot
from ostinato.sqlite import SqliteProvider


def open_store(spec: dict[str, Any], **settings: Any) -> ot.StorageProvider:
    """A set-up provider for ``spec``: ``{"kind": "sqlite", "path": ...}``,
    ``{"kind": "postgres", "dsn": ..., "task_hub": ...}`` or
    ``{"kind": "azure", "connection_string": ..., "task_hub": ...}`` (3 s partition leases,
    so a killed worker's control queues move quickly)."""
    provider: ot.StorageProvider
    if spec["kind"] == "azure":
        from ostinato_azure import AzureStorageProvider

        settings.setdefault("lease_duration", 3.0)
        provider = AzureStorageProvider(
            spec["connection_string"], task_hub=spec["task_hub"], **settings
        )
    elif spec["kind"] == "postgres":
        from ostinato_postgres import PostgresProvider

        provider = PostgresProvider(spec["dsn"], task_hub=spec["task_hub"], **settings)
    else:
        provider = SqliteProvider(spec["path"], synchronous="NORMAL", **settings)
    provider.setup()
    return provider


def raw_execute(spec: dict[str, Any], statement: str, *params: Any) -> int:
    """Run one SQL statement on the store's database, past the provider (to corrupt a
    record as a bug or a bad disk would); ``?`` placeholders. Returns the rows changed.
    Azure has no SQL: the test is skipped there (``tests/azure`` corrupts its records)."""
    if spec["kind"] == "azure":
        import pytest

        pytest.skip("corrupting a record by SQL: Azure's own tests cover its dead letters")
    if spec["kind"] == "postgres":
        import psycopg
        from psycopg import sql

        schema = f"ostinato_{spec['task_hub']}".lower()
        with psycopg.connect(spec["dsn"], autocommit=True) as connection:
            connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            cursor = connection.execute(statement.replace("?", "%s"), params)
            return cursor.rowcount
    import sqlite3

    with sqlite3.connect(spec["path"], timeout=30) as connection:
        return connection.execute(statement, params).rowcount
