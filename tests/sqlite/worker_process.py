"""A worker process for the multi-process tests (run as a script, not collected by pytest).

usage: worker_process.py DB EFFECTS_DB LOCK_TIMEOUT_S ACTIVITY_SLEEP_S MAX_ACTIVITIES

Runs HelloCities whose ``say_hello`` activity records each execution (instance, city, pid)
in EFFECTS_DB, until SIGTERM (graceful stop) or SIGKILL. Prints ``ready`` once it takes work.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import ostinato as ot
from ostinato.sqlite import SqliteProvider

DB, EFFECTS = sys.argv[1], sys.argv[2]
LOCK_TIMEOUT = float(sys.argv[3])
ACTIVITY_SLEEP = float(sys.argv[4])
MAX_ACTIVITIES = int(sys.argv[5])

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    time.sleep(ACTIVITY_SLEEP)
    with sqlite3.connect(EFFECTS, timeout=30) as conn:
        conn.execute(
            "INSERT INTO effects (instance_id, city, pid) VALUES (?, ?, ?)",
            (ctx.instance_id, city, os.getpid()),
        )
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _input: Any) -> Any:
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    provider = SqliteProvider(DB)
    with ot.Worker(
        app,
        provider,
        lock_timeout=timedelta(seconds=LOCK_TIMEOUT),
        max_concurrent_activities=MAX_ACTIVITIES,
        max_poll_interval=0.05,
        grace_period=5,
    ):
        print("ready", flush=True)
        stop.wait()
    provider.close()


if __name__ == "__main__":
    main()
