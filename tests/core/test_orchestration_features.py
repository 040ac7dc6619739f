"""Every orchestration-context feature, end to end on the in-memory provider with a real worker."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import ostinato as ot
import pytest
from ostinato.history import (
    ContinueAsNew,
    ExecutionCompleted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

from .conftest import WorkerFactory, run_to_completion

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs


def test_hello_cities_runs_three_activities_in_order(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, hello_cities)
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    history = client.get_orchestration_history(state.instance_id)
    names = [type(e).__name__ for e in history]
    assert names == [
        "ExecutionStarted",
        "OrchestratorStarted", "TaskScheduled", "OrchestratorCompleted",
        "TaskCompleted",
        "OrchestratorStarted", "TaskScheduled", "OrchestratorCompleted",
        "TaskCompleted",
        "OrchestratorStarted", "TaskScheduled", "OrchestratorCompleted",
        "TaskCompleted",
        "OrchestratorStarted", "OrchestratorCompleted",
        "ExecutionCompleted",
    ]  # fmt: skip
    timestamps = [e.timestamp for e in history]
    assert timestamps == sorted(timestamps)


@dataclass(frozen=True)
class Course:
    title: str
    credits: int


@app.activity
def recommend(ctx: ot.ActivityContext, query: tuple[str, int]) -> list[Course]:
    major, year = query
    assert isinstance(query, tuple)
    return [Course(f"{major} {year}01", 3), Course(f"{major} {year}02", 4)]


@app.orchestrator
def course_recommendations(ctx: ot.OrchestrationContext, query: tuple[str, int]) -> Any:
    courses = yield ctx.call_activity(recommend, input=query)
    assert all(isinstance(c, Course) for c in courses)
    return [c.title for c in courses], sum(c.credits for c in courses)


def test_tuple_and_dataclass_payloads_round_trip_by_annotation(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, course_recommendations, input=("ComputerScience", 2))
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    assert state.output == [["ComputerScience 201", "ComputerScience 202"], 7]


@app.activity
def fail_with(ctx: ot.ActivityContext, message: str) -> None:
    raise ValueError(message)


@app.orchestrator
def catches_activity_failure(ctx: ot.OrchestrationContext, _: Any) -> Any:
    try:
        yield ctx.call_activity(fail_with, input="boom")
    except ot.TaskFailedError as exc:
        return [
            exc.details.error_type,
            exc.details.message,
            "fail_with" in (exc.details.stack_trace or ""),
        ]
    return "not reached"


def test_activity_failure_reaches_orchestrator_with_type_message_and_stack(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, catches_activity_failure)
    assert state.output == ["ValueError", "boom", True]


@app.orchestrator
def lets_activity_failure_escape(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_activity(fail_with, input="unhandled")


def test_unhandled_failure_fails_instance_with_details(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, lets_activity_failure_escape)
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    details = state.failure_details
    assert details is not None
    assert details.error_type == "TaskFailedError"
    assert "unhandled" in details.message
    assert details.inner is not None and details.inner.error_type == "ValueError"
    assert details.is_caused_by(ValueError)
    with pytest.raises(ot.OrchestrationFailedError, match="unhandled"):
        ot.raise_if_failed(state)


@app.orchestrator
def plain_raise(ctx: ot.OrchestrationContext, _: Any) -> Any:
    raise KeyError("missing")


def test_orchestrator_exception_without_yield_fails_instance(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, plain_raise)
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None and state.failure_details.error_type == "KeyError"


@app.orchestrator
def child(ctx: ot.OrchestrationContext, n: int) -> Any:
    doubled = yield ctx.call_activity(double, input=n)
    if n < 0:
        raise RuntimeError(f"negative {n}")
    return {"n": n, "doubled": doubled, "parent": ctx.parent_instance_id}


@app.activity
def double(ctx: ot.ActivityContext, n: int) -> int:
    return n * 2


@app.orchestrator
def parent(ctx: ot.OrchestrationContext, _: Any) -> Any:
    given = yield ctx.call_sub_orchestrator(child, input=1, instance_id=f"{ctx.instance_id}-child")
    generated = yield ctx.call_sub_orchestrator(child, input=2)
    try:
        yield ctx.call_sub_orchestrator(child, input=-1)
    except ot.TaskFailedError as exc:
        failure = exc.details.message
    return [given, generated, failure]


def test_sub_orchestrations_with_given_and_generated_ids(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, parent, instance_id="parent-1")
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    given, generated, failure = state.output
    assert given == {"n": 1, "doubled": 2, "parent": "parent-1"}
    assert generated == {"n": 2, "doubled": 4, "parent": "parent-1"}
    assert "negative -1" in failure
    child_state = client.get_orchestration_state("parent-1-child")
    assert child_state is not None and child_state.parent_instance_id == "parent-1"
    created = [
        e for e in client.get_orchestration_history("parent-1")
        if isinstance(e, SubOrchestrationInstanceCreated)
    ]  # fmt: skip
    assert created[0].instance_id == "parent-1-child"
    assert created[1].instance_id != created[2].instance_id


@app.orchestrator
def sleeper(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    before = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    after = ctx.current_utc_datetime
    return (after - before).total_seconds()


def test_durable_timer_never_fires_early(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        started = time.monotonic()
        state = run_to_completion(client, sleeper, input=0.3)
        elapsed = time.monotonic() - started
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert elapsed >= 0.3
    assert state.output >= 0.3
    history = client.get_orchestration_history(state.instance_id)
    created = next(e for e in history if isinstance(e, TimerCreated))
    fired = next(e for e in history if isinstance(e, TimerFired))
    assert fired.fire_at == created.fire_at
    completed_step = [e for e in history if type(e).__name__ == "OrchestratorStarted"][-1]
    assert completed_step.timestamp >= created.fire_at


@app.orchestrator
def waits_for_events(ctx: ot.OrchestrationContext, _: Any) -> Any:
    first = yield ctx.wait_for_external_event("Approval")
    second = yield ctx.wait_for_external_event("approval")
    both = yield ot.when_all([ctx.wait_for_external_event("x"), ctx.wait_for_external_event("X")])
    return [first, second, both]


def test_external_events_buffered_case_insensitive_in_arrival_order(
    client: ot.Client, worker: WorkerFactory
) -> None:
    # All events are raised before the orchestration even starts running.
    instance_id = client.schedule_new_orchestration(waits_for_events)
    for name, data in [("APPROVAL", 1), ("x", "a"), ("Approval", 2), ("x", "b")]:
        client.raise_orchestration_event(instance_id, name, data=data)
    with worker(app):
        state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == [1, 2, ["a", "b"]]


@app.orchestrator
def approval_with_timeout(ctx: ot.OrchestrationContext, timeout_s: float) -> Any:
    approval = ctx.wait_for_external_event("approve")
    timeout = ctx.create_timer(timedelta(seconds=timeout_s))
    winner = yield ot.when_any([approval, timeout])
    if winner is approval:
        return f"approved by {approval.get_result()}"
    return "timed out"


def test_when_any_event_versus_timeout(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        timed_out = run_to_completion(client, approval_with_timeout, input=0.2)
        instance_id = client.schedule_new_orchestration(approval_with_timeout, input=30)
        client.wait_for_orchestration_start(instance_id)
        client.raise_orchestration_event(instance_id, "approve", data="alice")
        approved = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert timed_out.output == "timed out"
    assert approved.output == "approved by alice"


@app.orchestrator
def fan_out(ctx: ot.OrchestrationContext, n: int) -> Any:
    results = yield ot.when_all([ctx.call_activity(double, input=i) for i in range(n)])
    return sum(results)


def test_fan_out_fan_in(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        state = run_to_completion(client, fan_out, input=200)
    assert state.output == sum(2 * i for i in range(200))


def test_when_all_of_nothing_and_when_any_needs_tasks() -> None:
    assert ot.when_all([]).get_result() == []
    with pytest.raises(ValueError):
        ot.when_any([])


attempts: dict[str, int] = {}
attempts_lock = threading.Lock()


@app.activity
def flaky(ctx: ot.ActivityContext, key_and_failures: tuple[str, int]) -> str:
    key, failures = key_and_failures
    with attempts_lock:
        attempts[key] = attempts.get(key, 0) + 1
        n = attempts[key]
    if n <= failures:
        raise ConnectionError(f"attempt {n} failed")
    return f"succeeded on attempt {n}"


@app.orchestrator
def retrying(ctx: ot.OrchestrationContext, args: tuple[str, int, int]) -> Any:
    key, failures, max_attempts = args
    policy = ot.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20),
        max_number_of_attempts=max_attempts,
        backoff_coefficient=2.0,
    )
    try:
        return (yield ctx.call_activity(flaky, input=(key, failures), retry_policy=policy))
    except ot.TaskFailedError as exc:
        return f"gave up: {exc.details.message}"


def test_retry_policy_retries_with_durable_timers_then_succeeds(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, retrying, input=("ok", 2, 5))
    assert state.output == "succeeded on attempt 3"
    history = client.get_orchestration_history(state.instance_id)
    timers = [e for e in history if isinstance(e, TimerCreated)]
    scheduled = [e for e in history if isinstance(e, TaskScheduled)]
    assert len(scheduled) == 3 and len(timers) == 2
    delays = [(t.fire_at - t.timestamp).total_seconds() for t in timers]
    assert delays == pytest.approx([0.02, 0.04], abs=1e-6)  # backoff_coefficient 2


def test_retry_policy_gives_up_after_max_attempts(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        state = run_to_completion(client, retrying, input=("never", 10, 3))
    assert state.output == "gave up: attempt 3 failed"
    assert attempts["never"] == 3


def test_retry_timeout_stops_retries() -> None:
    from datetime import datetime

    policy = ot.RetryPolicy(
        first_retry_interval=timedelta(seconds=1),
        max_number_of_attempts=10,
        retry_timeout=timedelta(seconds=2.5),
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    details = ot.FailureDetails("E", "m")
    assert policy.next_delay(1, t0, t0, details) == timedelta(seconds=1)
    assert policy.next_delay(2, t0, t0 + timedelta(seconds=1), details) == timedelta(seconds=1)
    assert policy.next_delay(3, t0, t0 + timedelta(seconds=2), details) is None
    handled = ot.RetryPolicy(timedelta(seconds=1), 5, handle=lambda d: d.error_type == "Retry")
    assert handled.next_delay(1, t0, t0, details) is None


@app.orchestrator
def counter(ctx: ot.OrchestrationContext, state: dict[str, int]) -> Any:
    n, limit = state["n"], state["limit"]
    ctx.set_custom_status({"n": n})
    yield ctx.create_timer(timedelta(milliseconds=1))
    if n + 1 < limit:
        ctx.continue_as_new({"n": n + 1, "limit": limit})
        return None
    return n + 1


def test_continue_as_new_keeps_history_bounded(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        state = run_to_completion(client, counter, input={"n": 0, "limit": 20})
    assert state.output == 20
    assert state.custom_status == {"n": 19}
    history = client.get_orchestration_history(state.instance_id)
    assert len(history) <= 10  # only the last execution's events
    assert isinstance(history[-1], ExecutionCompleted)


@app.orchestrator
def carries_events(ctx: ot.OrchestrationContext, generation: int) -> Any:
    if generation == 0:
        yield ctx.wait_for_external_event("go")
        ctx.continue_as_new(1, save_events=True)
        return None
    return (yield ctx.wait_for_external_event("carried"))


def test_continue_as_new_with_save_events_carries_unconsumed_events(
    client: ot.Client, worker: WorkerFactory
) -> None:
    instance_id = client.schedule_new_orchestration(carries_events, input=0)
    client.raise_orchestration_event(instance_id, "carried", data="kept")
    client.raise_orchestration_event(instance_id, "go")
    with worker(app):
        state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == "kept"
    history = client.get_orchestration_history(instance_id)
    assert not any(isinstance(e, ContinueAsNew) for e in history)


@app.orchestrator
def uuids(ctx: ot.OrchestrationContext, _: Any) -> Any:
    first = [ctx.new_uuid(), ctx.new_uuid()]
    yield ctx.call_activity(double, input=1)
    return [*first, ctx.new_uuid()]


def test_new_uuid_is_deterministic_across_replays(client: ot.Client, worker: WorkerFactory) -> None:
    # cache_size=0 forces a full replay on every step, so the first two uuids are recomputed.
    with worker(app, cache_size=0):
        state = run_to_completion(client, uuids, instance_id="uuid-1")
    a, b, c = state.output
    assert len({a, b, c}) == 3
    from ostinato.orchestration.engine import OrchestrationRun

    replayed = OrchestrationRun(app, "uuid-1", ot.JsonDataConverter())
    replayed.replay(client.get_orchestration_history("uuid-1"))
    assert replayed.output == client.provider.get_instance("uuid-1").output  # type: ignore[union-attr]


replay_log: list[tuple[str, bool]] = []


@app.orchestrator
def logs_once(ctx: ot.OrchestrationContext, _: Any) -> Any:
    logger = ctx.create_replay_safe_logger(logging.getLogger("tests.replay_safe"))
    logger.warning("before activity")
    replay_log.append(("before", ctx.is_replaying))
    yield ctx.call_activity(double, input=2)
    logger.warning("after activity")
    replay_log.append(("after", ctx.is_replaying))
    return "done"


def test_is_replaying_and_replay_safe_logger(
    client: ot.Client, worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    replay_log.clear()
    with caplog.at_level(logging.WARNING, logger="tests.replay_safe"), worker(app, cache_size=0):
        run_to_completion(client, logs_once)
    assert replay_log == [("before", False), ("before", True), ("after", False)]
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.replay_safe"]
    assert messages == ["before activity", "after activity"]


@app.orchestrator
def long_parent(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_sub_orchestrator(long_child, instance_id=f"{ctx.instance_id}-sub")


@app.orchestrator
def long_child(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("never")


def test_terminate_is_recursive(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        client.schedule_new_orchestration(long_parent, instance_id="tp")
        client.wait_for_orchestration_start("tp")
        _wait_until(lambda: client.get_orchestration_state("tp-sub") is not None)
        client.wait_for_orchestration_start("tp-sub")
        client.terminate_orchestration("tp", output="stopped")
        parent_state = client.wait_for_orchestration_completion("tp", timeout=10)
        child_state = client.wait_for_orchestration_completion("tp-sub", timeout=10)
    assert parent_state.runtime_status is ot.OrchestrationStatus.TERMINATED
    assert parent_state.output == "stopped"
    assert child_state.runtime_status is ot.OrchestrationStatus.TERMINATED


def test_terminate_non_recursive_leaves_child_running(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        client.schedule_new_orchestration(long_parent, instance_id="tn")
        _wait_until(lambda: client.get_orchestration_state("tn-sub") is not None)
        client.terminate_orchestration("tn", recursive=False)
        client.wait_for_orchestration_completion("tn", timeout=10)
        time.sleep(0.1)
        child_state = client.get_orchestration_state("tn-sub")
    assert child_state is not None and child_state.runtime_status is ot.OrchestrationStatus.RUNNING


@app.orchestrator
def two_events(ctx: ot.OrchestrationContext, _: Any) -> Any:
    a = yield ctx.wait_for_external_event("a")
    b = yield ctx.wait_for_external_event("b")
    return [a, b]


def test_suspend_holds_events_until_resume(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        instance_id = client.schedule_new_orchestration(two_events)
        client.wait_for_orchestration_start(instance_id)
        client.suspend_orchestration(instance_id, reason="maintenance")
        _wait_until(
            lambda: (
                client.get_orchestration_state(instance_id).runtime_status  # type: ignore[union-attr]
                is ot.OrchestrationStatus.SUSPENDED
            )
        )
        client.raise_orchestration_event(instance_id, "a", data=1)
        client.raise_orchestration_event(instance_id, "b", data=2)
        time.sleep(0.2)
        held = client.get_orchestration_state(instance_id)
        assert held is not None and held.runtime_status is ot.OrchestrationStatus.SUSPENDED
        client.resume_orchestration(instance_id)
        state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == [1, 2]


@app.orchestrator
def sends_event(ctx: ot.OrchestrationContext, target: str) -> Any:
    ctx.send_event(target, "a", data="from-sender")
    ctx.send_event(target, "b", data="second")
    return "sent"


def test_send_event_between_instances(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        receiver = client.schedule_new_orchestration(two_events)
        client.wait_for_orchestration_start(receiver)
        run_to_completion(client, sends_event, input=receiver)
        state = client.wait_for_orchestration_completion(receiver, timeout=10)
    assert state.output == ["from-sender", "second"]


@app.orchestrator
def yields_garbage(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield 42


@app.orchestrator
def bad_input_to_activity(ctx: ot.OrchestrationContext, _: Any) -> Any:
    try:
        yield ctx.call_activity(double, input=object())
    except ot.SerializationError as exc:
        return f"caught: {exc}"


def test_orchestrator_errors_are_clear(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        garbage = run_to_completion(client, yields_garbage)
        unknown = run_to_completion(client, "no_such_orchestrator")
        bad_input = run_to_completion(client, bad_input_to_activity)
    assert garbage.failure_details is not None
    assert "must yield tasks" in garbage.failure_details.message
    assert unknown.failure_details is not None
    assert "No orchestrator named 'no_such_orchestrator'" in unknown.failure_details.message
    assert bad_input.output.startswith(
        "caught: The input of activity 'double' cannot be serialized"
    )
    history = client.get_orchestration_history(bad_input.instance_id)
    assert not any(isinstance(e, TaskScheduled) for e in history)  # nothing was scheduled


@app.orchestrator
def calls_unknown_activity(ctx: ot.OrchestrationContext, _: Any) -> Any:
    try:
        yield ctx.call_activity("not_registered")
    except ot.TaskFailedError as exc:
        return exc.details.message


def test_unregistered_activity_fails_the_task(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        state = run_to_completion(client, calls_unknown_activity)
    assert "No activity named 'not_registered'" in state.output


@app.activity
async def async_hello(ctx: ot.ActivityContext, name: str) -> str:
    import asyncio

    await asyncio.sleep(0.01)
    return f"async {name}"


@app.orchestrator
def uses_async_activity(ctx: ot.OrchestrationContext, _: Any) -> Any:
    return (yield ot.when_all([ctx.call_activity(async_hello, input=str(i)) for i in range(5)]))


def test_async_activities(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        state = run_to_completion(client, uses_async_activity)
    assert state.output == [f"async {i}" for i in range(5)]


def _wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
