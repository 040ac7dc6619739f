"""Worker behaviour: concurrency limits, lock renewal, graceful stop, cache bounds, recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.provider import ActivityClaim, ActivityWorkItem, OrchestrationWorkItem, ResultStep
from ostinato.sqlite import SqliteProvider

app = ot.App()
running = 0
peak = 0
calls: dict[str, int] = {}
guard = threading.Lock()


@app.activity
def slow(ctx: ot.ActivityContext, seconds: float) -> str:
    global running, peak
    with guard:
        running += 1
        peak = max(peak, running)
        calls[ctx.instance_id] = calls.get(ctx.instance_id, 0) + 1
    time.sleep(seconds)
    with guard:
        running -= 1
    return "slept"


@app.orchestrator
def fan(ctx: ot.OrchestrationContext, args: tuple[int, float]) -> Any:
    n, seconds = args
    return (yield ot.when_all([ctx.call_activity(slow, input=seconds) for _ in range(n)]))


@app.orchestrator
def one_slow(ctx: ot.OrchestrationContext, seconds: float) -> Any:
    return (yield ctx.call_activity(slow, input=seconds))


def reset() -> None:
    global running, peak
    running = peak = 0
    calls.clear()


def test_activity_concurrency_is_bounded() -> None:
    reset()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_concurrent_activities=3, max_poll_interval=0.05):
        instance_id = client.schedule_new_orchestration(fan, input=(12, 0.05))
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
    assert state.output == ["slept"] * 12
    assert peak == 3


def test_long_activity_keeps_its_lock_and_runs_once() -> None:
    reset()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    lock = timedelta(milliseconds=300)
    with (
        ot.Worker(app, provider, lock_timeout=lock, max_poll_interval=0.05),
        ot.Worker(app, provider, lock_timeout=lock, max_poll_interval=0.05),
    ):
        instance_id = client.schedule_new_orchestration(one_slow, input=1.2)
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
    assert state.output == "slept"
    assert calls[instance_id] == 1  # renewed: never handed to the second worker


def test_graceful_stop_abandons_unfinished_work_and_loses_nothing() -> None:
    reset()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    worker = ot.Worker(app, provider, grace_period=0.1, max_poll_interval=0.05)
    worker.start()
    instance_id = client.schedule_new_orchestration(one_slow, input=0.5)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()  # the activity is still sleeping: it is abandoned, not lost
    state = client.get_orchestration_state(instance_id)
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.RUNNING
    with ot.Worker(app, provider, max_poll_interval=0.05):
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
    assert state.output == "slept"
    assert calls[instance_id] == 2  # at-least-once: the abandoned attempt ran again


def test_lost_worker_is_recovered_after_lock_expiry() -> None:
    """A worker that takes a work item and dies: the lock expires and another finishes it."""
    reset()
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    instance_id = client.schedule_new_orchestration(one_slow, input=0.01)
    dead = provider.lock_next_orchestration_work_item("dead-worker", timedelta(milliseconds=200))
    assert dead is not None
    with ot.Worker(app, provider, max_poll_interval=0.05):
        state = client.wait_for_orchestration_completion(instance_id, timeout=20)
    assert state.output == "slept"
    try:
        provider.complete_orchestration_work_item(dead, ot.provider.OrchestrationCheckpoint(None))
    except ot.WorkItemLockLost:
        pass
    else:
        raise AssertionError("the dead worker's late commit must be refused")


@app.orchestrator
def chatty(ctx: ot.OrchestrationContext, n: int) -> Any:
    total = 0
    for _ in range(n):
        total += yield ctx.wait_for_external_event("add")
    return total


def test_small_cache_evicts_and_stays_correct() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, cache_size=2, max_poll_interval=0.05) as worker:
        ids = [client.schedule_new_orchestration(chatty, input=5) for _ in range(6)]
        for instance_id in ids:
            client.wait_for_orchestration_start(instance_id)
        for round_ in range(5):
            for instance_id in ids:
                client.raise_orchestration_event(instance_id, "add", data=round_)
        states = [client.wait_for_orchestration_completion(i, timeout=20) for i in ids]
        assert len(worker.processor.cache) <= 2
        assert worker.processor.cache.misses > 0
    assert [s.output for s in states] == [sum(range(5))] * 6


SLOW = 2.5  # seconds: long enough for an idle thread's poll back-off to pass a second
marks: dict[str, float] = {}


@app.activity
def slow_marked(ctx: ot.ActivityContext, _: Any) -> str:
    marks["activity_started"] = time.monotonic()
    time.sleep(SLOW)
    marks["activity_finished"] = time.monotonic()
    return "done"


@app.orchestrator
def one_slow_marked(ctx: ot.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_activity(slow_marked))


def run_one_slow_marked(
    kind: str, tmp_path: Path, when_idle: Callable[[ot.Worker], None] | None = None
) -> tuple[ot.OrchestrationState, float, float]:
    """Run ``one_slow_marked`` on a worker that has been idle long enough for its pollers'
    back-off to pass a second (polls 30 s apart at most); ``when_idle(worker)`` runs just
    before the start. The final state, and when the start and the wait for it began and ended.
    """
    provider: ot.StorageProvider = (
        ot.InMemoryProvider() if kind == "memory" else SqliteProvider(tmp_path / "wake.db")
    )
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=30) as worker:
            time.sleep(SLOW)
            if when_idle is not None:
                when_idle(worker)
            marks.clear()
            started = time.monotonic()
            instance_id = client.schedule_new_orchestration(one_slow_marked)
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
            finished = time.monotonic()
    finally:
        provider.close()
    assert state.output == "done"
    return state, started, finished


@pytest.mark.parametrize("kind", ["memory", "sqlite-file"])
def test_each_step_is_woken_by_the_commit_before_it_not_by_a_poll(
    kind: str, tmp_path: Path
) -> None:
    """With polls seconds apart, every hand-off still happens at once: a client's start wakes
    the orchestration threads, a checkpoint that schedules an activity wakes the activity
    dispatcher, and an activity's result wakes the orchestration threads."""
    _, started, finished = run_one_slow_marked(kind, tmp_path)
    assert marks["activity_started"] - started < 0.8
    assert finished - marks["activity_finished"] < 0.8


