"""The relational-provider toolkit: what every transactional SQL provider shares.

* :mod:`~ostinato.relational.schema`: the tables (one set for all task hubs, keyed by
  ``task_hub``) and their forward migrations;
* :mod:`~ostinato.relational.migrations`: applying them under a schema-version table;
* :mod:`~ostinato.relational.dialect`: the seam for what engines spell differently (table
  names, types, lock hints, upserts, savepoints);
* :mod:`~ostinato.relational.statements`: the SQL, written once, rendered per dialect;
* :mod:`~ostinato.relational.connection`: the cursor and transaction an engine hands out;
* :mod:`~ostinato.relational.provider`: :class:`RelationalProvider`, the storage-provider
  contract on top of them. An engine's provider is a dialect plus the public hooks
  ``transaction(durable)``, ``read()`` and (optionally) ``guard_create(cursor, ids)``;
* :mod:`~ostinato.relational.retry`: retrying transactions a server database rolled back;
* :mod:`~ostinato.relational.grouping`: running concurrent calls in one transaction;
* :mod:`~ostinato.relational.rows`: contract objects to rows and back;
* :mod:`~ostinato.relational.transfer`, :mod:`~ostinato.relational.leases`: the SQL of state
  export/import, the backlog count and named leases.

Every public name of those modules is exported here too; providers import only these
(docs/custom-provider.md, "Writing a relational provider").
"""

from ostinato.relational.connection import Cursor, Transaction
from ostinato.relational.dialect import ColumnType, Dialect, RowLock
from ostinato.relational.grouping import CallGroup
from ostinato.relational.leases import LeaseStatements
from ostinato.relational.migrations import current_version, migrate, table_names
from ostinato.relational.provider import BatchOutcome, CreateRequest, RelationalProvider, Script
from ostinato.relational.retry import RetriesTransientErrors, TransientDatabaseError
from ostinato.relational.rows import from_micros, instance_record, instance_row, to_micros
from ostinato.relational.schema import (
    ACTIVITIES,
    DEAD_LETTERS,
    HISTORY,
    INBOX,
    INSTANCE_COLUMNS,
    INSTANCES,
    LATEST_VERSION,
    LEASES,
    MIGRATIONS,
    ORCHESTRATION_QUEUE,
    SCHEMA_TABLE,
    SCHEMA_VERSION_TABLE,
    TABLES,
    Column,
    Index,
    Migration,
    Table,
    create_index,
    create_table,
    render,
)
from ostinato.relational.statements import (
    ACTIVITY_CLAIMED_INSERT_COLUMNS,
    ACTIVITY_INSERT_COLUMNS,
    HISTORY_COLUMNS,
    INBOX_COLUMNS,
    INSTANCE_ROW_COLUMNS,
    MAX_ROWS,
    QUEUE_COLUMNS,
    Statements,
    chunk_sizes,
    largest_chunk,
)
from ostinato.relational.transfer import BacklogStatements, TransferStatements

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_CLAIMED_INSERT_COLUMNS",
    "ACTIVITY_INSERT_COLUMNS",
    "DEAD_LETTERS",
    "HISTORY",
    "HISTORY_COLUMNS",
    "INBOX",
    "INBOX_COLUMNS",
    "INSTANCES",
    "INSTANCE_COLUMNS",
    "INSTANCE_ROW_COLUMNS",
    "LATEST_VERSION",
    "LEASES",
    "MAX_ROWS",
    "MIGRATIONS",
    "ORCHESTRATION_QUEUE",
    "QUEUE_COLUMNS",
    "SCHEMA_TABLE",
    "SCHEMA_VERSION_TABLE",
    "TABLES",
    "BacklogStatements",
    "BatchOutcome",
    "CallGroup",
    "Column",
    "ColumnType",
    "CreateRequest",
    "Cursor",
    "Dialect",
    "Index",
    "LeaseStatements",
    "Migration",
    "RelationalProvider",
    "RetriesTransientErrors",
    "RowLock",
    "Script",
    "Statements",
    "Table",
    "Transaction",
    "TransferStatements",
    "TransientDatabaseError",
    "chunk_sizes",
    "create_index",
    "create_table",
    "current_version",
    "from_micros",
    "instance_record",
    "instance_row",
    "largest_chunk",
    "migrate",
    "render",
    "table_names",
    "to_micros",
]
