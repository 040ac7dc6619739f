"""DESIGN §5 scenarios 2, 4 and 5 as shipped examples, end to end on SQLite (or memory)."""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import ostinato as ot
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[ot.StorageProvider]:
    if "sqlite" in ot.discovery.installed_providers():
        provider = ot.provider_from_config(
            provider="sqlite", settings={"path": str(tmp_path / "x.db")}
        )
    else:
        provider = ot.InMemoryProvider()
    yield provider
    provider.close()


def example(name: str) -> ModuleType:
    return importlib.import_module(f"examples.{name}")


def test_singleton_background_job_over_http(provider: ot.StorageProvider) -> None:
    assert example("singleton_http").main(provider) == [202, 409, 202]
    state = ot.Client(provider).get_orchestration_state("nightly-job")
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.COMPLETED


def test_critical_section_never_overlaps(provider: ot.StorageProvider) -> None:
    result = example("critical_section").main(provider, instances=8)
    assert result["counter"] == 8  # no lost update
    spans = sorted((s["entered"], s["left"]) for s in result["sections"])
    for (_, left), (entered, _) in itertools.pairwise(spans):
        assert left <= entered


def test_check_site_available(provider: ot.StorageProvider) -> None:
    lines = example("check_site_available").main(provider)
    assert lines[0].endswith("is available: HTTP 200")
    assert lines[1].endswith("is unavailable: HTTP 400")  # a 400 is an answer, not a crash
    assert lines[2].endswith("/slow is available: HTTP 200")  # polled through two 202s
