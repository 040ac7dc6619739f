"""The relational-provider toolkit: what every transactional SQL provider shares.

* :mod:`~ostinato.relational.schema`: the tables (one set for all task hubs, keyed by
  ``task_hub``) and their forward migrations;
* :mod:`~ostinato.relational.migrations`: applying them under a schema-version table;
* :mod:`~ostinato.relational.dialect`: the seam for what engines spell differently;
* :mod:`~ostinato.relational.statements`: the SQL, written once, rendered per dialect;
* :mod:`~ostinato.relational.provider`: :class:`RelationalProvider`, the storage-provider
  contract on top of them. An engine's provider is a dialect plus connection handling.
"""

from ostinato.relational.connection import Cursor
from ostinato.relational.dialect import ColumnType, Dialect
from ostinato.relational.provider import RelationalProvider
from ostinato.relational.schema import LATEST_VERSION, MIGRATIONS, Migration

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "ColumnType",
    "Cursor",
    "Dialect",
    "Migration",
    "RelationalProvider",
]
