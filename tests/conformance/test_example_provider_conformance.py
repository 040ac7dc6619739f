"""The conformance suite against the worked example of docs/custom-provider.md."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from ostinato_conformance import ProviderConformanceTests
from ostinato_conformance.base import ProviderFactory

from examples.custom_provider import FileProvider


class TestFileProvider(ProviderConformanceTests):
    @pytest.fixture
    def provider_factory(self, tmp_path: Path) -> ProviderFactory:
        hubs = itertools.count()
        return lambda: FileProvider(tmp_path / f"hub-{next(hubs)}")

    @pytest.fixture
    def provider_opener(self, tmp_path: Path) -> Callable[[], Callable[[], FileProvider]]:
        hubs = itertools.count()
        return lambda: functools.partial(FileProvider, tmp_path / f"shared-{next(hubs)}")