@pytest.mark.parametrize("kind", ["memory", "sqlite-file"])
def test_a_step_that_only_schedules_an_activity_does_not_wake_the_orchestration_threads(
    kind: str, tmp_path: Path
) -> None:
    """Waking a poller for nothing costs the next step time (it competes for the GIL): of the
    four commits of a one-activity orchestration, only the start may wake the orchestration
    threads (the steps send no message, and the activity result's commit locks the instance
    for the thread that commits it: eager orchestrations)."""
    bumps: list[float] = []

    def record_bumps(worker: ot.Worker) -> None:
        signal = worker._async_worker._orchestration_polls.signal
        bump = signal.bump

        def recording_bump() -> None:
            bumps.append(time.monotonic())
            bump()

        signal.bump = recording_bump  # type: ignore[method-assign]

    _, started, finished = run_one_slow_marked(kind, tmp_path, record_bumps)
    assert len([t for t in bumps if started <= t <= finished]) == 1, bumps


@app.activity
def echo(ctx: ot.ActivityContext, value: int) -> int:
    return value


@app.orchestrator
def echo_three(ctx: ot.OrchestrationContext, _: Any) -> Any:
    first = yield ctx.call_activity(echo, input=1)
    rest = yield ot.when_all([ctx.call_activity(echo, input=n) for n in (2, 3)])
    return [first, *rest]


