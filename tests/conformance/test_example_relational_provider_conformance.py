"""The conformance suite against the relational example of docs/custom-provider.md: a
provider written with the toolkit's public hooks only."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

from examples.custom_provider import TinySqlProvider


class TestTinySqlProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, tmp_path: Path) -> ProviderFactory:
        hubs = itertools.count()
        return lambda: TinySqlProvider(tmp_path / f"hub-{next(hubs)}.db")
