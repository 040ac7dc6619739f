"""Versioning: instance versions, worker version filters, and is_patched."""

from __future__ import annotations

import time
from typing import Any

import ostinato as ot
import pytest
from ostinato import history
from ostinato.testing import Replayer
from ostinato.versioning import compare_versions

WORKER = {"max_poll_interval": 0.05}


def _apps() -> tuple[ot.App, ot.App]:
    """The same orchestrator deployed twice: v1, and v2 branching on the instance version."""
    v1, v2 = ot.App(), ot.App()
    for app in (v1, v2):

        @app.activity(name="reserve")
        def reserve(ctx: ot.ActivityContext, item: str) -> str:
            return f"reserved {item}"

        @app.activity(name="charge")
        def charge(ctx: ot.ActivityContext, item: str) -> str:
            return f"charged {item}"

    @v2.activity(name="fraud_check")
    def fraud_check(ctx: ot.ActivityContext, item: str) -> str:
        return f"checked {item}"

    @v1.orchestrator(name="checkout")
    def checkout_v1(ctx: ot.OrchestrationContext, item: str) -> Any:
        steps = [(yield ctx.call_activity("reserve", input=item))]
        yield ctx.wait_for_external_event("confirm")
        steps.append((yield ctx.call_activity("charge", input=item)))
        return steps

    @v2.orchestrator(name="checkout")
    def checkout_v2(ctx: ot.OrchestrationContext, item: str) -> Any:
        steps = [(yield ctx.call_activity("reserve", input=item))]
        if ctx.version != "1":  # instances started as v1 keep the v1 path
            steps.append((yield ctx.call_activity("fraud_check", input=item)))
        yield ctx.wait_for_external_event("confirm")
        steps.append((yield ctx.call_activity("charge", input=item)))
        return steps

    return v1, v2


def _wait_for_history(client: ot.Client, instance_id: str, event_type: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = client.get_orchestration_history(instance_id)
        if any(type(e).__name__ == event_type for e in events) and isinstance(
            events[-1], history.OrchestratorCompleted
        ):
            return
        time.sleep(0.01)
    raise TimeoutError(f"{instance_id} never recorded {event_type}")


def test_a_v1_instance_in_flight_keeps_its_v1_path_after_v2_is_deployed() -> None:
    v1, v2 = _apps()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    v1_options = ot.VersioningOptions(version="1", match=ot.VersionMatch.STRICT)
    with ot.Worker(v1, provider, versioning=v1_options, **WORKER):
        old = client.schedule_new_orchestration("checkout", input="book", version="1")
        _wait_for_history(client, old, "TaskCompleted")  # reserved; now waits for "confirm"
    v2_options = ot.VersioningOptions(version="2", match=ot.VersionMatch.CURRENT_OR_OLDER)
    with ot.Worker(v2, provider, versioning=v2_options, cache_size=0, **WORKER):
        new = client.schedule_new_orchestration("checkout", input="pen", version="2")
        _wait_for_history(client, new, "TaskCompleted")
        for instance_id in (old, new):
            client.raise_orchestration_event(instance_id, "confirm")
        old_state = client.wait_for_orchestration_completion(old, timeout=30)
        new_state = client.wait_for_orchestration_completion(new, timeout=30)
    assert old_state.output == ["reserved book", "charged book"]
    assert new_state.output == ["reserved pen", "checked pen", "charged pen"]
    # The v2 code replays both histories; v1 code cannot replay the v2 instance's.
    Replayer(v2).replay(client.get_orchestration_history(old))
    Replayer(v2).replay(client.get_orchestration_history(new))
    with pytest.raises(ot.NonDeterminismError, match="fraud_check"):
        Replayer(v1).replay(client.get_orchestration_history(new))


def test_a_strict_worker_gives_other_versions_back_to_the_queue() -> None:
    v1, v2 = _apps()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    strict_v2 = ot.VersioningOptions(version="2", match=ot.VersionMatch.STRICT)
    with ot.Worker(v2, provider, versioning=strict_v2, **WORKER):
        old = client.schedule_new_orchestration("checkout", input="book", version="1")
        new = client.schedule_new_orchestration("checkout", input="pen", version="2")
        client.wait_for_orchestration_start(new, timeout=30)
        assert client.get_orchestration_history(old) == []
        state = client.get_orchestration_state(old)
        assert state is not None and state.runtime_status is ot.OrchestrationStatus.PENDING
    # A worker that runs v1 takes it.
    with ot.Worker(v1, provider, versioning=ot.VersioningOptions(version="1"), **WORKER):
        client.wait_for_orchestration_start(old, timeout=30)
        client.raise_orchestration_event(old, "confirm")
        state = client.wait_for_orchestration_completion(old, timeout=30)
    assert state.output == ["reserved book", "charged book"]


def test_fail_on_mismatch_fails_newer_instances_clearly() -> None:
    v1, _ = _apps()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    options = ot.VersioningOptions(
        version="1.9",
        match=ot.VersionMatch.CURRENT_OR_OLDER,
        on_mismatch=ot.VersionFailure.FAIL,
    )
    with ot.Worker(v1, provider, versioning=options, **WORKER):
        newer = client.schedule_new_orchestration("checkout", input="x", version="1.10")
        state = client.wait_for_orchestration_completion(newer, timeout=30)
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "VersionMismatchError"
    assert (
        "'1.10'" in state.failure_details.message
        and "at most '1.9'" in state.failure_details.message
    )


def test_sub_orchestrations_and_continue_as_new_keep_or_set_the_version() -> None:
    app = ot.App()

    @app.orchestrator
    def child(ctx: ot.OrchestrationContext, _: Any) -> str | None:
        return ctx.version

    @app.orchestrator
    def parent(ctx: ot.OrchestrationContext, rounds: int) -> Any:
        if rounds > 0:
            ctx.continue_as_new(rounds - 1)
            return None
        inherited = yield ctx.call_sub_orchestrator(child)
        chosen = yield ctx.call_sub_orchestrator(child, version="4")
        return [ctx.version, inherited, chosen]

    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, **WORKER):
        iid = client.schedule_new_orchestration(parent, input=2, version="3")
        assert client.wait_for_orchestration_completion(iid, timeout=30).output == ["3", "3", "4"]
        unversioned = client.schedule_new_orchestration(parent, input=0)
        state = client.wait_for_orchestration_completion(unversioned, timeout=30)
    assert state.output == [None, None, "4"]


