"""A worker process for the fault tests (run as a script, not collected by pytest).

usage: worker_process.py SPEC_JSON

SPEC_JSON: the store spec (see ``stores.open_store``) plus ``marks`` (a directory: every run
of a crashing activity or orchestrator step appends a line to a file there before it kills
this process with ``os._exit``), ``lock_timeout`` and ``max_delivery_attempts`` (left out or
``None``: the worker's defaults). Prints ``ready`` once it takes work; runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ostinato as ot
from stores import open_store

SPEC: dict[str, Any] = json.loads(sys.argv[1])
MARKS = Path(SPEC["marks"])

app = ot.App()


def mark_and_die(name: str) -> None:
    with open(MARKS / name, "a") as f:
        f.write(f"{os.getpid()}\n")
    os._exit(17)


@app.activity
def crash(ctx: ot.ActivityContext, _: Any) -> None:
    mark_and_die("crash_activity")


@app.activity
def echo(ctx: ot.ActivityContext, value: Any) -> Any:
    return value


@app.orchestrator
def calls_crash(ctx: ot.OrchestrationContext, _: Any) -> Any:
    try:
        yield ctx.call_activity(crash)
    except ot.TaskFailedError as exc:
        return ["caught", exc.details.error_type]
    return "not failed"


@app.orchestrator
def crashes(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_activity(echo, input=1)
    mark_and_die("crash_orchestrator")


@app.activity
def slow(ctx: ot.ActivityContext, seconds: float) -> str:
    with open(MARKS / "slow_started", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "slept"


@app.orchestrator
def sleeps(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    return (yield ctx.call_activity(slow, input=seconds))


@app.orchestrator
def bystander(ctx: ot.OrchestrationContext, n: int) -> Any:
    first = yield ctx.call_activity(echo, input=n)
    second = yield ctx.call_activity(echo, input=n + 1)
    return first + second


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    provider = open_store(SPEC)
    options: dict[str, Any] = {}
    if SPEC.get("lock_timeout") is not None:  # else the default
        options["lock_timeout"] = timedelta(seconds=SPEC["lock_timeout"])
    if SPEC.get("max_delivery_attempts") is not None:
        options["max_delivery_attempts"] = SPEC["max_delivery_attempts"]
    with ot.Worker(app, provider, max_poll_interval=0.05, **options):
        print("ready", flush=True)
        stop.wait()
    provider.close()


if __name__ == "__main__":
    main()
