"""End-to-end scenarios with a real worker on a SQLite file (DESIGN §5)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.history import EventType
from ostinato.sqlite import SqliteProvider

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _input: Any) -> Any:
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs


@app.activity
def square(ctx: ot.ActivityContext, n: int) -> int:
    return n * n


@app.orchestrator
def fan_out_fan_in(ctx: ot.OrchestrationContext, count: int) -> Any:
    results = yield ot.when_all([ctx.call_activity(square, input=i) for i in range(count)])
    return sum(results)


@app.orchestrator
def sleeper(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    before = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - before).total_seconds()


@app.orchestrator
def approval(ctx: ot.OrchestrationContext, _input: Any) -> Any:
    answer = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=30))
    winner = yield ot.when_any([answer, timeout])
    return {"approved": answer.get_result()} if winner is answer else "timed out"


@app.orchestrator
def parent(ctx: ot.OrchestrationContext, _input: Any) -> Any:
    a = yield ctx.call_sub_orchestrator(hello_cities)
    b = yield ctx.call_sub_orchestrator(fan_out_fan_in, input=4)
    return [a, b]


@app.orchestrator
def counter(ctx: ot.OrchestrationContext, n: int) -> Any:
    if n >= 5:
        return n
    yield ctx.call_activity(square, input=n)
    ctx.continue_as_new(n + 1)
    return None


@pytest.fixture
def sqlite_provider(db_path: Path) -> Iterator[SqliteProvider]:
    provider = SqliteProvider(db_path)  # synchronous=FULL, the default
    yield provider
    provider.close()


@pytest.fixture
def client(sqlite_provider: SqliteProvider) -> ot.Client:
    return ot.Client(sqlite_provider)


@pytest.fixture
def worker(sqlite_provider: SqliteProvider) -> Iterator[ot.Worker]:
    with ot.Worker(app, sqlite_provider, max_poll_interval=0.05) as w:
        yield w


def _finish(client: ot.Client, orchestrator: Any, **kwargs: Any) -> ot.OrchestrationState:
    instance_id = client.schedule_new_orchestration(orchestrator, **kwargs)
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    return state


def test_hello_cities(client: ot.Client, worker: ot.Worker) -> None:
    state = _finish(client, hello_cities)
    assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    types = [e.event_type for e in client.get_orchestration_history(state.instance_id)]
    assert types[:4] == [
        EventType.EXECUTION_STARTED,
        EventType.ORCHESTRATOR_STARTED,
        EventType.TASK_SCHEDULED,
        EventType.ORCHESTRATOR_COMPLETED,
    ]
    assert types.count(EventType.TASK_SCHEDULED) == 3
    assert types.count(EventType.TASK_COMPLETED) == 3
    assert types[-1] is EventType.EXECUTION_COMPLETED


def test_many_hello_cities_at_once(client: ot.Client, worker: ot.Worker) -> None:
    ids = [client.schedule_new_orchestration(hello_cities) for _ in range(200)]
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in(client: ot.Client, worker: ot.Worker) -> None:
    assert _finish(client, fan_out_fan_in, input=40).output == sum(i * i for i in range(40))


def test_durable_timer_waits_its_time(client: ot.Client, worker: ot.Worker) -> None:
    started = time.monotonic()
    state = _finish(client, sleeper, input=0.6)
    assert time.monotonic() - started >= 0.6
    assert state.output >= 0.6


def test_external_event_with_timeout(client: ot.Client, worker: ot.Worker) -> None:
    instance_id = client.schedule_new_orchestration(approval)
    client.wait_for_orchestration_start(instance_id, timeout=10)
    client.raise_orchestration_event(instance_id, "approval", data={"by": "Ada"})
    state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == {"approved": {"by": "Ada"}}


def test_sub_orchestrations(client: ot.Client, worker: ot.Worker) -> None:
    state = _finish(client, parent)
    assert state.output == [["Hello Tokyo!", "Hello Seattle!", "Hello London!"], 14]


def test_continue_as_new_keeps_history_bounded(client: ot.Client, worker: ot.Worker) -> None:
    state = _finish(client, counter, input=0)
    assert state.output == 5
    history = client.get_orchestration_history(state.instance_id)
    assert sum(e.event_type is EventType.EXECUTION_STARTED for e in history) == 1


def test_terminate_suspend_resume_and_purge(client: ot.Client, worker: ot.Worker) -> None:
    instance_id = client.schedule_new_orchestration(approval)
    client.wait_for_orchestration_start(instance_id, timeout=10)
    client.suspend_orchestration(instance_id)
    client.raise_orchestration_event(instance_id, "approval", data=1)
    deadline = time.monotonic() + 10
    while client.get_orchestration_state(instance_id).runtime_status is not (  # type: ignore[union-attr]
        ot.OrchestrationStatus.SUSPENDED
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client.terminate_orchestration(instance_id, output="stop")
    state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.runtime_status is ot.OrchestrationStatus.TERMINATED
    assert client.purge_orchestration(instance_id).deleted_instance_count == 1
    assert client.get_orchestration_state(instance_id) is None


def test_client_and_worker_on_separate_providers(db_path: Path) -> None:
    """Two provider objects on one file (as two processes would have) still cooperate."""
    worker_side = SqliteProvider(db_path)
    client = ot.Client(SqliteProvider(db_path))
    with ot.Worker(app, worker_side, max_poll_interval=0.05):
        state = _finish(client, hello_cities)
    assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    worker_side.close()


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_hello_cities_with_sqlites_own_sync(db_path: Path, synchronous: str) -> None:
    provider = SqliteProvider(db_path, synchronous=synchronous, group_commit=False)
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        ids = [client.schedule_new_orchestration(hello_cities) for _ in range(20)]
        for instance_id in ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    provider.close()
