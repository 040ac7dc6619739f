"""The provider conformance suite against SQL Server (skipped, with the reason, without one)."""

from __future__ import annotations

import pytest
from hypothesis.errors import FlakyStrategyDefinition
from ostinato.provider import ProviderCapabilities
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

from .conftest import ProviderFactory as SqlServerFactory


class TestSqlServerProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, make_provider: SqlServerFactory) -> ProviderFactory:
        # Each call: a fresh task hub in the shared test schema, deleted after the test.
        return lambda: make_provider()

    @pytest.mark.xfail(
        raises=FlakyStrategyDefinition,
        strict=False,
        reason=(
            "the state machine's 60 ms timers race its own steps: on a server store a step "
            "sequence can take about as long, so a timer is due before a step in one run and "
            "after it in the next, and hypothesis reports FlakyStrategyDefinition; any "
            "conformance violation still fails"
        ),
    )
    def test_provider_state_machine(
        self, provider_factory: ProviderFactory, capabilities: ProviderCapabilities
    ) -> None:
        super().test_provider_state_machine(provider_factory, capabilities)
