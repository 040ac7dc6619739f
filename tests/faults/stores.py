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


def corrupt_history(spec: dict[str, Any], instance_id: str, text: str) -> int:
    """Overwrite the stored history of ``instance_id`` with ``text``, past the provider (as a
    bug or a bad disk would); returns the rows changed."""
    if spec["kind"] == "azure":
        from ostinato_azure import testing

        return testing.corrupt_history(
            spec["connection_string"], spec["task_hub"], instance_id, text
        )
    statement = "UPDATE ostinato_history SET event = ? WHERE instance_id = ?"
    return raw_execute(spec, statement, text, instance_id)


def corrupt_activity_input(spec: dict[str, Any], instance_id: str, text: str) -> int:
    """Set the stored input of the queued activity tasks of ``instance_id`` to ``text``,
    past the provider; returns the tasks changed."""
    if spec["kind"] == "azure":
        from ostinato_azure import testing

        return testing.corrupt_activity_input(
            spec["connection_string"], spec["task_hub"], instance_id, text
        )
    statement = "UPDATE ostinato_activities SET input = ? WHERE instance_id = ?"
    return raw_execute(spec, statement, text, instance_id)


def raw_execute(spec: dict[str, Any], statement: str, *params: Any) -> int:
    """Run one SQL statement on the store's database, past the provider (to corrupt a
    record as a bug or a bad disk would); ``?`` placeholders. Returns the rows changed.
    Azure has no SQL: the test is skipped there (``tests/azure`` corrupts its control queue
    messages; :func:`corrupt_history` and :func:`corrupt_activity_input` work on Azure too)."""
    if spec["kind"] == "azure":
        import pytest

        pytest.skip("corrupting an inbox row by SQL: tests/azure corrupts Azure's messages")
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
