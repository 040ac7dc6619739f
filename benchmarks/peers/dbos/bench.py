"""The benchmark workloads on DBOS (see ../protocol.py).

Runs inside ``benchmarks/.venvs/dbos`` (``requirements.txt`` beside this file). Workflows run
in-process on DBOS's executor threads; the system database is a SQLite file in a temporary
directory (DBOS's defaults: rollback journal, ``synchronous=FULL``), or, when
``BENCH_DBOS_DATABASE_URL`` is set (``run.py --peers dbos-postgres``), that PostgreSQL
database: the harness's own throwaway cluster, the one ostinato/postgres runs on. DBOS polls
for notifications (on SQLite) and queues; both intervals are lowered from the 1 s default to
10 ms so that latency is not dominated by polling.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbos import DBOS, DBOSConfig, SetWorkflowID
from protocol import (
    ROUND_TRIPS,
    PeerBench,
    latency_result,
    main,
    rate_result,
    rss_bytes,
    start_at_once,
    sweep_waves,
    tree_bytes,
)

POLL = 0.01
QUEUE = "fan_out"
#: A PostgreSQL system database instead of the SQLite file, when set.
DATABASE_URL = os.environ.get("BENCH_DBOS_DATABASE_URL")


@DBOS.step()
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@DBOS.workflow()
def hello_cities() -> list[str]:
    return [say_hello("Tokyo"), say_hello("Seattle"), say_hello("London")]


@DBOS.step()
def square(n: int) -> int:
    return n * n


@DBOS.workflow()
def fan_out(n: int) -> int:
    queue = DBOS.retrieve_queue(QUEUE)
    handles = [queue.enqueue(square, i) for i in range(n)]
    return sum(handle.get_result() for handle in handles)


@DBOS.workflow()
def counter() -> None:
    count = 0
    while True:
        if DBOS.recv("event", timeout_seconds=3600) is not None:
            count += 1
            DBOS.set_event("count", count)


@DBOS.workflow()
def idle() -> None:
    DBOS.recv("never", timeout_seconds=24 * 3600)


class DbosBench(PeerBench):
    name = "dbos"

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bench-dbos-")
        self.db = os.path.join(self.tmp, "dbos.sqlite")

    def version(self) -> str:
        return version("dbos")

    def settings(self) -> str:
        if DATABASE_URL:
            return (
                "PostgreSQL system database (the harness's cluster, fsync on); in-process "
                f"executor; queue polling {POLL * 1000:g} ms"
            )
        return (
            "SQLite system database (rollback journal, synchronous=FULL); in-process executor; "
            f"notification and queue polling {POLL * 1000:g} ms"
        )

    def setup(self) -> None:
        config: DBOSConfig = {
            "name": "bench",
            "system_database_url": DATABASE_URL or f"sqlite:///{self.db}",
            "notification_listener_polling_interval_sec": POLL,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        DBOS.register_queue(QUEUE, polling_interval_sec=POLL)

    def teardown(self) -> None:
        DBOS.destroy(destroy_registry=True)

    def _wave(self, k: int) -> None:
        handles = start_at_once(lambda: DBOS.start_workflow(hello_cities), k)
        for handle in handles:
            assert handle.get_result(polling_interval_sec=POLL)[0] == "Hello Tokyo!"

    def hello_cities(self, n: int) -> dict[str, Any]:
        self._wave(1)
        started = time.perf_counter()
        self._wave(n)
        return rate_result(n, time.perf_counter() - started)

    def latency(self, runs: int) -> dict[str, Any]:
        samples = []
        for i in range(runs + 5):
            started = time.perf_counter()
            self._wave(1)
            if i >= 5:
                samples.append((time.perf_counter() - started) * 1000)
        return latency_result(samples)

    def fan_out(self, n: int) -> dict[str, Any]:
        started = time.perf_counter()
        result = DBOS.start_workflow(fan_out, n).get_result(polling_interval_sec=POLL)
        elapsed = time.perf_counter() - started
        assert result == sum(i * i for i in range(n))
        return rate_result(n, elapsed)

    def _round_trip(self, workflow_id: str, count: int) -> float:
        started = time.perf_counter()
        DBOS.send(workflow_id, "go", "event")
        while DBOS.get_event(workflow_id, "count", timeout_seconds=POLL) != count:
            pass
        return (time.perf_counter() - started) * 1000

    def replay(self, events: int) -> dict[str, Any]:
        workflow_id = str(uuid.uuid4())
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(counter)
        count = 0
        short = []
        for _ in range(ROUND_TRIPS):
            count += 1
            short.append(self._round_trip(workflow_id, count))
        # Each event records two operations (recv, set_event): fill the history in bulk.
        while len(DBOS.list_workflow_steps(workflow_id)) < events:
            batch = max(1, (events - len(DBOS.list_workflow_steps(workflow_id))) // 2)
            for _ in range(batch):
                DBOS.send(workflow_id, "go", "event")
            count += batch
            while DBOS.get_event(workflow_id, "count", timeout_seconds=1) != count:
                time.sleep(0.05)
        history = len(DBOS.list_workflow_steps(workflow_id))
        long = []
        for _ in range(ROUND_TRIPS):
            count += 1
            long.append(self._round_trip(workflow_id, count))
        DBOS.cancel_workflow(workflow_id)
        return {
            "history_events": history,
            "short_ms": sorted(short)[len(short) // 2],
            "long_ms": sorted(long)[len(long) // 2],
        }

    def idle(self, n: int) -> dict[str, Any]:
        rss_before, db_before = rss_bytes(), tree_bytes(self.tmp)
        started = time.perf_counter()
        handles = [DBOS.start_workflow(idle) for _ in range(n)]
        # Wait until every workflow is blocked in recv (its recv step is being awaited).
        while any(DBOS.get_workflow_status(h.workflow_id) is None for h in handles[-10:]):
            time.sleep(0.05)
        time.sleep(1.0)
        elapsed = time.perf_counter() - started
        result: dict[str, Any] = {
            "n": n,
            "seconds": elapsed,
            "rss_bytes_per_instance": (rss_bytes() - rss_before) / n,
        }
        if DATABASE_URL:
            result["storage_note"] = "on the server, not measured"
        else:
            result["storage_bytes_per_instance"] = (tree_bytes(self.tmp) - db_before) / n
        for handle in handles:
            DBOS.cancel_workflow(handle.workflow_id)
        return result

    def sweep(self, levels: list[int], total: int) -> dict[str, Any]:
        return {str(level): sweep_waves(level, total, self._wave) for level in levels}


if __name__ == "__main__":
    sys.exit(main(DbosBench()))
