"""Wake-ups on PostgreSQL: with LISTEN/NOTIFY connected, idle workers do not poll for other
processes' writes (the notifications wake them), and timers still fire on time because the
worker sleeps until the ones it committed come due."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import ostinato as ot
from ostinato_postgres import PostgresProvider

from .conftest import ProviderFactory

app = ot.App()

#: Longer than any test here waits: an idle worker that relied on polling would miss them.
LONG_POLL = 30.0


@app.activity
def hello(ctx: ot.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


@app.orchestrator
def greet(ctx: ot.OrchestrationContext, name: str) -> Any:
    return (yield ctx.call_activity(hello, input=name))


@app.orchestrator
def nap_then_greet(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (yield ctx.call_activity(hello, input="timer"))


def _listening(provider: PostgresProvider) -> None:
    assert provider.wait_listening(timeout=30)
    assert provider.changes.cross_process


def _count_empty_polls(provider: PostgresProvider) -> list[int]:
    empty = [0]
    for name in ("lock_next_orchestration_work_items", "lock_next_activity_work_items"):
        method = getattr(provider, name)

        def counting(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            items = _method(*args, **kwargs)
            if not items:
                empty[0] += 1
            return items

        setattr(provider, name, counting)
    return empty


def test_another_processs_start_wakes_an_idle_worker_that_does_not_poll(
    make_provider: ProviderFactory,
) -> None:
    worker_side = make_provider()
    client_side = make_provider(task_hub=worker_side.task_hub)  # its own connections
    empty = _count_empty_polls(worker_side)
    with ot.Worker(app, worker_side, max_poll_interval=LONG_POLL):
        _listening(worker_side)
        time.sleep(0.3)  # the worker settles into its idle wait
        before = empty[0]
        time.sleep(1.0)
        assert empty[0] - before <= 2  # a back-off from 1 ms would poll about ten times
        client = ot.Client(client_side)
        started = time.monotonic()
        instance_id = client.schedule_new_orchestration(greet, input="there")
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
        assert state.output == "Hello there!"
        assert time.monotonic() - started < 10  # woken by NOTIFY, not by the 30 s poll


def test_a_timer_fires_on_time_without_polling(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=LONG_POLL):
        _listening(provider)
        started = time.monotonic()
        instance_id = client.schedule_new_orchestration(nap_then_greet, input=0.5)
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
        elapsed = time.monotonic() - started
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.output == "Hello timer!"
    assert 0.5 <= elapsed < 10  # due-time wake-up, not the 30 s poll


def test_without_a_listener_workers_poll_as_before(make_provider: ProviderFactory) -> None:
    provider = make_provider(listen=False)
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.2):
        assert not provider.changes.cross_process
        instance_id = client.schedule_new_orchestration(nap_then_greet, input=0.2)
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