def _patched_apps() -> tuple[ot.App, ot.App]:
    old, new = ot.App(), ot.App()
    for app in (old, new):

        @app.activity(name="step")
        def step(ctx: ot.ActivityContext, name: str) -> str:
            return name

    @old.orchestrator(name="flow")
    def flow_old(ctx: ot.OrchestrationContext, _: Any) -> Any:
        done = [(yield ctx.call_activity("step", input="reserve"))]
        yield ctx.wait_for_external_event("confirm")
        done.append((yield ctx.call_activity("step", input="charge")))
        return done

    @new.orchestrator(name="flow")
    def flow_new(ctx: ot.OrchestrationContext, _: Any) -> Any:
        done = [(yield ctx.call_activity("step", input="reserve"))]
        if ctx.is_patched("fraud-check"):  # before the wait: instances past it skip it
            done.append((yield ctx.call_activity("step", input="fraud-check")))
        yield ctx.wait_for_external_event("confirm")
        done.append((yield ctx.call_activity("step", input="charge")))
        if ctx.is_patched("receipt"):  # after the wait: every instance reaching it runs it
            done.append((yield ctx.call_activity("step", input="receipt")))
        return done

    return old, new


def test_is_patched_keeps_old_instances_on_the_old_path() -> None:
    old_app, new_app = _patched_apps()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(old_app, provider, **WORKER):
        old = client.schedule_new_orchestration("flow")
        _wait_for_history(client, old, "TaskCompleted")
    # cache_size=0: every step replays the history, so recorded answers are what counts.
    with ot.Worker(new_app, provider, cache_size=0, **WORKER):
        new = client.schedule_new_orchestration("flow")
        _wait_for_history(client, new, "TaskCompleted")
        for instance_id in (old, new):
            client.raise_orchestration_event(instance_id, "confirm")
        old_state = client.wait_for_orchestration_completion(old, timeout=30)
        new_state = client.wait_for_orchestration_completion(new, timeout=30)
    assert old_state.output == ["reserve", "charge", "receipt"]
    assert new_state.output == ["reserve", "fraud-check", "charge", "receipt"]
    recorded = [
        e.patches
        for e in client.get_orchestration_history(new)
        if isinstance(e, history.OrchestratorCompleted) and e.patches
    ]
    assert recorded == [("fraud-check",), ("receipt",)]
    for instance_id in (old, new):
        Replayer(new_app).replay(client.get_orchestration_history(instance_id))


STAMP = '"timestamp":"2030-01-01T00:00:00+00:00"'


def test_new_history_fields_are_optional_in_the_codec() -> None:
    old_start = '{"v":1,"type":"ExecutionStarted",' + STAMP + ',"name":"f","execution_id":"e"}'
    started = history.loads(old_start)
    assert isinstance(started, history.ExecutionStarted) and started.version is None
    completed = history.loads('{"v":1,"type":"OrchestratorCompleted",' + STAMP + "}")
    assert isinstance(completed, history.OrchestratorCompleted) and completed.patches is None
    event = history.OrchestratorCompleted(patches=("a", "b"))
    assert history.loads(history.dumps(event)) == event
    assert "patches" not in history.dumps(history.OrchestratorCompleted())


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1", "2", -1),
        ("1.10", "1.9", 1),
        ("2.0", "2.0", 0),
        ("1.2", "1.2.1", -1),
        ("1.0b", "1.0a", 1),
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_versioning_options_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="needs the worker's version"):
        ot.VersioningOptions(match=ot.VersionMatch.STRICT)
    older = ot.VersioningOptions(version="2", match=ot.VersionMatch.CURRENT_OR_OLDER)
    assert older.accepts(None) and older.accepts("1.5") and older.accepts("2")
    assert not older.accepts("2.1")
