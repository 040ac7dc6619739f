"""A provider that does not claim lock expiry (collected only when named explicitly).

``test_suite_mechanics.py`` runs it to show that tests needing the capability are skipped
with a reason that names it.
"""

from __future__ import annotations

import ostinato as ot
import pytest
from ostinato.provider import ProviderCapabilities
from ostinato_conformance import ProviderContractTests
from ostinato_conformance.base import ProviderFactory


class NoExpiryMemoryProvider(ot.InMemoryProvider):
    capabilities = ProviderCapabilities(lock_expiry=False, multi_process=False)


class TestNoLockExpiry(ProviderContractTests):
    @pytest.fixture
    def provider_factory(self) -> ProviderFactory:
        return NoExpiryMemoryProvider
