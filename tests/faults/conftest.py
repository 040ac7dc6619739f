"""Fixtures for the fault tests: every test runs on real stores, SQLite files, the session's
PostgreSQL server (``postgres_dsn``, from ``tests/conftest.py``) and Azurite started by the
tests (skipped, with the reason, where none can start)."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest

from .stores import open_store

_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()

#: ``make_store(**settings)``: a new, set-up provider of the test's kind (same kind on
#: every call, separate task hubs unless ``task_hub`` is given).
StoreFactory = Callable[..., ot.StorageProvider]


def new_hub() -> str:
    return f"f{_RUN}_{next(_COUNTER)}"


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """An in-memory Azurite for the session (from the pinned npm package in ``azurite/``)."""
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "azurite"))
    from start import Azurite, AzuriteUnavailable, missing_tools

    reason = missing_tools()
    if reason:
        pytest.skip(f"Azurite cannot run: {reason}")
    azurite = Azurite()
    try:
        azurite.start()
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite cannot run: {exc}")
    try:
        yield azurite.connection_string
    finally:
        azurite.stop()


@pytest.fixture(params=["sqlite", "postgres", "azure"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_spec(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where the test's store is (see :func:`stores.open_store`), for worker processes too."""
    if store_kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return {"kind": "postgres", "dsn": dsn, "task_hub": new_hub()}
    if store_kind == "azure":
        connection_string = request.getfixturevalue("azurite_connection_string")
        hub = new_hub().replace("_", "x")  # Azure task hubs: letters and digits
        return {"kind": "azure", "connection_string": connection_string, "task_hub": hub}
    return {"kind": "sqlite", "path": str(tmp_path / "store.db")}


@pytest.fixture
def make_store(store_spec: dict[str, Any]) -> Iterator[StoreFactory]:
    made: list[ot.StorageProvider] = []

    def factory(**settings: Any) -> ot.StorageProvider:
        provider = open_store(store_spec, **settings)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.close()
    if store_spec["kind"] == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(store_spec["dsn"], autocommit=True) as connection:
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
