"""The SQL shared by transactional providers, rendered once per dialect.

Every statement is parameterized; the only text put into SQL is table and column names from
:mod:`ostinato.relational.schema` and what the dialect returns. Tables are named through
:meth:`~ostinato.relational.dialect.Dialect.table` and row locks asked for with a
:class:`~ostinato.relational.dialect.RowLock`, so an engine's dialect decides where its schema
and its lock hints go. Batches travel as multi-row
``VALUES`` and ``IN`` lists; their statements take a row count ``n``, and callers use only a
few counts (powers of two, see :func:`chunk_sizes`), so the driver's statement cache keeps
every statement prepared and a group commit costs a handful of statements whatever its size.
Parameters are listed beside each statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache

from ostinato.relational.dialect import Dialect, RowLock
from ostinato.relational.schema import (
    ACTIVITIES,
    DEAD_LETTERS,
    HISTORY,
    INBOX,
    INSTANCE_COLUMNS,
    INSTANCES,
    ORCHESTRATION_QUEUE,
)

__all__ = [
    "ACTIVITY_CLAIMED_INSERT_COLUMNS",
    "ACTIVITY_INSERT_COLUMNS",
    "HISTORY_COLUMNS",
    "INBOX_COLUMNS",
    "INSTANCE_ROW_COLUMNS",
    "MAX_ROWS",
    "QUEUE_COLUMNS",
    "Statements",
    "chunk_sizes",
    "largest_chunk",
]

#: The largest row count of one batched statement.
MAX_ROWS = 128

HISTORY_COLUMNS = ("task_hub", "instance_id", "event")
INBOX_COLUMNS = ("task_hub", "instance_id", "visible_at", "body")
QUEUE_COLUMNS = ("task_hub", "instance_id", "visible_at", "dequeue_count")
ACTIVITY_INSERT_COLUMNS = (
    "task_hub",
    "instance_id",
    "execution_id",
    "task_id",
    "name",
    "input",
    "visible_at",
    "dequeue_count",
)
#: A task locked as it is enqueued (eager activities): its lock is ``visible_at`` and these.
ACTIVITY_CLAIMED_INSERT_COLUMNS = (*ACTIVITY_INSERT_COLUMNS, "locked_by", "lock_token")
INSTANCE_ROW_COLUMNS = ("task_hub", *INSTANCE_COLUMNS)


def chunk_sizes(total: int, largest: int) -> Iterator[int]:
    """Split ``total`` rows into powers of two no larger than ``largest`` (a power of two)."""
    while total > 0:
        size = min(largest, 1 << (total.bit_length() - 1))
        yield size
        total -= size


def largest_chunk(dialect: Dialect, columns: int) -> int:
    """The largest power-of-two row count (up to :data:`MAX_ROWS`) within the parameter limit."""
    rows = max(1, min(MAX_ROWS, (dialect.max_parameters - 4) // columns))
    return 1 << (rows.bit_length() - 1)


class Statements:
    """Every statement of the relational providers, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d = dialect
        self.dialect = d
        p = d.placeholder
        hub_and_id = f"task_hub = {p} AND instance_id = {p}"
        columns = ", ".join(INSTANCE_COLUMNS)
        self.instance_columns = columns
        t = d.table
        instances, history, inbox = t(INSTANCES), t(HISTORY), t(INBOX)
        q, a = t(ORCHESTRATION_QUEUE), t(ACTIVITIES)
        self._instances = instances

        def in_list(head: str, column: str, tail: str = "") -> Callable[[int], str]:
            return cache(lambda n: f"{head} {column} IN ({d.params(n)}){tail}")

        # -- instances ----------------------------------------------------------------------
        #: hub, id
        self.instance_select = f"SELECT {columns} FROM {instances} WHERE {hub_and_id}"
        #: hub, id (held: the create's reuse-id check)
        self.instance_status = d.select("runtime_status", instances, hub_and_id, lock=RowLock.HOLD)
        #: hub, ids
        self.instances_in = in_list(
            f"SELECT {columns} FROM {instances} WHERE task_hub = {p} AND", "instance_id"
        )
        #: hub, ids
        self.instance_ids_in = in_list(
            f"SELECT instance_id FROM {instances} WHERE task_hub = {p} AND", "instance_id"
        )
        #: hub, ids: what a step computed without a lock was computed from (eager steps)
        self.instance_versions_in = in_list(
            f"SELECT instance_id, execution_id, history_size FROM {instances} "
            f"WHERE task_hub = {p} AND",
            "instance_id",
        )
        #: n rows of INSTANCE_ROW_COLUMNS
        #: A plain insert: a concurrent create of the same id fails with a key violation.
        self.instances_insert = cache(lambda n: d.insert(instances, INSTANCE_ROW_COLUMNS, n))
        self.instances_upsert = cache(
            lambda n: d.upsert(
                instances,
                ("task_hub", "instance_id"),
                INSTANCE_ROW_COLUMNS,
                n,
                ", ".join(f"{c} = {{excluded}}.{c}" for c in INSTANCE_COLUMNS[1:]),
            )
        )
        self._instance_delete_if = (
            f"DELETE FROM {instances} WHERE {hub_and_id} AND runtime_status IN "
        )

        # -- history ------------------------------------------------------------------------
        #: hub, id
        self.history_select = f"SELECT event FROM {history} WHERE {hub_and_id} ORDER BY id"
        #: n rows of HISTORY_COLUMNS (ids follow row order)
        self.history_insert = cache(lambda n: d.insert(history, HISTORY_COLUMNS, n))
        #: hub, id
        self.history_delete = f"DELETE FROM {history} WHERE {hub_and_id}"
        #: hub, ids
        self.histories_delete = in_list(
            f"DELETE FROM {history} WHERE task_hub = {p} AND", "instance_id"
        )

        # -- inbox --------------------------------------------------------------------------
        #: n rows of INBOX_COLUMNS
        self.inbox_insert = cache(lambda n: d.insert(inbox, INBOX_COLUMNS, n))
        #: row ids
        self.inbox_delete_ids = in_list(f"DELETE FROM {inbox} WHERE", "id")
        #: hub, id
        self.inbox_delete = f"DELETE FROM {inbox} WHERE {hub_and_id}"
        #: hub, now, ids
        self.inbox_visible_in = in_list(
            f"SELECT id, instance_id, body FROM {inbox} WHERE task_hub = {p} "
            f"AND visible_at <= {p} AND",
            "instance_id",
            " ORDER BY id",
        )

        # -- orchestration queue ------------------------------------------------------------
        #: n rows of QUEUE_COLUMNS (instances distinct): make each claimable by visible_at
        self.queue_upsert = cache(
            lambda n: d.upsert(
                q,
                ("task_hub", "instance_id"),
                QUEUE_COLUMNS,
                n,
                # A locked instance keeps its lock expiry; an idle one becomes claimable at
                # its earliest message.
                "visible_at = CASE WHEN {target}.lock_token IS NULL AND "
                "({target}.visible_at IS NULL OR {excluded}.visible_at < {target}.visible_at) "
                "THEN {excluded}.visible_at ELSE {target}.visible_at END",
            )
        )
        #: hub, now, limit
        self.queue_claim = d.select(
            "instance_id, dequeue_count",
            q,
            f"task_hub = {p} AND visible_at <= {p}",
            order_by="visible_at",
            limit=True,
            lock=RowLock.CLAIM,
        )
        #: hub, now, ids: which of these instances are claimable (eager orchestrations)
        self.queue_claim_in = cache(
            lambda n: d.select(
                "instance_id, dequeue_count",
                q,
                f"task_hub = {p} AND visible_at <= {p} AND instance_id IN ({d.params(n)})",
                lock=RowLock.CLAIM,
            )
        )
        #: hub, now, 1
        self.queue_peek = d.select(
            "1", q, f"task_hub = {p} AND visible_at <= {p}", limit=True, lock=RowLock.PROBE
        )
        #: expires, worker, token, hub, ids
        self.queue_lock = in_list(
            f"UPDATE {q} SET visible_at = {p}, locked_by = {p}, lock_token = {p}, "
            f"dequeue_count = dequeue_count + 1 WHERE task_hub = {p} AND",
            "instance_id",
        )
        #: hub, ids (held: the lock checks of completions and abandons)
        self.queue_locks_in = cache(
            lambda n: d.select(
                "instance_id, lock_token, visible_at",
                q,
                f"task_hub = {p} AND instance_id IN ({d.params(n)})",
                lock=RowLock.HOLD,
            )
        )
        # Columns of the updated row, qualified by its table's bare name.
        row = ORCHESTRATION_QUEUE
        inbox_of_row = f"i.task_hub = {row}.task_hub AND i.instance_id = {row}.instance_id"
        #: now, hub, ids: unlock; claimable again at the earliest remaining message
        self.queue_release = in_list(
            f"UPDATE {q} SET visible_at = (SELECT MIN(i.visible_at) FROM {inbox} i "
            f"WHERE {inbox_of_row}), locked_by = NULL, lock_token = NULL, "
            f"dequeue_count = CASE WHEN EXISTS (SELECT 1 FROM {inbox} i WHERE {inbox_of_row} "
            f"AND i.visible_at <= {p}) THEN dequeue_count ELSE 0 END WHERE task_hub = {p} AND",
            "instance_id",
        )
        #: hub, ids: unlock after a completion (the next delivery counts from 1 again)
        self.queue_release_completed = in_list(
            f"UPDATE {q} SET visible_at = (SELECT MIN(i.visible_at) FROM {inbox} i "
            f"WHERE {inbox_of_row}), locked_by = NULL, lock_token = NULL, "
            f"dequeue_count = 0 WHERE task_hub = {p} AND",
            "instance_id",
        )
        #: expires, hub, id, token, now
        self.queue_renew = (
            f"UPDATE {q} SET visible_at = {p} "
            f"WHERE {hub_and_id} AND lock_token = {p} AND visible_at > {p}"
        )
        #: until, new token, hub, id, token, now
        self.queue_hold = (
            f"UPDATE {q} SET visible_at = {p}, locked_by = NULL, lock_token = {p}, "
            "dequeue_count = dequeue_count - 1 "
            f"WHERE {hub_and_id} AND lock_token = {p} AND visible_at > {p}"
        )
        #: hub, id: an abandoned delivery is given back, not counted
        self.queue_uncount = (
            f"UPDATE {q} SET dequeue_count = dequeue_count - 1 "
            f"WHERE {hub_and_id} AND dequeue_count > 0"
        )
        #: hub, id
        self.queue_reset = (
            f"UPDATE {q} SET visible_at = NULL, locked_by = NULL, lock_token = NULL, "
            f"dequeue_count = 0 WHERE {hub_and_id}"
        )
        #: hub, id
        self.queue_delete = f"DELETE FROM {q} WHERE {hub_and_id}"

        # -- dead letters -------------------------------------------------------------------
        dl = t(DEAD_LETTERS)
        dl_columns = "id, kind, instance_id, body, reason, created_at"
        #: hub, instance id, kind, body, reason, created at
        self.dead_letter_insert = (
            f"INSERT INTO {dl} (task_hub, instance_id, kind, body, reason, created_at) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
        )
        #: hub, limit
        self.dead_letters_select = d.select(
            dl_columns, dl, f"task_hub = {p}", order_by="id", limit=True
        )
        #: hub, instance id, limit
        self.dead_letters_of = d.select(
            dl_columns, dl, f"task_hub = {p} AND instance_id = {p}", order_by="id", limit=True
        )
        #: hub, instance id, 1
        self.dead_letters_newest = d.select(
            dl_columns, dl, f"task_hub = {p} AND instance_id = {p}", order_by="id DESC", limit=True
        )
        #: hub, id
        self.dead_letter_select = d.select(dl_columns, dl, f"task_hub = {p} AND id = {p}")
        #: hub, id
        self.dead_letter_delete = f"DELETE FROM {dl} WHERE task_hub = {p} AND id = {p}"
        #: hub, instance id
        self.dead_letters_delete = f"DELETE FROM {dl} WHERE task_hub = {p} AND instance_id = {p}"
        #: hub, id: the history rows of one instance, with their ids
        self.history_rows = f"SELECT id, event FROM {history} WHERE {hub_and_id} ORDER BY id"

        # -- activities ---------------------------------------------------------------------
        #: n rows of ACTIVITY_INSERT_COLUMNS
        self.activity_insert = cache(lambda n: d.insert(a, ACTIVITY_INSERT_COLUMNS, n))
        #: n rows of ACTIVITY_CLAIMED_INSERT_COLUMNS
        self.activity_insert_claimed = cache(
            lambda n: d.insert(a, ACTIVITY_CLAIMED_INSERT_COLUMNS, n)
        )
        #: hub, token, instance ids: the tasks a commit claimed, to hand them out
        self.activity_claimed_in = in_list(
            f"SELECT id, instance_id, execution_id, task_id FROM {a} "
            f"WHERE task_hub = {p} AND lock_token = {p} AND",
            "instance_id",
        )
        #: hub, now, limit
        self.activity_claim = d.select(
            "id, instance_id, execution_id, task_id, name, input, dequeue_count",
            a,
            f"task_hub = {p} AND visible_at <= {p}",
            order_by="visible_at, id",
            limit=True,
            lock=RowLock.CLAIM,
        )
        #: hub, now, 1
        self.activity_peek = d.select(
            "1", a, f"task_hub = {p} AND visible_at <= {p}", limit=True, lock=RowLock.PROBE
        )
        #: expires, worker, token, row ids
        self.activity_lock = in_list(
            f"UPDATE {a} SET visible_at = {p}, locked_by = {p}, lock_token = {p}, "
            f"dequeue_count = dequeue_count + 1 WHERE",
            "id",
        )
        #: hub, row ids (held: the lock checks of completions)
        self.activity_locks_in = cache(
            lambda n: d.select(
                "id, lock_token, visible_at",
                a,
                f"task_hub = {p} AND id IN ({d.params(n)})",
                lock=RowLock.HOLD,
            )
        )
        #: row ids
        self.activity_delete_ids = in_list(f"DELETE FROM {a} WHERE", "id")
        #: expires, hub, row id, token, now
        self.activity_renew = (
            f"UPDATE {a} SET visible_at = {p} "
            f"WHERE task_hub = {p} AND id = {p} AND lock_token = {p} AND visible_at > {p}"
        )
        #: visible at, hub, row id, token, now
        self.activity_abandon = (
            f"UPDATE {a} SET visible_at = {p}, locked_by = NULL, lock_token = NULL, "
            "dequeue_count = dequeue_count - 1 "
            f"WHERE task_hub = {p} AND id = {p} AND lock_token = {p} AND visible_at > {p}"
        )
        #: hub, id
        self.activity_delete = f"DELETE FROM {a} WHERE {hub_and_id}"

    def instance_delete_if(self, count: int) -> str:
        """Delete an instance if its status is one of ``count``: parameters hub, id, statuses."""
        return f"{self._instance_delete_if}({self.dialect.params(count)})"

    def query(
        self,
        *,
        after: bool,
        id_prefix: bool,
        name_prefix: bool,
        statuses: int,
        created_from: bool,
        created_to: bool,
    ) -> str:
        """A keyset-paged instance query; parameters in the order of the keyword arguments
        (hub first; prefixes take two: length and prefix), then the row limit."""
        d, p = self.dialect, self.dialect.placeholder
        where = [f"task_hub = {p}"]
        if after:
            where.append(f"instance_id > {p}")
        if id_prefix:
            where.append(d.starts_with("instance_id"))
        if name_prefix:
            where.append(d.starts_with("name"))
        if statuses:
            where.append(f"runtime_status IN ({d.params(statuses)})")
        if created_from:
            where.append(f"created_at >= {p}")
        if created_to:
            where.append(f"created_at <= {p}")
        return d.select(
            self.instance_columns,
            self._instances,
            " AND ".join(where),
            order_by="instance_id",
            limit=True,
        )
