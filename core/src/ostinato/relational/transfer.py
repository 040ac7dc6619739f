"""The SQL that exports and imports a task hub's raw state (see
:meth:`~ostinato.provider.StorageProvider.export_snapshots`), rendered once per dialect.

Parameters are listed beside each statement; ``IN`` lists take the ids of one page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ostinato.relational.dialect import Dialect
from ostinato.relational.schema import ACTIVITIES, HISTORY, INBOX, INSTANCES, ORCHESTRATION_QUEUE


class TransferStatements:
    """The export/import statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d, p = dialect, dialect.placeholder

        def in_list(head: str, tail: str = "") -> Callable[[int], str]:
            return cache(lambda n: f"{head} instance_id IN ({d.params(n)}){tail}")

        t = d.table

        def ids_of(table: str) -> str:
            return f"SELECT instance_id FROM {t(table)} WHERE task_hub = {p} AND instance_id > {p}"

        union = " UNION ".join(ids_of(name) for name in (INSTANCES, INBOX, ACTIVITIES))
        #: (hub, after) three times, then the limit: every id holding state, in id order
        self.ids_after = d.select(
            "instance_id",
            f"({union}) AS ids",
            "1 = 1",
            order_by="instance_id",
            limit=True,
        )
        #: hub, ids
        self.history_in = in_list(
            f"SELECT instance_id, event FROM {t(HISTORY)} WHERE task_hub = {p} AND", " ORDER BY id"
        )
        #: hub, ids
        self.inbox_in = in_list(
            f"SELECT instance_id, body FROM {t(INBOX)} WHERE task_hub = {p} AND", " ORDER BY id"
        )
        #: hub, ids
        self.activities_in = in_list(
            f"SELECT instance_id, execution_id, task_id, name, input FROM {t(ACTIVITIES)} "
            f"WHERE task_hub = {p} AND",
            " ORDER BY id",
        )
        #: hub, id (three times): 1 for each table that holds the id
        self.holds_id = " UNION ALL ".join(
            f"SELECT 1 FROM {t(name)} WHERE task_hub = {p} AND instance_id = {p}"
            for name in (INSTANCES, INBOX, ACTIVITIES)
        )
        #: hub, now, hub, now: the workers holding a lock now
        self.lock_owners = (
            f"SELECT locked_by FROM {t(ORCHESTRATION_QUEUE)} WHERE task_hub = {p} "
            f"AND locked_by IS NOT NULL AND visible_at > {p} "
            f"UNION SELECT locked_by FROM {t(ACTIVITIES)} WHERE task_hub = {p} "
            f"AND locked_by IS NOT NULL AND visible_at > {p}"
        )


class BacklogStatements:
    """Counts of the work ready now, for the ``ostinato.backlog`` metric."""

    def __init__(self, dialect: Dialect) -> None:
        p, t = dialect.placeholder, dialect.table
        ready = f"task_hub = {p} AND visible_at <= {p}"
        #: hub, now: instances that can be claimed
        self.orchestrations = f"SELECT COUNT(*) FROM {t(ORCHESTRATION_QUEUE)} WHERE {ready}"
        #: hub, now: activity tasks that can be claimed
        self.activities = f"SELECT COUNT(*) FROM {t(ACTIVITIES)} WHERE {ready}"


__all__ = ["BacklogStatements", "TransferStatements"]
