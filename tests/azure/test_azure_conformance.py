"""The provider conformance suite (``ostinato-conformance``) against Azurite."""

from __future__ import annotations

import pytest
from azure_helpers import new_hub_name
from ostinato_azure import AzureStorageProvider
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory


class TestAzureStorageProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, connection_string: str) -> ProviderFactory:
        def make() -> AzureStorageProvider:
            return AzureStorageProvider(
                connection_string, task_hub=new_hub_name(), lease_duration=6.0
            )

        return make
