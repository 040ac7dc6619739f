"""The provider conformance suite (``ostinato-conformance``) against Azurite."""

from __future__ import annotations

import pytest
from azure_helpers import new_hub_name
from ostinato.provider import ProviderCapabilities, StorageProvider
from ostinato_azure import AzureStorageProvider
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

#: Azurite answers every call of the state machine and the generated programs (thousands per
#: test) on the same two shared cores as the tests: on a loaded machine one of those tests
#: runs for many minutes, so the deadline is the suite's slowest test on a busy machine.
pytestmark = pytest.mark.timeout(1800)


class TestAzureStorageProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, connection_string: str) -> ProviderFactory:
        def make() -> AzureStorageProvider:
            return AzureStorageProvider(
                connection_string, task_hub=new_hub_name(), lease_duration=6.0
            )

        return make

    @pytest.mark.xfail(
        reason="Azure reports no per-item delivery count yet (queue dequeue counts are per "
        "message); its own max_dequeue_count policy moves poison messages aside (#15, #17)",
        strict=True,
    )
    def test_orchestration_delivery_count_restarts_after_a_completion(
        self, provider: StorageProvider
    ) -> None:
        super().test_orchestration_delivery_count_restarts_after_a_completion(provider)

    @pytest.mark.xfail(
        reason="Azure reports no per-item delivery count yet (queue dequeue counts are per "
        "message); its own max_dequeue_count policy moves poison messages aside (#15, #17)",
        strict=True,
    )
    def test_activity_delivery_count_counts_each_hand_out_of_the_task(
        self, provider: StorageProvider
    ) -> None:
        super().test_activity_delivery_count_counts_each_hand_out_of_the_task(provider)

    @pytest.mark.xfail(
        reason="the state machine finds open Azure bugs (#17): an activity task of a purged "
        "instance handed out again after the id is re-created, and a start message lost",
        strict=False,
    )
    def test_provider_state_machine(
        self, provider_factory: ProviderFactory, capabilities: ProviderCapabilities
    ) -> None:
        super().test_provider_state_machine(provider_factory, capabilities)
