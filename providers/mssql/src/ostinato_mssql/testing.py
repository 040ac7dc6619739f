"""Helpers for tests and benchmarks against a SQL Server named by the environment."""

from __future__ import annotations

import os
import uuid

from ostinato_mssql.provider import SqlServerProvider

ENV_CONNECTION_STRING = "OSTINATO_MSSQL_CONNECTION_STRING"


def benchmark_provider(_tmp_dir: object = None) -> SqlServerProvider:
    """A provider on a fresh task hub for the benchmark harness (``benchmarks/run.py``).

    Only when ``OSTINATO_MSSQL_CONNECTION_STRING`` is set; otherwise raises ``ImportError``
    (the harness then skips the row). The hub's rows are deleted when it is closed.
    """
    connection_string = os.environ.get(ENV_CONNECTION_STRING, "").strip()
    if not connection_string:
        raise ImportError(f"{ENV_CONNECTION_STRING} is not set: no SQL Server to benchmark")
    return _BenchmarkProvider(
        connection_string, task_hub=f"bench_{uuid.uuid4().hex[:10]}", schema="ostinato_bench"
    )


class _BenchmarkProvider(SqlServerProvider):
    """A provider whose task hub's rows are deleted on :meth:`close`."""

    def close(self) -> None:
        if self._ready:
            self.delete_task_hub()
        super().close()
