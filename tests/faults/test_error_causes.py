"""Errors name their cause: an exception raised while replaying is the instance's failure
(type, message, stack), not a nondeterminism; a task used without ``yield`` gets a hint."""

from __future__ import annotations

from typing import Any

import ostinato as ot

from .conftest import WorkerFactory


def test_an_exception_raised_in_replay_is_the_failure(
    client: ot.Client, worker: WorkerFactory
) -> None:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: int) -> int:
        return value

    def check_config(replaying: bool) -> None:
        if replaying:
            raise KeyError("setting 'region' is missing")

    @app.orchestrator
    def replays_badly(ctx: ot.OrchestrationContext, _: Any) -> Any:
        check_config(ctx.is_replaying)
        first = yield ctx.call_activity(echo, input=1)
        return first + (yield ctx.call_activity(echo, input=2))

    with worker(app, cache_size=0):  # every step replays the history
        state = client.wait_for_orchestration_completion(
            client.schedule_new_orchestration(replays_badly), timeout=30
        )
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    details = state.failure_details
    assert details is not None
    assert (details.error_type, details.message) == ("KeyError", "\"setting 'region' is missing\"")
    assert details.stack_trace is not None and "check_config" in details.stack_trace


def test_a_task_used_without_yield_gets_a_hint(client: ot.Client, worker: WorkerFactory) -> None:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: int) -> int:
        return value

    @app.orchestrator
    def adds(ctx: ot.OrchestrationContext, _: Any) -> Any:
        value = ctx.call_activity(echo, input=1)  # missing yield
        return value + 1

    @app.orchestrator
    def returns(ctx: ot.OrchestrationContext, _: Any) -> Any:
        return ctx.call_activity(echo, input=1)  # missing yield

    with worker(app):
        for orchestrator in (adds, returns):
            state = client.wait_for_orchestration_completion(
                client.schedule_new_orchestration(orchestrator), timeout=30
            )
            assert state.runtime_status is ot.OrchestrationStatus.FAILED
            assert state.failure_details is not None
            assert "did you forget `yield`?" in state.failure_details.message, orchestrator
