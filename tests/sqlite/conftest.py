"""Fixtures for the SQLite provider tests: real database files in ``tmp_path``, no mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ostinato.sqlite import SqliteProvider


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ostinato.db"


@pytest.fixture
def provider(db_path: Path) -> Iterator[SqliteProvider]:
    p = SqliteProvider(db_path, synchronous="NORMAL")
    p.setup()
    yield p
    p.close()
