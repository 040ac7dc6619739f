"""The provider conformance suite against PostgreSQL (a real server; see conftest.py)."""

from __future__ import annotations

import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

from .conftest import ProviderFactory as PostgresFactory


class TestPostgresProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, make_provider: PostgresFactory) -> ProviderFactory:
        # Each call: a fresh task hub (its own schema), dropped after the test.
        return lambda: make_provider(pool_max_size=4)
