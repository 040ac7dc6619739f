"""The provider conformance suite (``ostinato-conformance``) against Azurite."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from azure_helpers import new_hub_name
from ostinato_azure import AzureStorageProvider
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

#: Azurite answers every call of the state machine and the generated programs (thousands per
#: test) on the same two shared cores as the tests: on a loaded machine one of those tests
#: runs for many minutes, so the deadline is the suite's slowest test on a busy machine.
pytestmark = pytest.mark.timeout(1800)


class TestAzureStorageProvider(ProviderConformanceTests):
    #: Every call is an HTTP round trip to Azurite on the same two cores: a third of the
    #: quick profile's state-machine runs and programs keeps CI's quick run within its three
    #: minutes (the thorough and stress profiles run their whole budgets).
    quick_profile_scale = 0.35

    @pytest.fixture
    def provider_factory(self, connection_string: str) -> ProviderFactory:
        def make() -> AzureStorageProvider:
            return AzureStorageProvider(
                connection_string, task_hub=new_hub_name(), lease_duration=6.0
            )

        return make

    @pytest.fixture
    def provider_opener(
        self, connection_string: str
    ) -> Callable[[], Callable[[], AzureStorageProvider]]:
        # Each call: a fresh task hub that the parent and its child processes all open.
        def new_hub() -> Callable[[], AzureStorageProvider]:
            return functools.partial(
                AzureStorageProvider,
                connection_string,
                task_hub=new_hub_name(),
                lease_duration=6.0,
            )

        return new_hub
