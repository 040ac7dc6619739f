"""The provider conformance suite against SqliteProvider (a fresh database file per provider)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from ostinato.sqlite import SqliteProvider
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory


class TestSqliteProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, tmp_path: Path) -> ProviderFactory:
        counter = itertools.count()
        return lambda: SqliteProvider(tmp_path / f"hub-{next(counter)}.db", synchronous="NORMAL")
