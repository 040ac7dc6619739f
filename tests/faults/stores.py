"""Opening a test store from a JSON-able spec, in the test process and in worker processes."""

from __future__ import annotations

from typing import Any

import ostinato as ot
from ostinato.sqlite import SqliteProvider


def open_store(spec: dict[str, Any], **settings: Any) -> ot.StorageProvider:
    """A set-up provider for ``spec``: ``{"kind": "sqlite", "path": ...}`` or
    ``{"kind": "postgres", "dsn": ..., "task_hub": ...}``."""
    provider: ot.StorageProvider
    if spec["kind"] == "postgres":
        from ostinato_postgres import PostgresProvider

        provider = PostgresProvider(spec["dsn"], task_hub=spec["task_hub"], **settings)
    else:
        provider = SqliteProvider(spec["path"], synchronous="NORMAL", **settings)
    provider.setup()
    return provider
