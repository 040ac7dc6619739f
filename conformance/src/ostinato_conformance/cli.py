"""The suite against the provider named on the command line::

pytest --pyargs ostinato_conformance.cli --ostinato-provider=my_package.provider:make_provider
"""

from __future__ import annotations

from ostinato_conformance.suite import ProviderConformanceTests


class TestProviderFromCommandLine(ProviderConformanceTests):
    """Uses the default ``provider_factory`` fixture: the ``--ostinato-provider`` option."""
