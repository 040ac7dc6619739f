"""The SQL shared by transactional providers, rendered once per dialect.

Every statement is parameterized; the only text put into SQL is table and column names from
:mod:`ostinato.relational.schema` and what the dialect returns. Batches travel as one bulk
parameter (:meth:`~ostinato.relational.dialect.Dialect.bulk`), so a group commit costs the same
handful of statements whether it carries one item or a hundred, and statement text never
depends on a batch's size. Parameters are listed beside each statement.
"""

from __future__ import annotations

from ostinato.relational.dialect import ColumnType, Dialect
from ostinato.relational.schema import (
    ACTIVITIES,
    HISTORY,
    INBOX,
    INSTANCE_COLUMNS,
    INSTANCES,
    ORCHESTRATION_QUEUE,
)

_K, _T, _B, _I = ColumnType.KEY, ColumnType.TEXT, ColumnType.BIGINT, ColumnType.INTEGER

#: Bulk row shapes (the Python side builds rows in exactly this column order).
KEYS = (_K,)
IDS = (_B,)
HISTORY_ROWS = (_K, _T)  # instance_id, event
MESSAGE_ROWS = (_K, _B, _T)  # instance_id, visible_at (NULL: now), body
ACTIVITY_ROWS = (_K, _K, _I, _K, _T)  # instance_id, execution_id, task_id, name, input
INSTANCE_ROWS = (_K, _K, _K, _K, _B, _B, _T, _T, _T, _T, _K, _I)  # INSTANCE_COLUMNS


