"""Fixtures for the fault tests: every test runs on real stores, SQLite files and a
PostgreSQL server started by the tests (skipped, with the reason, where none can start)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.sqlite import SqliteProvider

_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()

#: ``make_store(**settings)``: a new, set-up provider of the test's kind (same kind on
#: every call, separate task hubs unless ``task_hub`` is given).
StoreFactory = Callable[..., ot.StorageProvider]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    try:
        from ostinato_postgres.testing import PostgresUnavailable, start_server
    except ImportError as exc:
        pytest.skip(f"ostinato-postgres is not importable: {exc}")
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


def new_hub() -> str:
    return f"f{_RUN}_{next(_COUNTER)}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    made: list[ot.StorageProvider] = []
    dsn = request.getfixturevalue("postgres_dsn") if store_kind == "postgres" else None
    hub = new_hub()

    def factory(**settings: Any) -> ot.StorageProvider:
        provider: ot.StorageProvider
        if dsn is not None:
            from ostinato_postgres import PostgresProvider

            provider = PostgresProvider(dsn, task_hub=settings.pop("task_hub", hub), **settings)
        else:
            provider = SqliteProvider(tmp_path / "store.db", synchronous="NORMAL", **settings)
        provider.setup()
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.close()
    if dsn is not None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True) as connection:
            for schema in sorted({p.schema for p in made}):  # type: ignore[attr-defined]
                connection.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


@pytest.fixture
def store(make_store: StoreFactory) -> ot.StorageProvider:
    return make_store()


@pytest.fixture
def client(store: ot.StorageProvider) -> ot.Client:
    return ot.Client(store)


WorkerFactory = Callable[..., AbstractContextManager[ot.Worker]]


@pytest.fixture
def worker(store: ot.StorageProvider) -> WorkerFactory:
    """``with worker(app, **options):`` runs a real worker on the test's store."""

    @contextmanager
    def run(app: ot.App, **options: Any) -> Iterator[ot.Worker]:
        options.setdefault("max_poll_interval", 0.05)
        with ot.Worker(app, options.pop("provider", store), **options) as w:
            yield w

    return run
