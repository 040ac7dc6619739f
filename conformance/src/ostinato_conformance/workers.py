"""The small app the contract tests run end to end, and a worker runner with test settings."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import ostinato as ot
from ostinato.provider import StorageProvider

contract_app = ot.App()

#: How many times each (instance id, activity input) ran, across workers.
activity_runs: Counter[tuple[str, str]] = Counter()
_runs_mutex = threading.Lock()


@contract_app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    """Greets a city and counts the run."""
    with _runs_mutex:
        activity_runs[(ctx.instance_id, city)] += 1
    return f"Hello {city}!"


@contract_app.activity
def echo_activity(ctx: ot.ActivityContext, value: Any) -> Any:
    """Returns its input unchanged."""
    return value


@contract_app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
    """Three greetings in sequence (DESIGN §5 HelloCities)."""
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(say_hello, input=city)))
    return outputs


@contract_app.orchestrator
def echo(ctx: ot.OrchestrationContext, value: Any) -> Any:
    """Passes its input through an activity and returns it."""
    return (yield ctx.call_activity(echo_activity, input=value))


@contract_app.orchestrator
def wait_for_go(ctx: ot.OrchestrationContext, _: Any) -> Any:
    """Waits for the external event ``go`` and returns its data."""
    return (yield ctx.wait_for_external_event("go"))


@contract_app.orchestrator
def continue_then_wait(ctx: ot.OrchestrationContext, iteration: Any) -> Any:
    """Waits for ``next``, continues as new once, then waits for ``go`` and returns its data."""
    if not iteration:
        yield ctx.wait_for_external_event("next")
        ctx.continue_as_new(1)
        return None
    return (yield ctx.wait_for_external_event("go"))


@contract_app.orchestrator
def parent_of_continuing_child(ctx: ot.OrchestrationContext, _: Any) -> Any:
    """Starts ``continue_then_wait`` as ``<id>-child`` and returns its result."""
    child = f"{ctx.instance_id}-child"
    return (yield ctx.call_sub_orchestrator(continue_then_wait, instance_id=child))


@contract_app.orchestrator
def sleep_then_report(ctx: ot.OrchestrationContext, milliseconds: int) -> Any:
    """Sleeps on a durable timer; returns the due time and the time it woke (ISO text)."""
    due = ctx.current_utc_datetime + timedelta(milliseconds=milliseconds)
    yield ctx.create_timer(due)
    return [due.isoformat(), ctx.current_utc_datetime.isoformat()]


@contract_app.orchestrator
def parent_of_waiting_child(ctx: ot.OrchestrationContext, _: Any) -> Any:
    """Starts ``wait_for_go`` as ``<id>-child`` and returns its result."""
    child = f"{ctx.instance_id}-child"
    return (yield ctx.call_sub_orchestrator(wait_for_go, instance_id=child))


@contract_app.orchestrator
def parent_after_activity(ctx: ot.OrchestrationContext, value: Any) -> Any:
    """Runs an activity, then ``echo`` as ``<id>-child``; returns both results."""
    first = yield ctx.call_activity(echo_activity, input=value)
    child = f"{ctx.instance_id}-child"
    second = yield ctx.call_sub_orchestrator(echo, input=value, instance_id=child)
    return [first, second]


@contextmanager
def running_worker(
    provider: StorageProvider,
    app: ot.App = contract_app,
    *,
    lock_timeout: timedelta = timedelta(seconds=30),
    **options: Any,
) -> Iterator[ot.Worker]:
    """A started worker with settings that suit tests (fast polling, short grace period)."""
    options.setdefault("max_poll_interval", 0.05)
    options.setdefault("grace_period", 2.0)
    worker = ot.Worker(app, provider, lock_timeout=lock_timeout, **options)
    with worker:
        yield worker
