"""The provider conformance suite against SQL Server (skipped, with the reason, without one)."""

from __future__ import annotations

import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

from .conftest import ProviderFactory as SqlServerFactory


class TestSqlServerProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, make_provider: SqlServerFactory) -> ProviderFactory:
        # Each call: a fresh task hub in the shared test schema, deleted after the test.
        return lambda: make_provider()
