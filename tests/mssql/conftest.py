"""A SQL Server for the SQL Server provider's tests, when one is reachable.

Set ``OSTINATO_MSSQL_CONNECTION_STRING`` to an ODBC connection string naming the driver (see
docs/sql-server.md for running SQL Server in Docker). Without it, or when the driver manager,
the driver or the server is missing, every test that needs a server is reported skipped with
the reason, never passed. ``OSTINATO_MSSQL_REQUIRED=1`` (set by the CI workflow) turns an
unreachable server into an error instead of a skip.

Each test gets its own task hub in the schema ``ostinato_test``; its rows are deleted after.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ostinato.errors import OstinatoError
from ostinato_mssql import SqlServerProvider, import_pyodbc

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

ENV = "OSTINATO_MSSQL_CONNECTION_STRING"
SCHEMA = "ostinato_test"
_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()
#: PostgreSQL-only settings the shared tests pass; SQL Server's equivalents or nothing.
_RENAMED = {"pool_max_size": "pool_size"}
_IGNORED = {"listen"}

ProviderFactory = Callable[..., SqlServerProvider]


def new_hub() -> str:
    return f"t{_RUN}_{next(_COUNTER)}"


@pytest.fixture(scope="session")
def mssql_connection_string() -> str:
    """The connection string of a reachable SQL Server, or skip with the reason."""
    connection_string = os.environ.get(ENV, "").strip()
    required = os.environ.get("OSTINATO_MSSQL_REQUIRED") == "1"
    if not connection_string:
        if required:
            pytest.fail(f"OSTINATO_MSSQL_REQUIRED=1 but {ENV} is not set")
        pytest.skip(
            f"SQL Server suite (tests/mssql): {ENV} is not set, so there is no SQL Server "
            "to run against (see docs/sql-server.md)"
        )
    try:
        import_pyodbc()
        probe = SqlServerProvider(connection_string, task_hub="probe", schema=SCHEMA)
        version = probe.server_version()
        probe.close()
    except OstinatoError as exc:
        if required:
            raise
        pytest.skip(f"{ENV} is set but does not reach a SQL Server: {exc}")
    print(f"SQL Server {version}")
    return connection_string


@pytest.fixture
def make_provider(mssql_connection_string: str) -> Iterator[ProviderFactory]:
    """``make_provider(task_hub=None, **settings)``: providers on fresh hubs, cleaned up."""
    made: list[SqlServerProvider] = []

    def factory(task_hub: str | None = None, **settings: Any) -> SqlServerProvider:
        options = {_RENAMED.get(k, k): v for k, v in settings.items() if k not in _IGNORED}
        options.setdefault("schema", SCHEMA)
        provider = SqlServerProvider(
            mssql_connection_string, task_hub=task_hub or new_hub(), **options
        )
        made.append(provider)
        return provider

    yield factory
    hubs = {}
    for provider in made:
        hubs.setdefault((provider.schema, provider.task_hub), provider)
        provider.close()
    for provider in hubs.values():
        provider.delete_task_hub()
        provider.close()


@pytest.fixture
def provider(make_provider: ProviderFactory) -> SqlServerProvider:
    p = make_provider()
    p.setup()
    return p
