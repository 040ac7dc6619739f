"""A worker process for the multi-process tests: ``python worker_process.py DSN TASK_HUB``.

Runs :data:`app` on the PostgreSQL task hub until it is killed or gets SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import ostinato as ot
from ostinato_postgres import PostgresProvider

STEPS = 5
app = ot.App()


@app.activity
def step(ctx: ot.ActivityContext, n: int) -> int:
    time.sleep(0.2)
    return n * n


@app.orchestrator
def chain(ctx: ot.OrchestrationContext, count: int) -> Generator[Any, Any, int]:
    total = 0
    for n in range(count):
        total += yield ctx.call_activity(step, input=n)
    return total


def main(dsn: str, task_hub: str) -> None:
    provider = PostgresProvider(dsn, task_hub=task_hub, pool_max_size=4)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ot.Worker(
        app,
        provider,
        lock_timeout=timedelta(seconds=2),
        max_poll_interval=0.5,
        max_concurrent_activities=4,
    ):
        print("ready", flush=True)
        stop.wait()
    provider.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
