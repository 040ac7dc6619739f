"""Durable entities and critical sections, end to end on the in-memory provider."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import ostinato as ot
import pytest
from ostinato.history import EntityRequest
from ostinato.orchestration.entities import EntityProcessor
from ostinato.provider import OrchestrationMessage

from .conftest import WorkerFactory, run_to_completion

app = ot.App()


@app.entity
def counter(ctx: ot.EntityContext, amount: int | None) -> Any:
    value = ctx.get_state(0)
    if ctx.operation_name == "add":
        ctx.set_state(value + (amount or 0))
    elif ctx.operation_name == "get":
        return value
    elif ctx.operation_name == "reset":
        ctx.delete_state()
    elif ctx.operation_name == "fail":
        ctx.set_state(-999)  # rolled back: the operation raises
        raise ValueError("counter refused")
    elif ctx.operation_name == "forward":
        ctx.signal_entity(ot.EntityId("counter", "forwarded"), "add", amount)
    return None


@app.orchestrator
def uses_counter(ctx: ot.OrchestrationContext, key: str) -> Any:
    entity = ot.EntityId("Counter", key)
    ctx.signal_entity(entity, "add", 5)
    yield ctx.call_entity(entity, "add", 10)
    total = yield ctx.call_entity(entity, "get")
    try:
        yield ctx.call_entity(entity, "fail")
    except ot.TaskFailedError as exc:
        failure = exc.details.message
    after = yield ctx.call_entity(entity, "get")
    return [total, failure, after]


def test_entity_operations_from_orchestrations_and_clients(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, uses_counter, input="k1")
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
        client.signal_entity(ot.EntityId("counter", "k1"), "add", 100)
        _wait(lambda: client.get_entity(ot.EntityId("counter", "k1")).state == 115)  # type: ignore[union-attr]
        client.signal_entity(ot.EntityId("counter", "k1"), "forward", 7)
        _wait(lambda: client.get_entity(ot.EntityId("counter", "forwarded")) is not None)
    total, failure, after = state.output
    assert total == 15
    assert "counter refused" in failure
    assert after == 15  # the failed operation's state change was rolled back
    forwarded = client.get_entity(ot.EntityId("counter", "forwarded"))
    assert forwarded is not None and forwarded.state == 7
    entities = client.query_entities(name="counter")
    assert [str(e.entity_id) for e in entities.items] == ["@counter@forwarded", "@counter@k1"]
    assert all(not s.instance_id.startswith("@") for s in client.query_instances().items)


def test_operations_on_one_entity_run_in_order(client: ot.Client, worker: WorkerFactory) -> None:
    entity = ot.EntityId("counter", "ordered")
    with worker(app):
        for i in range(50):
            client.signal_entity(entity, "add", i)
        _wait(lambda: (client.get_entity(entity) or _none).state == sum(range(50)))
        client.signal_entity(entity, "reset")
        _wait(lambda: not (client.get_entity(entity) or _full).includes_state)


def test_scheduled_signal_is_delivered_at_its_time(
    client: ot.Client, worker: WorkerFactory
) -> None:
    entity = ot.EntityId("counter", "later")
    at = datetime.now(UTC) + timedelta(seconds=0.4)
    with worker(app):
        client.signal_entity(entity, "add", 1, scheduled_time=at)
        time.sleep(0.2)
        assert client.get_entity(entity) is None
        _wait(lambda: client.get_entity(entity) is not None)
    assert datetime.now(UTC) >= at


def test_redelivered_request_is_applied_once() -> None:
    processor = EntityProcessor(app, ot.JsonDataConverter())
    request = EntityRequest(request_id="r1", operation="add", input="3")
    message = OrchestrationMessage(instance_id="@counter@dup", event=request)
    first = processor.process("@counter@dup", None, [message, message])
    assert first.instance is not None and first.instance.output == "3"
    again = processor.process("@counter@dup", first.instance, [message])
    assert again.instance is not None and again.instance.output == "3"


step_app = ot.App()
in_first_step = threading.Event()
second_step_done = threading.Event()


@step_app.entity
def slow_counter(ctx: ot.EntityContext, amount: int) -> int:
    """Blocks the first step until a second step on another entity has run in between."""
    if ctx.key == "first":
        in_first_step.set()
        assert second_step_done.wait(30)
    ctx.set_state(ctx.get_state(0) + amount)
    return int(ctx.get_state())


def test_one_processor_runs_entity_steps_from_two_threads_at_once() -> None:
    processor = EntityProcessor(step_app, ot.JsonDataConverter())

    def call(key: str, amount: int, caller: str) -> OrchestrationMessage:
        request = EntityRequest(
            request_id=f"{caller}:1",
            operation="add",
            input=str(amount),
            caller_instance_id=caller,
            caller_execution_id="e",
            caller_task_id=7,
        )
        return OrchestrationMessage(instance_id=f"@slow_counter@{key}", event=request)

    results: dict[str, Any] = {}

    def first() -> None:
        message = call("first", 5, "caller-a")
        results["first"] = processor.process(message.instance_id, None, [message])

    thread = threading.Thread(target=first)
    thread.start()
    assert in_first_step.wait(30)
    message = call("second", 40, "caller-b")
    results["second"] = processor.process(message.instance_id, None, [message])
    second_step_done.set()
    thread.join(30)

    for key, caller, value in (("first", "caller-a", "5"), ("second", "caller-b", "40")):
        checkpoint = results[key]
        assert checkpoint.instance.instance_id == f"@slow_counter@{key}"
        assert checkpoint.instance.output == value
        [reply] = checkpoint.messages
        assert reply.instance_id == caller and reply.event.result == value


def test_unknown_entity_operation_fails_the_caller(
    client: ot.Client, worker: WorkerFactory
) -> None:
    @app.orchestrator
    def calls_missing(ctx: ot.OrchestrationContext, _: Any) -> Any:
        try:
            yield ctx.call_entity(ot.EntityId("nosuch", "x"), "op")
        except ot.TaskFailedError as exc:
            return exc.details.message

    with worker(app):
        state = run_to_completion(client, calls_missing)
    assert "No entity named 'nosuch'" in state.output


# -- critical sections --------------------------------------------------------------------
section_log: list[tuple[str, float, float]] = []
section_guard = threading.Lock()


@app.activity
def inside(ctx: ot.ActivityContext, _: Any) -> float:
    return time.monotonic()


@app.activity
def record(ctx: ot.ActivityContext, span: tuple[str, float]) -> None:
    with section_guard:
        section_log.append((span[0], span[1], time.monotonic()))


@app.orchestrator
def critical(ctx: ot.OrchestrationContext, keys: list[str]) -> Any:
    ids = [ot.EntityId("LockEntity", k) for k in keys]
    with (yield ctx.lock_entities(*ids)):
        entered = yield ctx.call_activity(inside)
        yield ctx.create_timer(timedelta(milliseconds=20))
        total = yield ctx.call_entity(ot.EntityId("counter", "shared"), "get")
        yield ctx.call_entity(ot.EntityId("counter", "shared"), "add", 1)
        yield ctx.call_activity(record, input=(ctx.instance_id, entered))
    return total


def test_critical_sections_never_overlap(client: ot.Client, worker: WorkerFactory) -> None:
    section_log.clear()
    with worker(app):
        ids = [
            client.schedule_new_orchestration(critical, input=["MyLockIdentifier"])
            for _ in range(12)
        ]
        states = [client.wait_for_orchestration_completion(i, timeout=60) for i in ids]
        final = client.get_entity(ot.EntityId("counter", "shared"))
    assert all(s.runtime_status is ot.OrchestrationStatus.COMPLETED for s in states)
    assert sorted(s.output or 0 for s in states) == list(range(12))  # each saw the others' +1
    assert final is not None and final.state == 12
    spans = sorted((start, end) for _, start, end in section_log)
    assert len(spans) == 12
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end <= next_start, "two orchestrations were inside the critical section at once"


def test_overlapping_lock_sets_do_not_deadlock(client: ot.Client, worker: WorkerFactory) -> None:
    section_log.clear()
    with worker(app):
        ids = [
            client.schedule_new_orchestration(critical, input=keys)
            for keys in (["a", "b"], ["b", "a"], ["b", "c"], ["c", "a"]) * 2
        ]
        states = [client.wait_for_orchestration_completion(i, timeout=60) for i in ids]
    assert all(s.runtime_status is ot.OrchestrationStatus.COMPLETED for s in states)


@app.orchestrator
def dies_holding_lock(ctx: ot.OrchestrationContext, _: Any) -> Any:
    with (yield ctx.lock_entities(ot.EntityId("LockEntity", "fragile"))):
        raise RuntimeError("crash inside the section")


@app.orchestrator
def waits_holding_lock(ctx: ot.OrchestrationContext, _: Any) -> Any:
    with (yield ctx.lock_entities(ot.EntityId("LockEntity", "held"))):
        yield ctx.wait_for_external_event("never")


@app.orchestrator
def takes_lock(ctx: ot.OrchestrationContext, key: str) -> Any:
    with (yield ctx.lock_entities(ot.EntityId("LockEntity", key))):
        return "got it"


def test_locks_are_released_when_the_orchestration_fails_or_is_terminated(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        failed = run_to_completion(client, dies_holding_lock)
        after_failure = run_to_completion(client, takes_lock, input="fragile")
        holder = client.schedule_new_orchestration(waits_holding_lock)
        _wait(
            lambda: (
                (client.get_entity(ot.EntityId("LockEntity", "held")) or _none).locked_by == holder
            )
        )
        waiter = client.schedule_new_orchestration(takes_lock, input="held")
        time.sleep(0.2)
        assert (
            client.get_orchestration_state(waiter).runtime_status is ot.OrchestrationStatus.RUNNING
        )  # type: ignore[union-attr]
        client.terminate_orchestration(holder)
        after_terminate = client.wait_for_orchestration_completion(waiter, timeout=10)
    assert failed.runtime_status is ot.OrchestrationStatus.FAILED
    assert after_failure.output == "got it"
    assert after_terminate.output == "got it"


def test_nested_lock_is_refused(client: ot.Client, worker: WorkerFactory) -> None:
    @app.orchestrator
    def nested(ctx: ot.OrchestrationContext, _: Any) -> Any:
        with (yield ctx.lock_entities(ot.EntityId("LockEntity", "n1"))):
            yield ctx.lock_entities(ot.EntityId("LockEntity", "n2"))

    with worker(app):
        state = run_to_completion(client, nested)
    assert state.failure_details is not None and "cannot be nested" in state.failure_details.message


def test_entity_ids_are_validated() -> None:
    assert ot.EntityId("Counter", "k").instance_id == "@counter@k"
    assert ot.EntityId.from_instance_id("@counter@a@b") == ot.EntityId("counter", "a@b")
    with pytest.raises(ValueError, match="'/'"):
        ot.EntityId("counter", "a/b")
    with pytest.raises(ValueError, match="no '@'"):
        ot.EntityId("co@unter", "k")


class _Fake:
    state: Any = None
    includes_state = True
    locked_by: str | None = None


_none: Any = _Fake()
_full: Any = _Fake()


def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
