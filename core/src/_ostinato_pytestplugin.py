"""The ostinato pytest plugin: the ``ostinato_env`` fixture.

Registered through the ``pytest11`` entry point; it imports nothing of ostinato until a test
asks for a fixture, so it costs nothing in test runs that don't use it.

Define an ``ostinato_app`` fixture returning your :class:`ostinato.App`; ``ostinato_env`` is
then a started :class:`ostinato.testing.TimeSkippingEnvironment` for it, stopped after the
test. A test marked ``@pytest.mark.ostinato_env(sqlite=True)`` gets one on a SQLite file in
its ``tmp_path``; ``start=datetime(...)`` sets the virtual clock's start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ostinato_env(sqlite=False, start=None, **worker_options): options of the test's "
        "ostinato_env fixture",
    )


@pytest.fixture
def ostinato_app() -> Any:
    """The app ``ostinato_env`` runs: override this fixture to return your ``ostinato.App``."""
    raise pytest.UsageError(
        "The ostinato_env fixture needs an `ostinato_app` fixture returning your ostinato.App "
        "(define it in your conftest.py or test module)"
    )


@pytest.fixture
def ostinato_env(request: pytest.FixtureRequest, ostinato_app: Any) -> Iterator[Any]:
    """A started time-skipping environment (worker + client) for ``ostinato_app``."""
    from ostinato.testing import TimeSkippingEnvironment

    marker = request.node.get_closest_marker("ostinato_env")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if options.pop("sqlite", False):
        tmp_path = request.getfixturevalue("tmp_path")
        options["sqlite_path"] = tmp_path / "ostinato.db"
    with TimeSkippingEnvironment(ostinato_app, **options) as env:
        yield env
