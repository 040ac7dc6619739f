"""The provider conformance suite against PostgreSQL (a real server; see conftest.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory
from ostinato_postgres import PostgresProvider

from .conftest import ProviderFactory as PostgresFactory


class TestPostgresProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, make_provider: PostgresFactory) -> ProviderFactory:
        # Each call: a fresh task hub (its own schema), dropped after the test.
        return lambda: make_provider(pool_max_size=4)

    @pytest.fixture
    def provider_opener(
        self, make_provider: PostgresFactory, postgres_dsn: str
    ) -> Callable[[], Callable[[], PostgresProvider]]:
        def new_hub() -> Callable[[], PostgresProvider]:
            hub = make_provider().task_hub  # made here so that its schema is dropped after
            return functools.partial(PostgresProvider, postgres_dsn, task_hub=hub, pool_max_size=2)

        return new_hub
