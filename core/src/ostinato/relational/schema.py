"""The relational schema every transactional provider shares, and its forward migrations.

One set of tables holds every task hub; each row carries its ``task_hub`` and every key and
index starts with it, so several task hubs in one database never see each other's rows and a
hub needs no DDL of its own (creating a hub is free; table names stay fixed and need no
quoting or validation). Tables:

``ostinato_schema``
    One row per applied migration (``version``, ``description``, ``applied_at``).
``ostinato_instances``
    One row per instance: the :class:`~ostinato.provider.InstanceRecord` fields.
``ostinato_history``
    The current execution's history events, one serialized event per row, in ``id`` order.
``ostinato_inbox``
    Messages addressed to an instance (serialized :class:`~ostinato.provider.OrchestrationMessage`),
    with ``visible_at``: the message is not handed out before then (timers).
``ostinato_orchestration_queue``
    One row per instance that has (or had) messages: when it can next be claimed
    (``visible_at``, ``NULL`` when nothing is pending) and its lock (``locked_by``,
    ``lock_token``). While an instance is locked ``visible_at`` holds the lock's expiry, so
    "claimable" is one index range (``visible_at <= now``) whether the instance waits for a
    timer or for an expired lock.
``ostinato_activities``
    The activity queue; the same ``visible_at``/lock convention per task.
``ostinato_leases``
    Named leases of a task hub (``owner`` until ``expires_at``), electing one worker for
    background jobs such as retention.
``ostinato_dead_letters``
    Records moved aside because they could not be decoded (``kind``: ``message``,
    ``history`` or ``activity_task``), as they were stored, with the ``reason``.

Times are 64-bit integers: microseconds since the Unix epoch, UTC. Migrations only ever add:
a database is brought forward by applying every migration newer than its version, in one
transaction; a database newer than this code is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ostinato.relational.dialect import ColumnType, Dialect

__all__ = [
    "ACTIVITIES",
    "DEAD_LETTERS",
    "HISTORY",
    "INBOX",
    "INSTANCES",
    "INSTANCE_COLUMNS",
    "LATEST_VERSION",
    "LEASES",
    "MIGRATIONS",
    "ORCHESTRATION_QUEUE",
    "SCHEMA_TABLE",
    "SCHEMA_VERSION_TABLE",
    "TABLES",
    "Column",
    "Index",
    "Migration",
    "Table",
    "create_index",
    "create_table",
    "render",
]

SCHEMA_TABLE = "ostinato_schema"
INSTANCES = "ostinato_instances"
HISTORY = "ostinato_history"
INBOX = "ostinato_inbox"
ORCHESTRATION_QUEUE = "ostinato_orchestration_queue"
ACTIVITIES = "ostinato_activities"
DEAD_LETTERS = "ostinato_dead_letters"
LEASES = "ostinato_leases"
#: Every table of the schema.
TABLES = (
    SCHEMA_TABLE,
    INSTANCES,
    HISTORY,
    INBOX,
    ORCHESTRATION_QUEUE,
    ACTIVITIES,
    LEASES,
    DEAD_LETTERS,
)

#: The instance-record columns, in the order the statements read and write them.
INSTANCE_COLUMNS: tuple[str, ...] = (
    "instance_id",
    "name",
    "execution_id",
    "runtime_status",
    "created_at",
    "last_updated_at",
    "input",
    "output",
    "custom_status",
    "failure_details",
    "parent_instance_id",
    "history_size",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """A table; ``clustered`` asks the engine to store rows in primary-key order."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    clustered: bool = False


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Migration:
    """One forward migration of the schema (from one version to the next)."""

    version: int
    description: str
    tables: tuple[Table, ...] = ()
    indexes: tuple[Index, ...] = ()

    def statements(self, dialect: Dialect) -> list[str]:
        """The DDL of this migration in ``dialect``."""
        return [create_table(t, dialect) for t in self.tables] + [
            create_index(i, dialect) for i in self.indexes
        ]


def create_table(table: Table, dialect: Dialect) -> str:
    """``CREATE TABLE`` for ``table`` in ``dialect``."""
    parts = []
    for column in table.columns:
        spec = f"{column.name} {dialect.column_type(column.type)}"
        if not column.nullable and column.type is not ColumnType.IDENTITY:
            spec += " NOT NULL"
        parts.append(spec)
    if table.primary_key:
        parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n    ".join(parts)
    name = dialect.table(table.name)
    return f"CREATE TABLE {name} (\n    {body}\n){dialect.table_suffix(table.clustered)}"


