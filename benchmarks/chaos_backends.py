"""The back ends of the chaos harness (``benchmarks/chaos.py``): start, restart, corrupt, stop.

Each back end gives the worker spec (``chaos_app.open_store`` opens it), restarts itself
mid-run and puts an undecodable message in one instance's inbox behind the provider's back:

* **SQLite** has no server: the back end is the database file and the processes that hold it.
  Its restart closes the harness's own connection, then ``kill -9``s every worker at once, so
  no process is left holding the file or its locks and the write-ahead log is recovered by the
  next process that opens it (what a host crash does), then starts the workers again.
* **PostgreSQL**: a throwaway cluster (``ostinato_postgres.testing``); its restart is
  ``pg_ctl stop -m fast``, ``down_for`` seconds with connections refused, ``pg_ctl start``.
  The workers ride through it (connection errors are transient).
* **Azure**: Azurite (``azurite/start.py``) persisting to a directory; its restart stops it
  (SIGTERM), waits ``down_for`` seconds and starts it again on the same ports and data.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent


class Backend(Protocol):
    """One provider's back end for a chaos run."""

    #: The worker spec's store fields (``chaos_app.open_store`` reads them).
    spec: dict[str, Any]
    #: What :meth:`restart` does, for the report.
    restart_kind: str
    #: Whether the harness closes its own connection before :meth:`restart` (and reopens it).
    closes_clients: bool

    def restart(self, down_for: float, kill_workers: Callable[[], int]) -> int:
        """Restart the back end, down for ``down_for`` seconds; returns how many workers it
        killed with ``kill_workers()`` (which kills every worker at once and says how many);
        the harness then starts new ones."""
        ...

    def inject_corrupt_message(self, instance_id: str) -> None:
        """Put an undecodable message in the instance's inbox, past the provider."""
        ...

    def stop(self) -> None:
        """Stop and delete what :func:`start_backend` started."""
        ...


class SqliteBackend:
    restart_kind = "every process holding the database file killed at once"
    closes_clients = True

    def __init__(self, workdir: Path) -> None:
        self.spec: dict[str, Any] = {"kind": "sqlite", "path": str(workdir / "chaos.db")}

    def restart(self, down_for: float, kill_workers: Callable[[], int]) -> int:
        killed = kill_workers()
        time.sleep(down_for)
        return killed

    def inject_corrupt_message(self, instance_id: str) -> None:
        with sqlite3.connect(self.spec["path"], timeout=30) as conn:
            _corrupt_sql_inbox(conn.execute, "?", "default", instance_id)

    def stop(self) -> None:
        pass


class PostgresBackend:
    restart_kind = "pg_ctl stop -m fast, down, pg_ctl start"
    closes_clients = False

    def __init__(self) -> None:
        from ostinato_postgres.testing import start_private_cluster

        self.server = start_private_cluster()
        self.spec = {
            "kind": "postgres",
            "dsn": self.server.dsn,
            "task_hub": f"chaos{uuid.uuid4().hex[:8]}",
        }

    def restart(self, down_for: float, kill_workers: Callable[[], int]) -> int:
        self.server.restart(down_for=down_for)
        return 0

    def inject_corrupt_message(self, instance_id: str) -> None:
        import psycopg
        from psycopg import sql

        schema = f"ostinato_{self.spec['task_hub']}".lower()
        with psycopg.connect(self.spec["dsn"], autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            _corrupt_sql_inbox(conn.execute, "%s", self.spec["task_hub"], instance_id)

    def stop(self) -> None:
        self.server.stop()


def _corrupt_sql_inbox(execute: Any, p: str, hub: str, instance_id: str) -> None:
    now = int(time.time() * 1_000_000)
    execute(
        f"INSERT INTO ostinato_inbox (task_hub, instance_id, visible_at, body) "
        f"VALUES ({p}, {p}, {p}, {p})",
        (hub, instance_id, now, "{not json"),
    )
    execute(
        f"UPDATE ostinato_orchestration_queue SET visible_at = {p} "
        f"WHERE task_hub = {p} AND instance_id = {p} AND lock_token IS NULL",
        (now, hub, instance_id),
    )


class AzureBackend:
    restart_kind = "Azurite stopped (SIGTERM), down, started on its on-disk data"
    closes_clients = False
    #: The provider's default partition count (``AzureStorageProvider(partition_count=4)``).
    partitions = 4

    def __init__(self, workdir: Path, lease_duration: float | None) -> None:
        sys.path.insert(0, str(HERE.parent / "azurite"))
        from start import Azurite

        self._azurite_type = Azurite
        self.location = workdir / "azurite"
        self.azurite = Azurite(self.location)
        self.azurite.start()
        self.spec = {
            "kind": "azure",
            "connection_string": self.azurite.connection_string,
            "task_hub": f"chaos{uuid.uuid4().hex[:8]}",
            "partition_count": self.partitions,
        }
        if lease_duration is not None:
            self.spec["lease_duration"] = lease_duration

    def restart(self, down_for: float, kill_workers: Callable[[], int]) -> int:
        ports = self.azurite.ports
        self.azurite.stop()
        time.sleep(down_for)
        self.azurite = self._azurite_type(self.location, ports=ports)
        self.azurite.start()
        return 0

    def inject_corrupt_message(self, instance_id: str) -> None:
        """A control-queue message that names the instance but whose event is undecodable
        (a queue message has no columns: the instance id is only inside the body)."""
        from azure.storage.queue import QueueClient

        hub = self.spec["task_hub"].lower()
        index = zlib.crc32(instance_id.encode("utf-8")) % self.partitions
        body = json.dumps(
            {"id": uuid.uuid4().hex, "instance_id": instance_id, "event": {"not": "an event"}}
        )
        queue = QueueClient.from_connection_string(
            self.spec["connection_string"], f"{hub}-control-{index:02d}"
        )
        with queue:
            queue.send_message(body, time_to_live=-1)

    def stop(self) -> None:
        self.azurite.stop()


def start_backend(kind: str, workdir: Path, *, lease_duration: float | None = None) -> Backend:
    """Start the back end of ``kind`` (sqlite, postgres, azure) for one chaos run."""
    if kind == "postgres":
        return PostgresBackend()
    if kind == "azure":
        return AzureBackend(workdir, lease_duration)
    return SqliteBackend(workdir)
