"""Real HTTP: a uvicorn server on a free port of 127.0.0.1, with a real worker, per provider.

``api`` is one server for the whole module per provider (``memory`` and ``sqlite``); tests
keep apart by using their own instance ids. Nothing is mocked: requests go through httpx over
TCP to uvicorn, to the app, to the provider, and a worker runs the instances.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ostinato as ot
import pytest
from http_api_support import Api, ServerThread
from http_test_app import app as test_app
from ostinato.http import create_app


def make_provider(name: str, directory: Path) -> ot.StorageProvider:
    if name == "memory":
        return ot.InMemoryProvider()
    try:
        from ostinato.sqlite import SqliteProvider
    except ImportError as exc:  # pragma: no cover - until the SQLite provider lands
        pytest.skip(f"the SQLite provider cannot be imported: {exc}")
    return SqliteProvider(directory / "http-api.db", synchronous="NORMAL")


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API over real HTTP, with a worker, on each provider."""
    provider = make_provider(request.param, tmp_path_factory.mktemp(request.param))
    try:
        with (
            ot.Worker(test_app, provider, max_poll_interval=0.05),
            ServerThread(create_app(provider, app=test_app, retry_after=1)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            yield Api(server.url, http, provider, request.param)
    finally:
        provider.close()