def create_index(index: Index, dialect: Dialect) -> str:
    """``CREATE INDEX`` for ``index`` in ``dialect`` (index names are never qualified)."""
    unique = "UNIQUE " if index.unique else ""
    table = dialect.table(index.table)
    return f"CREATE {unique}INDEX {index.name} ON {table} ({', '.join(index.columns)})"


def _c(name: str, column_type: ColumnType, nullable: bool = True) -> Column:
    return Column(name, column_type, nullable)


_K, _T, _B, _I = ColumnType.KEY, ColumnType.TEXT, ColumnType.BIGINT, ColumnType.INTEGER

SCHEMA_VERSION_TABLE = Table(
    SCHEMA_TABLE,
    (
        _c("version", _I, False),
        _c("description", _T, False),
        _c("applied_at", _B, False),
    ),
    primary_key=("version",),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "instances, history, inbox, orchestration queue, activity queue",
        tables=(
            Table(
                INSTANCES,
                (
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("name", _K, False),
                    _c("execution_id", _K, False),
                    _c("runtime_status", _K, False),
                    _c("created_at", _B, False),
                    _c("last_updated_at", _B, False),
                    _c("input", _T),
                    _c("output", _T),
                    _c("custom_status", _T),
                    _c("failure_details", _T),
                    _c("parent_instance_id", _K),
                    _c("history_size", _I, False),
                ),
                primary_key=("task_hub", "instance_id"),
                clustered=True,
            ),
            Table(
                HISTORY,
                (
                    _c("id", ColumnType.IDENTITY, False),
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("event", _T, False),
                ),
            ),
            Table(
                INBOX,
                (
                    _c("id", ColumnType.IDENTITY, False),
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("visible_at", _B, False),
                    _c("body", _T, False),
                ),
            ),
            Table(
                ORCHESTRATION_QUEUE,
                (
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("visible_at", _B),
                    _c("locked_by", _K),
                    _c("lock_token", _K),
                    _c("dequeue_count", _I, False),
                ),
                primary_key=("task_hub", "instance_id"),
                clustered=True,
            ),
            Table(
                ACTIVITIES,
                (
                    _c("id", ColumnType.IDENTITY, False),
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("execution_id", _K, False),
                    _c("task_id", _I, False),
                    _c("name", _K, False),
                    _c("input", _T),
                    _c("visible_at", _B, False),
                    _c("locked_by", _K),
                    _c("lock_token", _K),
                    _c("dequeue_count", _I, False),
                ),
            ),
        ),
        indexes=(
            Index("ostinato_history_instance", HISTORY, ("task_hub", "instance_id", "id")),
            Index("ostinato_inbox_instance", INBOX, ("task_hub", "instance_id", "visible_at")),
            Index(
                "ostinato_orchestration_queue_visible",
                ORCHESTRATION_QUEUE,
                ("task_hub", "visible_at"),
            ),
            Index("ostinato_activities_visible", ACTIVITIES, ("task_hub", "visible_at")),
            Index("ostinato_activities_instance", ACTIVITIES, ("task_hub", "instance_id")),
        ),
    ),
    # No DDL: a history row may now hold a step's run of events (history.dumps_many), which an
    # older ostinato could not read. The version makes an older ostinato refuse the database.
    Migration(2, "history rows hold a run of events"),
    Migration(
        3,
        "leases",
        tables=(
            Table(
                LEASES,
                (
                    _c("task_hub", _K, False),
                    _c("name", _K, False),
                    _c("owner", _K, False),
                    _c("expires_at", _B, False),
                ),
                primary_key=("task_hub", "name"),
            ),
        ),
    ),
    Migration(
        4,
        "dead letters: undecodable records moved aside",
        tables=(
            Table(
                DEAD_LETTERS,
                (
                    _c("id", ColumnType.IDENTITY, False),
                    _c("task_hub", _K, False),
                    _c("instance_id", _K, False),
                    _c("kind", _K, False),
                    _c("body", _T, False),
                    _c("reason", _T, False),
                    _c("created_at", _B, False),
                ),
            ),
        ),
        indexes=(
            Index("ostinato_dead_letters_instance", DEAD_LETTERS, ("task_hub", "instance_id")),
        ),
    ),
)

#: The schema version this code reads and writes.
LATEST_VERSION = MIGRATIONS[-1].version


def render(dialect: Dialect) -> str:
    """The whole schema as one DDL script in ``dialect`` (for reading and review)."""
    statements = [create_table(SCHEMA_VERSION_TABLE, dialect)]
    for migration in MIGRATIONS:
        statements.append(f"-- migration {migration.version}: {migration.description}")
        statements.extend(migration.statements(dialect))
    out = []
    for statement in statements:
        out.append(statement if statement.startswith("--") else statement + ";")
    return "\n\n".join(out) + "\n"
