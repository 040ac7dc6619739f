"""Fixtures for the core tests: a fresh in-memory provider, a client, and a worker factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import ostinato as ot
import pytest


@pytest.fixture
def provider() -> ot.InMemoryProvider:
    return ot.InMemoryProvider()


@pytest.fixture
def client(provider: ot.InMemoryProvider) -> ot.Client:
    return ot.Client(provider)


WorkerFactory = Callable[..., AbstractContextManager[ot.Worker]]


@pytest.fixture
def worker(provider: ot.InMemoryProvider) -> WorkerFactory:
    """``with worker(app, **options):`` runs a real worker on the test's provider."""

    @contextmanager
    def run(app: ot.App, **options: Any) -> Iterator[ot.Worker]:
        options.setdefault("max_poll_interval", 0.05)
        with ot.Worker(app, options.pop("provider", provider), **options) as w:
            yield w

    return run


def run_to_completion(
    client: ot.Client, orchestrator: Any, *, timeout: float = 15, **kwargs: Any
) -> ot.OrchestrationState:
    """Start an orchestration and wait for it to finish."""
    instance_id = client.schedule_new_orchestration(orchestrator, **kwargs)
    return client.wait_for_orchestration_completion(instance_id, timeout=timeout)
