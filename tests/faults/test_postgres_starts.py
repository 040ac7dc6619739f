"""PostgreSQL workers never fail to start while others run: a set-up hub is only read at
start (no DDL on its busy tables), and a setup the server rolls back is run again."""

from __future__ import annotations

import threading
from typing import Any

import ostinato as ot
import pytest

from .conftest import StoreFactory


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["postgres"], indirect=True)
def test_40_worker_starts_beside_a_busy_worker_all_succeed(
    make_store: StoreFactory, client: ot.Client
) -> None:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: int) -> int:
        return value

    @app.orchestrator
    def busy(ctx: ot.OrchestrationContext, n: int) -> Any:
        total = 0
        for i in range(5):
            total += yield ctx.call_activity(echo, input=i)
        return total

    stop = threading.Event()

    def keep_busy() -> None:  # new work all along, so the tables are written throughout
        while not stop.is_set():
            for n in range(20):
                client.schedule_new_orchestration(busy, input=n)
            stop.wait(0.05)

    failures: list[BaseException] = []
    started = 0
    with ot.Worker(app, make_store(), max_poll_interval=0.05):
        feeder = threading.Thread(target=keep_busy, daemon=True)
        feeder.start()
        try:
            for _ in range(40):
                try:  # a new provider each time: a fresh process's first setup()
                    provider = make_store(pool_min_size=0)
                    with ot.Worker(ot.App(), provider, grace_period=1):
                        started += 1
                except Exception as exc:
                    failures.append(exc)
        finally:
            stop.set()
            feeder.join()
    assert failures == [] and started == 40
