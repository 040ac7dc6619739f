"""The app the HTTP API tests serve (also ``ostinato serve http_test_app:app`` from here)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _input: Any) -> Generator[Any, Any, list[str]]:
    """DESIGN §5.1: three sequential activities."""
    outputs: list[str] = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs


@app.orchestrator
def greet(ctx: ot.OrchestrationContext, name: Any) -> Generator[Any, Any, str]:
    """One activity on the input."""
    return (yield ctx.call_activity(say_hello, input=name))


@app.orchestrator
def background_job(ctx: ot.OrchestrationContext, job: Any) -> Generator[Any, Any, Any]:
    """A long-running singleton: runs until it gets the ``finish`` event, returns its data."""
    ctx.set_custom_status({"job": job, "state": "waiting"})
    data = yield ctx.wait_for_external_event("finish")
    return {"job": job, "finished_with": data}


@app.orchestrator
def fail_job(ctx: ot.OrchestrationContext, message: Any) -> None:
    """Fails at once."""
    raise ValueError(f"job failed: {message}")


@app.entity
def counter(ctx: ot.EntityContext, amount: Any) -> Any:
    """A counter: ``add`` (amount), ``get``, ``reset``."""
    value = ctx.get_state(0)
    if ctx.operation_name == "add":
        ctx.set_state(value + amount)
    elif ctx.operation_name == "reset":
        ctx.delete_state()
    return value


@app.orchestrator
def count_to(ctx: ot.OrchestrationContext, key: Any) -> Generator[Any, Any, Any]:
    """Adds 1 to counter ``key`` through the entity and returns the new value."""
    entity = ot.EntityId("counter", key)
    yield ctx.call_entity(entity, "add", 1)
    return (yield ctx.call_entity(entity, "get"))


@app.orchestrator
def nightly_report(ctx: ot.OrchestrationContext, day: Any) -> Generator[Any, Any, Any]:
    """An activity, a short durable timer, a sub-orchestration, then fan-out: a timeline."""
    first = yield ctx.call_activity(say_hello, input=str(day))
    yield ctx.create_timer(timedelta(milliseconds=300))
    cities = yield ctx.call_sub_orchestrator(hello_cities)
    more = yield ot.when_all([ctx.call_activity(say_hello, input=c) for c in ("Oslo", "Lima")])
    return [first, *cities, *more]
