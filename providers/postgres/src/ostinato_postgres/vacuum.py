"""Vacuuming and analyzing a busy task hub's tables, so its steps don't slow down as it grows.

Two things make a busy hub slower over time if nothing but autovacuum looks after it, which
visits a database once every ``autovacuum_naptime`` (a minute by default):

* **no planner statistics.** Until a table is first analyzed, the planner guesses that
  ``task_hub = ...`` matches few rows (it matches every row: a hub has its own schema), and
  can then look instance ids up by scanning all of the hub's rows, so each step costs more
  the more instances the hub holds;
* **dead row versions.** Each step updates its instance row and its queue row, and inserts
  and deletes inbox messages and activity tasks; PostgreSQL keeps every old version, and its
  index entries, until ``VACUUM`` removes it, and claims and lock checks walk past them.

``benchmarks/pg_sustained.py`` runs HelloCities rounds back to back on one hub with this
module's thread and without it, and prints the rate of each round.

:class:`HubVacuum` is a daemon thread that, every ``interval`` seconds, reads the hub's table
statistics from ``pg_stat_user_tables`` (one catalog query), then:

* vacuums each hot table (:data:`HOT_TABLES`) with at least :data:`DEAD_ROWS` dead rows;
* analyzes each table that was never analyzed once :data:`DEAD_ROWS` rows have changed in it
  (with its vacuum if it has one); from then on autovacuum keeps the statistics current.

Every command is ``SKIP_LOCKED``: it never waits for another process's vacuum of the same
table (several workers on one hub need no coordination), and neither command takes a lock
that reads and writes wait for. Only tables the connected role may vacuum (those of a role it
belongs to) are looked at. An error is logged and the next round tries again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from ostinato.relational import ACTIVITIES, INBOX, INSTANCES, ORCHESTRATION_QUEUE
from psycopg import sql

__all__ = ["DEAD_ROWS", "HOT_TABLES", "HubVacuum"]

log = logging.getLogger("ostinato.postgres")

#: The tables every step writes to (the history only grows, and is vacuumed by autovacuum).
HOT_TABLES = (ORCHESTRATION_QUEUE, ACTIVITIES, INBOX, INSTANCES)
#: Dead row versions from which a hot table is vacuumed, and changed rows from which a table
#: never analyzed is.
DEAD_ROWS = 1000

_TABLE_STATS_SQL = (
    "SELECT s.relname, s.n_dead_tup, s.n_mod_since_analyze, "
    "s.last_analyze IS NULL AND s.last_autoanalyze IS NULL "
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = %s AND pg_has_role(c.relowner, 'USAGE')"
)

#: (vacuum, analyze) -> the command that does both.
_COMMANDS = {
    (True, True): "VACUUM (SKIP_LOCKED, ANALYZE)",
    (True, False): "VACUUM (SKIP_LOCKED)",
    (False, True): "ANALYZE (SKIP_LOCKED)",
}

Connect = Callable[[], contextlib.AbstractContextManager[psycopg.Connection[Any]]]


class HubVacuum:
    """A daemon thread vacuuming and analyzing ``schema``'s tables (see the module doc).

    :param connect: gives an autocommit connection (``VACUUM`` cannot run in a transaction).
    """

    def __init__(self, connect: Connect, schema: str, interval: float) -> None:
        self.connect = connect
        self.schema = schema
        self.interval = interval
        #: Commands run so far (for tests and diagnostics).
        self.commands = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ostinato-vacuum-{schema}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.vacuum_once()
            except Exception as exc:  # noqa: BLE001 - a background job: logged, tried again
                if self._stopping.is_set():
                    return
                log.warning("Vacuuming schema %r failed (%s); trying again", self.schema, exc)

    def vacuum_once(self) -> list[str]:
        """One round: vacuum and analyze what needs it (see the module doc); the commands run."""
        commands: list[str] = []
        with self.connect() as connection:
            for table, dead, changed, never_analyzed in connection.execute(
                _TABLE_STATS_SQL, (self.schema,)
            ).fetchall():
                vacuum = table in HOT_TABLES and dead >= DEAD_ROWS
                analyze = never_analyzed and changed >= DEAD_ROWS
                if self._stopping.is_set() or not (vacuum or analyze):
                    continue
                # A vacuum analyzes too where needed; otherwise the analyze runs alone.
                command = _COMMANDS[vacuum, analyze]
                connection.execute(
                    sql.SQL(command + " {}.{}").format(
                        sql.Identifier(self.schema), sql.Identifier(table)
                    )
                )
                self.commands += 1
                commands.append(f"{command} {table}")
        return commands
