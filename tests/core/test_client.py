"""Client behaviour: reuse-id policy, atomic singleton starts, waiting, queries, purge."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.provider import ChangeSignal
from ostinato.sqlite import SqliteProvider
from ostinato.status import TERMINAL_STATUSES

from .conftest import WorkerFactory, run_to_completion

app = ot.App()


@app.orchestrator
def wait_forever(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("stop")
    return "stopped"


@app.orchestrator
def quick(ctx: ot.OrchestrationContext, value: Any) -> Any:
    return value


@app.orchestrator
def with_child(ctx: ot.OrchestrationContext, _: Any) -> Any:
    return (
        yield ctx.call_sub_orchestrator(quick, input="child", instance_id=f"{ctx.instance_id}-c")
    )


def test_default_policy_refuses_active_and_replaces_finished(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        client.schedule_new_orchestration(wait_forever, instance_id="single")
        with pytest.raises(
            ot.InstanceAlreadyExistsError,
            match=re.escape("An instance with ID 'single' already exists."),
        ):
            client.schedule_new_orchestration(wait_forever, instance_id="single")
        client.raise_orchestration_event("single", "stop")
        first = client.wait_for_orchestration_completion("single")
        client.schedule_new_orchestration(quick, instance_id="single", input="second run")
        second = client.wait_for_orchestration_completion("single")
    assert first.output == "stopped"
    assert second.output == "second run" and second.execution_id != first.execution_id
    assert second.name == "quick"


def test_error_if_exists_policy(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        run_to_completion(client, quick, instance_id="once", input=1)
    with pytest.raises(ot.InstanceAlreadyExistsError):
        client.schedule_new_orchestration(
            quick, instance_id="once", reuse_id_policy=ot.ReuseIdPolicy.ERROR_IF_EXISTS
        )


def test_twenty_concurrent_starts_of_one_id_give_one_instance(client: ot.Client) -> None:
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait()
        try:
            client.schedule_new_orchestration(wait_forever, instance_id="race")
            result = "started"
        except ot.InstanceAlreadyExistsError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=start) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("started") == 1 and outcomes.count("conflict") == 19


def test_scheduled_start_waits_until_start_at(client: ot.Client, worker: WorkerFactory) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=0.4)
    with worker(app):
        instance_id = client.schedule_new_orchestration(quick, input="later", start_at=start_at)
        time.sleep(0.2)
        pending = client.get_orchestration_state(instance_id)
        assert pending is not None and pending.runtime_status is ot.OrchestrationStatus.PENDING
        state = client.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == "later"
    assert datetime.now(UTC) >= start_at


def test_events_to_missing_instances_raise_and_to_finished_ones_are_discarded(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with pytest.raises(ot.InstanceNotFoundError):
        client.raise_orchestration_event("ghost", "e")
    with pytest.raises(ot.InstanceNotFoundError):
        client.terminate_orchestration("ghost")
    with pytest.raises(ot.InstanceNotFoundError):
        client.get_orchestration_history("ghost")
    assert client.get_orchestration_state("ghost") is None
    with worker(app):
        done = run_to_completion(client, quick, input=5)
        client.raise_orchestration_event(done.instance_id, "late")
        client.terminate_orchestration(done.instance_id)
        time.sleep(0.2)
    after = client.get_orchestration_state(done.instance_id)
    assert after is not None and after.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert after.output == 5


def test_wait_times_out_clearly(client: ot.Client) -> None:
    instance_id = client.schedule_new_orchestration(wait_forever)
    with pytest.raises(TimeoutError, match=instance_id):
        client.wait_for_orchestration_completion(instance_id, timeout=0.1)


class CountingReads(ot.InMemoryProvider):
    reads = 0

    def get_instance(self, instance_id: str) -> Any:
        self.reads += 1
        return super().get_instance(instance_id)


def test_wait_is_notified_not_busy_polling() -> None:
    provider = CountingReads()
    client = ot.Client(provider)
    instance_id = client.schedule_new_orchestration(wait_forever)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        client.wait_for_orchestration_start(instance_id)
        threading.Timer(1.0, client.raise_orchestration_event, (instance_id, "stop")).start()
        before = provider.reads
        client.wait_for_orchestration_completion(instance_id, timeout=10)
    # One second of waiting: a busy loop would read thousands of times; back-off + wake-ups
    # read a few dozen at most.
    assert provider.reads - before < 60


def test_query_filters_and_paging_are_exact(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        for i in range(23):
            run_to_completion(client, quick, instance_id=f"q-{i:02d}", input=i)
        client.schedule_new_orchestration(wait_forever, instance_id="q-running")
        client.wait_for_orchestration_start("q-running")
    seen: list[str] = []
    token = None
    while True:
        page = client.query_instances(
            instance_id_prefix="q-",
            runtime_status=[ot.OrchestrationStatus.COMPLETED],
            page_size=5,
            continuation_token=token,
        )
        assert len(page.items) <= 5
        seen.extend(s.instance_id for s in page.items)
        token = page.continuation_token
        if token is None:
            break
    assert seen == [f"q-{i:02d}" for i in range(23)]
    running = client.query_instances(runtime_status=[ot.OrchestrationStatus.RUNNING])
    assert [s.instance_id for s in running.items] == ["q-running"]
    by_name = client.query_instances(name_prefix="wait_")
    assert [s.instance_id for s in by_name.items] == ["q-running"]
    future = client.query_instances(created_from=datetime.now(UTC) + timedelta(hours=1))
    assert future.items == []


def test_purge_is_recursive_and_only_for_finished(
    client: ot.Client, worker: WorkerFactory, provider: ot.InMemoryProvider
) -> None:
    with worker(app):
        run_to_completion(client, with_child, instance_id="p")
        client.schedule_new_orchestration(wait_forever, instance_id="p-active")
        client.wait_for_orchestration_start("p-active")
    assert client.purge_orchestration("p-active").deleted_instance_count == 0
    assert client.purge_orchestration("p").deleted_instance_count == 2
    for gone in ("p", "p-c"):
        assert client.get_orchestration_state(gone) is None
        assert provider.get_history(gone) == []
    assert client.get_orchestration_state("p-active") is not None


def test_bulk_purge_by_status_and_time(client: ot.Client, worker: WorkerFactory) -> None:
    with worker(app):
        for i in range(7):
            run_to_completion(client, quick, instance_id=f"b-{i}")
        client.schedule_new_orchestration(wait_forever, instance_id="b-active")
        client.wait_for_orchestration_start("b-active")
    progress: list[int] = []
    result = client.purge_orchestrations_by(
        created_time_to=datetime.now(UTC), on_progress=progress.append
    )
    assert result.deleted_instance_count == 7 and progress[-1] == 7
    remaining = client.query_instances()
    assert [s.instance_id for s in remaining.items] == ["b-active"]


def test_async_client_has_the_same_methods(provider: ot.InMemoryProvider) -> None:
    import asyncio
    import inspect

    sync_methods = {
        n for n, _ in inspect.getmembers(ot.Client, inspect.isfunction) if not n.startswith("_")
    }
    async_methods = {
        n
        for n, f in inspect.getmembers(ot.AsyncClient, inspect.iscoroutinefunction)
        if not n.startswith("_")
    }
    assert sync_methods == async_methods

    async def scenario() -> ot.OrchestrationState:
        client = ot.AsyncClient(provider)
        async with ot.AsyncWorker(app, provider, max_poll_interval=0.05):
            instance_id = await client.schedule_new_orchestration(quick, input="async")
            return await client.wait_for_orchestration_completion(instance_id, timeout=10)

    state = asyncio.run(scenario())
    assert state.output == "async"


def test_change_signal_wakes_the_watchers_of_a_changed_status_only() -> None:
    signal = ChangeSignal()
    with signal.watching("a") as a, signal.watching("b") as b:
        signal.notify(status_changed=())  # a write that changes no status
        assert not a.is_set() and not b.is_set()
        signal.notify(status_changed=["b", "c"])
        assert not a.is_set() and b.is_set()
        b.clear()
        signal.notify()  # unknown: every watcher looks
        assert a.is_set() and b.is_set()
    signal.notify(status_changed=["a"])  # no watcher left: nothing to do
    assert signal._watchers == {}


def test_change_signal_wakes_a_watcher_only_for_the_statuses_it_waits_for() -> None:
    signal = ChangeSignal()
    done = TERMINAL_STATUSES
    with signal.watching("a", done) as finished, signal.watching("a") as any_change:
        signal.notify(status_changed={"a": ot.OrchestrationStatus.RUNNING})
        assert any_change.is_set() and not finished.is_set()
        any_change.clear()
        signal.notify(status_changed={"a": ot.OrchestrationStatus.COMPLETED})
        assert any_change.is_set() and finished.is_set()
        finished.clear()
        signal.notify(status_changed=["a"])  # the new status not named: every watcher looks
        assert finished.is_set()


@app.orchestrator
def waits_for_go(ctx: ot.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


def test_sql_provider_names_the_new_status_so_completion_waiters_sleep_through_steps(
    tmp_path: Path,
) -> None:
    """The SQL toolkit names each changed instance's new status: a watcher of the ending
    statuses is not woken when the instance starts running, and is when it completes."""
    provider = SqliteProvider(tmp_path / "wait.db")
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider):
            instance_id = "waits-for-go"
            with (
                provider.changes.watching(instance_id, TERMINAL_STATUSES) as ended,
                provider.changes.watching(instance_id) as changed,
            ):
                client.schedule_new_orchestration(waits_for_go, instance_id=instance_id)
                client.wait_for_orchestration_start(instance_id, timeout=30)
                assert changed.wait(30), "the start's status change was not signalled"
                assert not ended.is_set(), "a completion waiter was woken by the start"
                client.raise_orchestration_event(instance_id, "go", data=1)
                assert ended.wait(30), "the completion was not signalled"
            assert client.wait_for_orchestration_completion(instance_id, timeout=30).output == 1
    finally:
        provider.close()