class Statements:
    """Every statement of the relational providers, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d = dialect
        self.dialect = d
        p = d.placeholder
        hub_and_id = f"task_hub = {p} AND instance_id = {p}"
        columns = ", ".join(INSTANCE_COLUMNS)
        self.instance_columns = columns
        q, a = ORCHESTRATION_QUEUE, ACTIVITIES

        def keys_in(column: str, shape: tuple[ColumnType, ...] = KEYS) -> str:
            return f"{column} IN (SELECT c0 FROM ({d.bulk(shape)}) AS b)"

        # -- instances ----------------------------------------------------------------------
        #: hub, id
        self.instance_select = f"SELECT {columns} FROM {INSTANCES} WHERE {hub_and_id}"
        #: hub, id
        self.instance_status = (
            f"SELECT runtime_status FROM {INSTANCES} WHERE {hub_and_id}{d.lock_suffix()}"
        )
        #: hub, bulk(KEYS)
        self.instances_in = (
            f"SELECT {columns} FROM {INSTANCES} WHERE task_hub = {p} AND "
            + keys_in("instance_id")
        )
        #: hub, bulk(INSTANCE_ROWS)
        self.instances_upsert = d.upsert(
            INSTANCES,
            ("task_hub", "instance_id"),
            ("task_hub", *INSTANCE_COLUMNS),
            f"SELECT {p}, "
            + ", ".join(f"c{i}" for i in range(len(INSTANCE_COLUMNS)))
            + f" FROM ({d.bulk(INSTANCE_ROWS)}) AS b",
            ", ".join(f"{c} = {{excluded}}.{c}" for c in INSTANCE_COLUMNS[1:]),
        )
        #: hub, id, statuses... (see :meth:`instance_delete_if`)
        self._instance_delete_if = (
            f"DELETE FROM {INSTANCES} WHERE {hub_and_id} AND runtime_status IN "
        )

        # -- history ------------------------------------------------------------------------
        #: hub, id
        self.history_select = f"SELECT event FROM {HISTORY} WHERE {hub_and_id} ORDER BY id"
        #: hub, bulk(HISTORY_ROWS) -- inserted in row order
        self.history_insert = (
            f"INSERT INTO {HISTORY} (task_hub, instance_id, event) "
            f"SELECT {p}, c0, c1 FROM ({d.bulk(HISTORY_ROWS)}) AS b ORDER BY n"
        )
        #: hub, id
        self.history_delete = f"DELETE FROM {HISTORY} WHERE {hub_and_id}"
        #: hub, bulk(KEYS)
        self.histories_delete = f"DELETE FROM {HISTORY} WHERE task_hub = {p} AND " + keys_in(
            "instance_id"
        )

        # -- inbox --------------------------------------------------------------------------
        #: hub, now, bulk(MESSAGE_ROWS)
        self.inbox_insert = (
            f"INSERT INTO {INBOX} (task_hub, instance_id, visible_at, body) "
            f"SELECT {p}, c0, COALESCE(c1, {p}), c2 FROM ({d.bulk(MESSAGE_ROWS)}) AS b ORDER BY n"
        )
        #: bulk(IDS)
        self.inbox_delete_ids = f"DELETE FROM {INBOX} WHERE " + keys_in("id", IDS)
        #: hub, id
        self.inbox_delete = f"DELETE FROM {INBOX} WHERE {hub_and_id}"
        #: hub, now, bulk(KEYS)
        self.inbox_visible_in = (
            f"SELECT id, instance_id, body FROM {INBOX} WHERE task_hub = {p} "
            f"AND visible_at <= {p} AND " + keys_in("instance_id") + " ORDER BY id"
        )

        # -- orchestration queue ------------------------------------------------------------
        #: hub, now, bulk(MESSAGE_ROWS): make each addressed instance claimable by then
        self.queue_upsert = d.upsert(
            q,
            ("task_hub", "instance_id"),
            ("task_hub", "instance_id", "visible_at", "dequeue_count"),
            f"SELECT {p}, c0, MIN(COALESCE(c1, {p})), 0 FROM ({d.bulk(MESSAGE_ROWS)}) AS b "
            "GROUP BY c0",
            # A locked instance keeps its lock expiry; an idle one becomes claimable at its
            # earliest message.
            "visible_at = CASE WHEN {target}.lock_token IS NULL AND ({target}.visible_at IS NULL"
            " OR {excluded}.visible_at < {target}.visible_at) THEN {excluded}.visible_at"
            " ELSE {target}.visible_at END",
        )
        #: hub, now, limit
        self.queue_claim = d.select(
            "instance_id, dequeue_count",
            q,
            f"task_hub = {p} AND visible_at <= {p}",
            order_by="visible_at",
            limit=True,
            claim=True,
        )
        #: hub, now, 1
        self.queue_peek = d.select(
            "1", q, f"task_hub = {p} AND visible_at <= {p}", limit=True
        )
        #: expires, worker, token, hub, bulk(KEYS)
        self.queue_lock = (
            f"UPDATE {q} SET visible_at = {p}, locked_by = {p}, lock_token = {p}, "
            f"dequeue_count = dequeue_count + 1 WHERE task_hub = {p} AND " + keys_in("instance_id")
        )
        #: hub, bulk(KEYS)
        self.queue_locks_in = (
            f"SELECT instance_id, lock_token, visible_at FROM {q} WHERE task_hub = {p} AND "
            + keys_in("instance_id")
            + d.lock_suffix()
        )
        inbox_of_row = f"i.task_hub = {q}.task_hub AND i.instance_id = {q}.instance_id"
        #: now, hub, bulk(KEYS): unlock; claimable again at the earliest remaining message
        self.queue_release = (
            f"UPDATE {q} SET visible_at = (SELECT MIN(i.visible_at) FROM {INBOX} i "
            f"WHERE {inbox_of_row}), locked_by = NULL, lock_token = NULL, "
            f"dequeue_count = CASE WHEN EXISTS (SELECT 1 FROM {INBOX} i WHERE {inbox_of_row} "
            f"AND i.visible_at <= {p}) THEN dequeue_count ELSE 0 END "
            f"WHERE task_hub = {p} AND " + keys_in("instance_id")
        )
        #: expires, hub, id, token, now
        self.queue_renew = (
            f"UPDATE {q} SET visible_at = {p} "
            f"WHERE {hub_and_id} AND lock_token = {p} AND visible_at > {p}"
        )
        #: until, new token, hub, id, token, now
        self.queue_hold = (
            f"UPDATE {q} SET visible_at = {p}, locked_by = NULL, lock_token = {p} "
            f"WHERE {hub_and_id} AND lock_token = {p} AND visible_at > {p}"
        )
        #: hub, id
        self.queue_reset = (
            f"UPDATE {q} SET visible_at = NULL, locked_by = NULL, lock_token = NULL, "
            f"dequeue_count = 0 WHERE {hub_and_id}"
        )
        #: hub, id
        self.queue_delete = f"DELETE FROM {q} WHERE {hub_and_id}"

        # -- activities ---------------------------------------------------------------------
        #: hub, now, bulk(ACTIVITY_ROWS)
        self.activity_insert = (
            f"INSERT INTO {a} (task_hub, instance_id, execution_id, task_id, name, input, "
            f"visible_at, dequeue_count) SELECT {p}, c0, c1, c2, c3, c4, {p}, 0 "
            f"FROM ({d.bulk(ACTIVITY_ROWS)}) AS b ORDER BY n"
        )
        #: hub, now, limit
        self.activity_claim = d.select(
            "id, instance_id, execution_id, task_id, name, input, dequeue_count",
            a,
            f"task_hub = {p} AND visible_at <= {p}",
            order_by="visible_at, id",
            limit=True,
            claim=True,
        )
        #: hub, now, 1
        self.activity_peek = d.select(
            "1", a, f"task_hub = {p} AND visible_at <= {p}", limit=True
        )
        #: expires, worker, token, bulk(IDS)
        self.activity_lock = (
            f"UPDATE {a} SET visible_at = {p}, locked_by = {p}, lock_token = {p}, "
            f"dequeue_count = dequeue_count + 1 WHERE " + keys_in("id", IDS)
        )
        #: hub, bulk(IDS)
        self.activity_locks_in = (
            f"SELECT id, lock_token, visible_at FROM {a} WHERE task_hub = {p} AND "
            + keys_in("id", IDS)
            + d.lock_suffix()
        )
        #: bulk(IDS)
        self.activity_delete_ids = f"DELETE FROM {a} WHERE " + keys_in("id", IDS)
        #: expires, hub, row id, token, now
        self.activity_renew = (
            f"UPDATE {a} SET visible_at = {p} "
            f"WHERE task_hub = {p} AND id = {p} AND lock_token = {p} AND visible_at > {p}"
        )
        #: visible at, hub, row id, token, now
        self.activity_abandon = (
            f"UPDATE {a} SET visible_at = {p}, locked_by = NULL, lock_token = NULL "
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
            INSTANCES,
            " AND ".join(where),
            order_by="instance_id",
            limit=True,
        )
