"""ostinato's SQL Server provider (``ostinato-mssql``), registered as provider ``mssql``.

::

    from ostinato_mssql import SqlServerProvider

    provider = SqlServerProvider(
        "Driver={ODBC Driver 18 for SQL Server};Server=localhost,1433;Database=ostinato;"
        "UID=sa;PWD=...;TrustServerCertificate=yes",
        task_hub="orders",
    )

or from config: ``OSTINATO_PROVIDER=mssql`` and ``OSTINATO_MSSQL_CONNECTION_STRING=...``.
Every statement it runs is in :mod:`ostinato_mssql.sql` (``statements.sql`` lists them;
``python -m ostinato_mssql.sql`` prints them). The names below are imported on first use, so
importing the package loads none of its modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ostinato_mssql.provider import (
        SqlServerProvider,
        TransientDatabaseError,
        import_pyodbc,
    )
    from ostinato_mssql.sql import SqlServerDialect

_HOMES = {
    "SqlServerDialect": "ostinato_mssql.sql",
    "SqlServerProvider": "ostinato_mssql.provider",
    "TransientDatabaseError": "ostinato_mssql.provider",
    "import_pyodbc": "ostinato_mssql.provider",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ostinato_mssql' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = ["SqlServerDialect", "SqlServerProvider", "TransientDatabaseError", "import_pyodbc"]
