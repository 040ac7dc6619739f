"""Providers on the session's Azurite (``azurite`` in ``tests/conftest.py``), started once
from the pinned npm package in ``azurite/``.

Without ``node``/``npm`` every Azure test is reported as skipped with that reason; they never
pass without their back end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "azurite"))

from azure_helpers import ProviderMaker, new_hub_name  # noqa: E402
from ostinato_azure import AzureStorageProvider  # noqa: E402
from start import Azurite  # noqa: E402


@pytest.fixture(scope="session")
def connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def make_provider(connection_string: str) -> Iterator[ProviderMaker]:
    """``make_provider(**settings)``: a provider on a fresh task hub (same hub: pass it)."""
    made: list[AzureStorageProvider] = []

    def make(**settings: object) -> AzureStorageProvider:
        settings.setdefault("task_hub", new_hub_name())
        settings.setdefault("lease_duration", 6.0)
        provider = AzureStorageProvider(connection_string, **settings)  # type: ignore[arg-type]
        provider.setup()
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: ProviderMaker) -> AzureStorageProvider:
    return make_provider()
