"""A worker process for the multi-process tests: ``python azure_worker_process.py CONN HUB
[MODE]``.

Runs until its stdin closes (or it is killed); prints ``ready`` once it takes work. ``MODE``:
``fast`` (the default: 3 s leases, 10 s locks), ``defaults`` (the provider's and the worker's
default settings), ``hang`` (defaults, and its activities never return: a worker to kill).
"""

from __future__ import annotations

import logging
import sys
import time

import ostinato as ot
from ostinato_azure import AzureStorageProvider

app = ot.App()


HANG = len(sys.argv) > 3 and sys.argv[3] == "hang"


@app.activity
def square(ctx: ot.ActivityContext, n: int) -> int:
    time.sleep(600 if HANG else 0.05)
    return n * n


@app.orchestrator
def sum_of_squares(ctx: ot.OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    """Fan out n squares, then add one more sequentially: n + 1 activities."""
    squares = yield ot.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    extra = yield ctx.call_activity(square, input=n)
    return sum(squares) + extra


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s %(message)s")
    connection_string, hub = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "fast"
    if mode == "fast":
        provider = AzureStorageProvider(connection_string, hub, lease_duration=3.0)
        worker = ot.Worker(app, provider, lock_timeout=ot_timedelta(10), max_poll_interval=0.2)
    else:
        provider = AzureStorageProvider(connection_string, hub)
        worker = ot.Worker(app, provider, max_poll_interval=0.2)
    with worker:
        print("ready", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    provider.close()


def ot_timedelta(seconds: float):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=seconds)


if __name__ == "__main__":
    main()
