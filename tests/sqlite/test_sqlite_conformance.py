"""The provider conformance suite against SqliteProvider (a fresh database file per provider)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
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

    @pytest.fixture
    def provider_opener(self, tmp_path: Path) -> Callable[[], Callable[[], SqliteProvider]]:
        counter = itertools.count()
        return lambda: functools.partial(
            SqliteProvider, tmp_path / f"shared-{next(counter)}.db", synchronous="NORMAL"
        )