@pytest.mark.parametrize("kind", ["memory", "sqlite-file"])
def test_activities_a_step_schedules_run_without_a_poll_while_there_is_room(
    kind: str, tmp_path: Path
) -> None:
    """Eager activities: each commit locks the tasks it schedules for the worker, which runs
    them at once, so no activity task is ever handed out by a poll."""
    provider: ot.StorageProvider = (
        ot.InMemoryProvider() if kind == "memory" else SqliteProvider(tmp_path / "eager.db")
    )
    assert provider.capabilities.eager_activities
    polled: list[ActivityWorkItem] = []
    lock = provider.lock_next_activity_work_items

    def counting_lock(
        worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        items = lock(worker_id, lock_timeout, max_count)
        polled.extend(items)
        return items

    provider.lock_next_activity_work_items = counting_lock  # type: ignore[method-assign]
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider):
            ids = [client.schedule_new_orchestration(echo_three) for _ in range(20)]
            states = [client.wait_for_orchestration_completion(i, timeout=30) for i in ids]
    finally:
        provider.close()
    assert [state.output for state in states] == [[1, 2, 3]] * 20
    assert polled == [], f"{len(polled)} of 60 tasks were polled, not claimed"


@app.orchestrator
def echo_in_turn(ctx: ot.OrchestrationContext, _: Any) -> Any:
    results = []
    for n in (1, 2, 3):
        results.append((yield ctx.call_activity(echo, input=n)))
    return results


@pytest.mark.parametrize("kind", ["memory", "sqlite-file"])
def test_each_result_is_committed_with_the_step_it_brings(kind: str, tmp_path: Path) -> None:
    """Eager steps: the step after each activity is computed from the cached run and
    committed with the activity's result, so only an instance's first step is polled."""
    provider: ot.StorageProvider = (
        ot.InMemoryProvider() if kind == "memory" else SqliteProvider(tmp_path / "steps.db")
    )
    assert provider.capabilities.eager_steps
    polled: list[str] = []
    applied: list[bool | Exception] = []
    lock, commit = (
        provider.lock_next_orchestration_work_items,
        provider.complete_activities_and_steps,
    )

    def counting_lock(
        worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        items = lock(worker_id, lock_timeout, max_count)
        polled.extend(item.instance_id for item in items)
        return items

    def recording_commit(
        batch: Sequence[ResultStep], claim: ActivityClaim | None = None
    ) -> list[bool | Exception]:
        outcomes = commit(batch, claim)
        applied.extend(outcomes)
        return outcomes

    provider.lock_next_orchestration_work_items = counting_lock  # type: ignore[method-assign]
    provider.complete_activities_and_steps = recording_commit  # type: ignore[method-assign]
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider):
            ids = []
            for _ in range(5):  # one at a time: each result is its instance's only one
                ids.append(client.schedule_new_orchestration(echo_in_turn))
                state = client.wait_for_orchestration_completion(ids[-1], timeout=30)
                assert state.output == [1, 2, 3]
    finally:
        provider.close()
    assert sorted(polled) == sorted(ids), "only each instance's first step is polled"
    assert applied == [True] * 15, applied


class _LifecycleProvider(ot.InMemoryProvider):
    """Records the lifecycle calls a worker and a client make."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def close(self) -> None:
        self.calls.append("close")

    def worker_stopped(self, worker_id: str) -> None:
        self.calls.append(f"worker_stopped {worker_id}")


def test_worker_and_client_never_close_the_provider_they_were_given() -> None:
    app = ot.App()

    @app.orchestrator
    def nothing(ctx: ot.OrchestrationContext, _: Any) -> Any:
        return "done"

    provider = _LifecycleProvider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05) as worker:
        iid = client.schedule_new_orchestration(nothing)
        assert client.wait_for_orchestration_completion(iid, timeout=10).output == "done"
    assert provider.calls == [f"worker_stopped {worker.worker_id}"]
    with provider:
        client.get_orchestration_state(iid)
    assert provider.calls[-1] == "close"
