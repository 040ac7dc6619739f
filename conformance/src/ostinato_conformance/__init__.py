"""ostinato-conformance: the suite that defines a correct ostinato storage provider.

Subclass a suite class and override one fixture, ``provider_factory`` (a callable that
returns a provider on a fresh, empty task hub)::

    import pytest
    from ostinato_conformance import ProviderConformanceTests

    class TestMyProvider(ProviderConformanceTests):
        @pytest.fixture
        def provider_factory(self):
            return MyProvider

or run the bundled suite against a factory with no code at all::

    pytest --pyargs ostinato_conformance.cli --ostinato-provider=my_package:make_provider

Public API (stable): the suite classes :class:`ProviderConformanceTests`,
:class:`ProviderContractTests`, :class:`ProviderStateMachineTests`,
:class:`OrchestrationProgramTests`, :class:`ScenarioTests` (DESIGN §5 end to end);
fault injection :class:`FaultInjectingProvider`,
:class:`FaultPlan`, :class:`FaultKind`, :class:`InjectedFault`; capability requirements
:func:`requires`, :data:`REQUIREMENTS`; profiles :class:`Profile`, :func:`current_profile`;
program generation :func:`programs`, :func:`interpret`, :data:`program_app`.

Names are loaded lazily so that importing the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ostinato_conformance.base import ConformanceTestBase, ProviderFactory, load_factory
    from ostinato_conformance.contract import ProviderContractTests
    from ostinato_conformance.faults import (
        FaultInjectingProvider,
        FaultKind,
        FaultPlan,
        InjectedFault,
    )
    from ostinato_conformance.machine import ProviderStateMachineTests
    from ostinato_conformance.operations import ProviderOperationsTests
    from ostinato_conformance.profiles import Profile, current_profile
    from ostinato_conformance.programs import (
        OrchestrationProgramTests,
        interpret,
        program_app,
        programs,
    )
    from ostinato_conformance.requirements import REQUIREMENTS, requires
    from ostinato_conformance.scenarios import ScenarioTests
    from ostinato_conformance.suite import ProviderConformanceTests

_EXPORTS = {
    "ConformanceTestBase": "base",
    "ProviderFactory": "base",
    "load_factory": "base",
    "ProviderContractTests": "contract",
    "FaultInjectingProvider": "faults",
    "FaultKind": "faults",
    "FaultPlan": "faults",
    "InjectedFault": "faults",
    "ProviderStateMachineTests": "machine",
    "ProviderOperationsTests": "operations",
    "Profile": "profiles",
    "current_profile": "profiles",
    "OrchestrationProgramTests": "programs",
    "interpret": "programs",
    "program_app": "programs",
    "programs": "programs",
    "REQUIREMENTS": "requirements",
    "requires": "requirements",
    "ProviderConformanceTests": "suite",
    "ScenarioTests": "scenarios",
}

__all__ = [
    "REQUIREMENTS",
    "ConformanceTestBase",
    "FaultInjectingProvider",
    "FaultKind",
    "FaultPlan",
    "InjectedFault",
    "OrchestrationProgramTests",
    "Profile",
    "ProviderConformanceTests",
    "ProviderContractTests",
    "ProviderFactory",
    "ProviderOperationsTests",
    "ProviderStateMachineTests",
    "ScenarioTests",
    "current_profile",
    "interpret",
    "load_factory",
    "program_app",
    "programs",
    "requires",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ostinato_conformance' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ostinato_conformance.{module}"), name)
    globals()[name] = value
    return value
