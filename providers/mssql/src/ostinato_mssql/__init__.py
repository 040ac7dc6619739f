"""ostinato's SQL Server provider (``ostinato-mssql``), registered as provider ``mssql``.

::

    from ostinato_mssql import SqlServerProvider

    provider = SqlServerProvider(
        "Driver={ODBC Driver 18 for SQL Server};Server=localhost,1433;Database=ostinato;"
        "UID=sa;PWD=...;TrustServerCertificate=yes",
        task_hub="orders",
    )

or from config: ``OSTINATO_PROVIDER=mssql`` and ``OSTINATO_MSSQL_CONNECTION_STRING=...``.
Every statement it runs is in :mod:`ostinato_mssql.sql` (``statements.sql`` lists them).
"""

from ostinato_mssql.provider import (
    SqlServerProvider,
    TransientDatabaseError,
    import_pyodbc,
)
from ostinato_mssql.sql import SqlServerDialect

__all__ = ["SqlServerDialect", "SqlServerProvider", "TransientDatabaseError", "import_pyodbc"]
