"""The conformance suite against the in-memory provider."""

from __future__ import annotations

import ostinato as ot
import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory


class TestInMemoryProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self) -> ProviderFactory:
        return ot.InMemoryProvider
