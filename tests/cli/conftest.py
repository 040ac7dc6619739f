"""Fixtures for the configuration and CLI tests.

``isolated`` gives each test an empty current directory and no ``OSTINATO_*`` variables, so
nothing from the developer's machine leaks in. ``fake_providers`` adds third-party-style
providers to entry point discovery, exactly as an installed package would register them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from ostinato import discovery

from .fake_provider import FakeProvider

#: The repository root: ``examples`` imports from here (as ``ostinato worker`` does from its cwd).
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

HAS_SQLITE = "sqlite" in discovery.installed_providers()
requires_sqlite = pytest.mark.skipif(not HAS_SQLITE, reason="the sqlite provider is not installed")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory (under which no config file exists) and a clean env."""
    for name in list(os.environ):
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


FAKE_ENTRY_POINTS = [
    EntryPoint("fake", f"{FakeProvider.__module__}:FakeProvider", discovery.ENTRY_POINT_GROUP),
    EntryPoint("broken", "ostinato_no_such_module:Provider", discovery.ENTRY_POINT_GROUP),
]


@pytest.fixture
def fake_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register providers ``fake`` and ``broken`` (whose module does not exist)."""

    def with_fakes(*, group: str) -> list[EntryPoint]:
        found = list(entry_points(group=group))
        return found + FAKE_ENTRY_POINTS if group == discovery.ENTRY_POINT_GROUP else found

    monkeypatch.setattr(discovery, "entry_points", with_fakes)
