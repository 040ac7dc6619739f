"""A task hub caught mid-flight, for export/import/migrate tests.

:func:`start_in_flight` runs a worker until every instance waits on something (a durable
timer, an external event, an activity the worker was stopped in, a sub-orchestration), one
has completed and an entity holds state, then stops the worker. :func:`finish` lets them all
complete wherever the hub has moved to, and checks every result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import ostinato as ot
from ostinato.history import TaskScheduled, TimerCreated

app = ot.App()

#: Set while activities may finish: the source's worker is stopped inside ``gated``.
GATE = threading.Event()
ENTERED = threading.Event()
TIMER_SECONDS = 12.0


@app.activity
def quick(ctx: ot.ActivityContext, value: str) -> str:
    return f"quick {value}"


@app.activity
def gated(ctx: ot.ActivityContext, value: str) -> str:
    ENTERED.set()
    GATE.wait(timeout=120)
    return f"gated {value}"


@app.orchestrator
def waits_for_timer(ctx: ot.OrchestrationContext, seconds: float) -> Generator[Any, Any, str]:
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "timer done"


@app.orchestrator
def waits_for_event(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
    value = yield ctx.wait_for_external_event("approve")
    return f"approved {value}"


@app.orchestrator
def waits_for_activity(ctx: ot.OrchestrationContext, value: str) -> Generator[Any, Any, Any]:
    first = yield ctx.call_activity(quick, input=value)
    second = yield ctx.call_activity(gated, input=value)
    return [first, second]


@app.orchestrator
def parent(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    result = yield ctx.call_sub_orchestrator(
        waits_for_event, instance_id=f"{ctx.instance_id}-child"
    )
    return ["child", result]


@app.orchestrator
def finished(ctx: ot.OrchestrationContext, value: str) -> Generator[Any, Any, str]:
    result: str = yield ctx.call_activity(quick, input=value)
    return result


@app.entity
def counter(ctx: ot.EntityContext, amount: int | None) -> Any:
    value = ctx.get_state(0)
    if ctx.operation_name == "add":
        ctx.set_state(value + (amount or 0))
    return value


COUNTER = ot.EntityId("counter", "c1")

EXPECTED = {
    "timer": "timer done",
    "event": "approved yes",
    "activity": ["quick 1", "gated 1"],
    "parent": ["child", "approved child"],
    "parent-child": "approved child",
    "done": "quick 0",
}


def _wait_until(check: Any, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _history_has(client: ot.Client, instance_id: str, kind: type, **fields: Any) -> bool:
    try:
        events = client.get_orchestration_history(instance_id)
    except ot.InstanceNotFoundError:
        return False
    return any(
        isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items()) for e in events
    )


def start_in_flight(provider: ot.StorageProvider, timer_seconds: float = TIMER_SECONDS) -> None:
    """Bring ``provider``'s hub to the mid-flight state, then stop its worker."""
    GATE.clear()
    ENTERED.clear()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05, grace_period=0.2):
        client.schedule_new_orchestration(finished, input="0", instance_id="done")
        client.schedule_new_orchestration(waits_for_timer, input=timer_seconds, instance_id="timer")
        client.schedule_new_orchestration(waits_for_event, instance_id="event")
        client.schedule_new_orchestration(waits_for_activity, input="1", instance_id="activity")
        client.schedule_new_orchestration(parent, instance_id="parent")
        client.signal_entity(COUNTER, "add", 5)
        client.wait_for_orchestration_completion("done", timeout=30)
        _wait_until(lambda: ENTERED.is_set(), what="the gated activity to start")
        _wait_until(
            lambda: _history_has(client, "timer", TimerCreated), what="the timer to be created"
        )
        _wait_until(
            lambda: _history_has(client, "activity", TaskScheduled, name="gated"),
            what="the gated activity to be scheduled",
        )
        for iid in ("event", "parent-child"):
            _wait_until(
                lambda iid=iid: _status(client, iid) is ot.OrchestrationStatus.RUNNING,
                what=f"{iid} to run",
            )
        _wait_until(lambda: _entity_state(client) == 5, what="the entity's state")
    for iid in ("timer", "event", "activity", "parent", "parent-child"):
        assert _status(client, iid) is ot.OrchestrationStatus.RUNNING, iid


def _status(client: ot.Client, instance_id: str) -> ot.OrchestrationStatus | None:
    state = client.get_orchestration_state(instance_id)
    return None if state is None else state.runtime_status


def _entity_state(client: ot.Client) -> Any:
    entity = client.get_entity(COUNTER)
    return None if entity is None else entity.state


def finish(provider: ot.StorageProvider, timeout: float = 60.0) -> dict[str, Any]:
    """Run a worker on ``provider`` until every instance completed; return the outputs."""
    GATE.set()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        client.raise_orchestration_event("event", "approve", data="yes")
        client.raise_orchestration_event("parent-child", "approve", data="child")
        client.signal_entity(COUNTER, "add", 1)
        outputs: dict[str, Any] = {}
        for iid in EXPECTED:
            state = client.wait_for_orchestration_completion(iid, timeout=timeout)
            assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, (
                iid,
                state.failure_details,
            )
            outputs[iid] = state.output
        _wait_until(lambda: _entity_state(client) == 6, what="the entity's new state")
    return outputs
