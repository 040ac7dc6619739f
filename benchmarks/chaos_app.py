"""The app and worker process of the chaos harness (``benchmarks/chaos.py``).

As a script: ``chaos_app.py SPEC_JSON`` runs a worker until SIGTERM (or ``kill -9``), with the
store, lock timeout and poison threshold from SPEC_JSON. Every activity execution appends a
line (instance, task) to a file per process in SPEC_JSON's ``marks`` directory, so the harness
counts re-executions; ``crash`` and the orchestrator ``crashes`` kill their process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot

app = ot.App()
#: The exit code of a worker killed by the poison activity or orchestrator.
POISON_EXIT = 17
MARKS: Path | None = None


def _mark(ctx: ot.ActivityContext) -> None:
    if MARKS is not None:
        with open(MARKS / f"{os.getpid()}.log", "a") as f:
            f.write(f"{ctx.instance_id} {ctx.task_id}\n")


@app.activity
def double(ctx: ot.ActivityContext, value: int) -> int:
    _mark(ctx)
    return value * 2


@app.activity
def crash(ctx: ot.ActivityContext, _: Any) -> None:
    _mark(ctx)
    os._exit(POISON_EXIT)


@app.orchestrator
def sequence(ctx: ot.OrchestrationContext, n: int) -> Any:
    total = n
    for _ in range(3):
        total = yield ctx.call_activity(double, input=total)
    return total


@app.orchestrator
def fan_out(ctx: ot.OrchestrationContext, n: int) -> Any:
    values = yield ot.when_all([ctx.call_activity(double, input=n + i) for i in range(5)])
    return sum(values)


@app.orchestrator
def timer(ctx: ot.OrchestrationContext, n: int) -> Any:
    yield ctx.create_timer(timedelta(milliseconds=200))
    return (yield ctx.call_activity(double, input=n))


@app.orchestrator
def parent(ctx: ot.OrchestrationContext, n: int) -> Any:
    return (yield ctx.call_sub_orchestrator(sequence, input=n)) + 1


@app.orchestrator
def calls_crash(ctx: ot.OrchestrationContext, _: Any) -> Any:
    try:
        yield ctx.call_activity(crash)
    except ot.TaskFailedError as exc:
        return ["caught", exc.details.error_type]
    return "not failed"


@app.orchestrator
def crashes(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_activity(double, input=1)
    os._exit(POISON_EXIT)


@app.orchestrator
def waits(ctx: ot.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


#: (orchestrator, expected output for input n) of the ordinary workloads.
WORKLOADS = {
    "sequence": lambda n: n * 8,
    "fan_out": lambda n: sum((n + i) * 2 for i in range(5)),
    "timer": lambda n: n * 2,
    "parent": lambda n: n * 8 + 1,
}


def open_store(spec: dict[str, Any]) -> ot.StorageProvider:
    provider: ot.StorageProvider
    if spec["kind"] == "postgres":
        from ostinato_postgres import PostgresProvider

        provider = PostgresProvider(spec["dsn"], task_hub=spec["task_hub"])
    elif spec["kind"] == "azure":
        from ostinato_azure import AzureStorageProvider

        settings = {k: spec[k] for k in ("partition_count", "lease_duration") if k in spec}
        provider = AzureStorageProvider(
            spec["connection_string"], task_hub=spec["task_hub"], **settings
        )
    else:
        from ostinato.sqlite import SqliteProvider

        provider = SqliteProvider(spec["path"])
    provider.setup()
    return provider


def main() -> None:
    global MARKS
    spec: dict[str, Any] = json.loads(sys.argv[1])
    MARKS = Path(spec["marks"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    provider = open_store(spec)
    with ot.Worker(
        app,
        provider,
        lock_timeout=timedelta(seconds=spec["lock_timeout"]),
        max_delivery_attempts=spec["max_delivery_attempts"],
        max_poll_interval=0.1,
    ):
        print("ready", flush=True)
        stop.wait()
    provider.close()


if __name__ == "__main__":
    main()
