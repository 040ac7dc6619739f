"""The whole suite in one class: contract tests, state machines, generated programs, scenarios."""

from __future__ import annotations

from ostinato_conformance.contract import ProviderContractTests
from ostinato_conformance.machine import ProviderStateMachineTests
from ostinato_conformance.operations import ProviderOperationsTests
from ostinato_conformance.programs import OrchestrationProgramTests
from ostinato_conformance.scenarios import ScenarioTests


class ProviderConformanceTests(
    ProviderContractTests,
    ProviderOperationsTests,
    ProviderStateMachineTests,
    OrchestrationProgramTests,
    ScenarioTests,
):
    """Everything a provider must pass. Subclass it and override ``provider_factory``::

        class TestMyProvider(ProviderConformanceTests):
            @pytest.fixture
            def provider_factory(self):
                return MyProvider  # called once per test / example: a fresh, empty task hub

    Overriding a standard test is allowed only to mark it
    ``@pytest.mark.xfail(reason=...)``; ``test_no_overrides_DO_NOT_OVERRIDE`` enforces it.
    """
