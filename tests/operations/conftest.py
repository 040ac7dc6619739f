"""Real back ends for the operations tests (transfer, retention): SQLite files, and the
session's PostgreSQL server and Azurite (``tests/conftest.py``: reported skipped, with the
reason, where one cannot run)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ostinato.provider import StorageProvider
from ostinato.sqlite import SqliteProvider

ROOT = Path(__file__).resolve().parents[2]
_RUN = uuid.uuid4().hex[:6]
_COUNTER = itertools.count()

Factory = Callable[..., StorageProvider]


def _hub() -> str:
    return f"t{_RUN}x{next(_COUNTER)}"


@pytest.fixture
def make_sqlite(tmp_path: Path) -> Iterator[Callable[..., SqliteProvider]]:
    """``make_sqlite(name)``: a set-up SQLite provider on a file in ``tmp_path``."""
    made: list[SqliteProvider] = []

    def make(name: str = "hub", **settings: Any) -> SqliteProvider:
        settings.setdefault("synchronous", "NORMAL")
        provider = SqliteProvider(tmp_path / f"{name}.db", **settings)
        provider.setup()
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def make_postgres(postgres_dsn: str) -> Iterator[Factory]:
    """``make_postgres()``: a set-up PostgreSQL provider on a fresh task hub, dropped after."""
    from ostinato_postgres import PostgresProvider

    made: list[PostgresProvider] = []

    def make(**settings: Any) -> PostgresProvider:
        provider = PostgresProvider(postgres_dsn, task_hub=_hub(), **settings)
        provider.setup()
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.drop_task_hub()
        provider.close()


@pytest.fixture(scope="session")
def azurite_connection_string(azurite: Any) -> str:
    return str(azurite.connection_string)


@pytest.fixture
def make_azure(azurite_connection_string: str) -> Iterator[Factory]:
    """``make_azure()``: a set-up Azure Storage provider on a fresh task hub in Azurite."""
    from ostinato_azure import AzureStorageProvider

    made: list[AzureStorageProvider] = []

    def make(**settings: Any) -> AzureStorageProvider:
        settings.setdefault("task_hub", _hub())
        settings.setdefault("lease_duration", 6.0)
        provider = AzureStorageProvider(azurite_connection_string, **settings)
        provider.setup()
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture(params=["sqlite", "postgres", "azure"])
def make(
    request: pytest.FixtureRequest, make_sqlite: Callable[..., SqliteProvider]
) -> Iterator[Factory]:
    """A factory of set-up providers: SQLite, PostgreSQL and Azure Storage in turn."""
    if request.param == "sqlite":
        yield make_sqlite
    else:
        yield request.getfixturevalue(f"make_{request.param}")
