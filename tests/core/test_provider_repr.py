"""Every provider's ``repr`` names its store (file, server, account) and never a secret."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest

SECRET = "s3cret-Pa55"
AZURE_KEY = base64.b64encode(
    b"not a real account key, 64 bytes long......................"
).decode()


def memory(tmp_path: Path) -> Any:
    return ot.InMemoryProvider()


def sqlite(tmp_path: Path) -> Any:
    from ostinato.sqlite import SqliteProvider

    return SqliteProvider(tmp_path / "app.db", task_hub="orders")


def postgres(tmp_path: Path) -> Any:
    provider = pytest.importorskip("ostinato_postgres").PostgresProvider
    return provider(f"postgresql://app:{SECRET}@db.internal:6432/shop", task_hub="orders")


def mssql(tmp_path: Path) -> Any:
    provider = pytest.importorskip("ostinato_mssql").SqlServerProvider
    return provider(
        f"Driver={{ODBC Driver 18 for SQL Server}};Server=tcp:db.internal,1433;Database=shop;"
        f"UID=sa;PWD={SECRET}",
        task_hub="orders",
    )


def azure(tmp_path: Path) -> Any:
    provider = pytest.importorskip("ostinato_azure").AzureStorageProvider
    return provider(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURE_KEY};TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        task_hub="orders",
    )


CASES: list[tuple[Callable[[Path], Any], list[str]]] = [
    (memory, ["InMemoryProvider(", "memory"]),
    (sqlite, ["SqliteProvider(", "app.db", "orders"]),
    (postgres, ["PostgresProvider(", "db.internal:6432/shop", "orders"]),
    (mssql, ["SqlServerProvider(", "tcp:db.internal,1433/shop", "orders"]),
    (azure, ["AzureStorageProvider(", "devstoreaccount1", "127.0.0.1:10002", "orders"]),
]


@pytest.mark.parametrize(("make", "names"), CASES, ids=[make.__name__ for make, _ in CASES])
def test_repr_names_the_store_without_secrets(
    make: Callable[[Path], Any], names: list[str], tmp_path: Path
) -> None:
    text = repr(make(tmp_path))
    for name in names:
        assert name in text, text
    assert SECRET not in text and AZURE_KEY[:12] not in text, text
