"""ostinato's PostgreSQL provider (``ostinato-postgres``), registered as provider ``postgres``.

::

    from ostinato_postgres import PostgresProvider

    provider = PostgresProvider("postgresql://user:password@localhost/app", task_hub="orders")

or from config: ``OSTINATO_PROVIDER=postgres`` and ``OSTINATO_POSTGRES_DSN=...``.
"""

from ostinato_postgres.provider import (
    PostgresDialect,
    PostgresProvider,
    TransientDatabaseError,
    default_schema,
)

__all__ = ["PostgresDialect", "PostgresProvider", "TransientDatabaseError", "default_schema"]
