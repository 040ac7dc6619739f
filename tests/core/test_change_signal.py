"""The change signal names the kinds of work each write makes, and the worker wakes by them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.clock import utcnow
from ostinato.history import ExecutionStarted, OrchestratorStarted, TaskCompleted, TimerFired
from ostinato.provider import (
    ActivityTask,
    ChangeSignal,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    ReuseIdPolicy,
    StorageProvider,
    Work,
)
from ostinato.sqlite import SqliteProvider
from ostinato.status import OrchestrationStatus

LONG = timedelta(minutes=5)


def test_listeners_get_the_work_a_change_names_and_all_when_it_names_none() -> None:
    signal = ChangeSignal()
    heard: list[Work] = []
    signal.subscribe(heard.append)
    signal.notify(work=Work.ACTIVITIES)
    signal.notify(status_changed=())
    signal.notify(work=Work.NONE)
    signal.unsubscribe(heard.append)
    signal.notify(work=Work.ORCHESTRATIONS)
    assert heard == [Work.ACTIVITIES, Work.ALL, Work.NONE]


def test_the_work_of_messages_and_checkpoints() -> None:
    now = utcnow()
    event = TaskCompleted(task_scheduled_id=0, result=None)
    visible = OrchestrationMessage(instance_id="a", event=event)
    delayed = OrchestrationMessage(instance_id="a", event=event, visible_at=now)
    task = ActivityTask("a", "e", 0, "act")
    assert Work.of_messages([]) is Work.NONE
    assert Work.of_messages([visible]) is Work.ORCHESTRATIONS
    assert Work.of_messages([delayed]) is Work.TIMERS
    assert Work.of_checkpoints([OrchestrationCheckpoint(instance=None)]) is Work.NONE
    assert (
        Work.of_checkpoints(
            [
                OrchestrationCheckpoint(instance=None, activity_tasks=[task]),
                OrchestrationCheckpoint(instance=None, messages=[delayed]),
            ]
        )
        == Work.ACTIVITIES | Work.TIMERS
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageProvider]:
    provider: StorageProvider = (
        ot.InMemoryProvider() if request.param == "memory" else SqliteProvider(tmp_path / "db")
    )
    provider.setup()
    try:
        yield provider
    finally:
        provider.close()


def test_each_write_names_the_work_it_makes(store: StorageProvider) -> None:
    heard: list[Work] = []
    store.changes.subscribe(heard.append)
    now = utcnow()
    record = InstanceRecord("inst", "orch", uuid.uuid4().hex, OrchestrationStatus.PENDING, now, now)
    started = ExecutionStarted(name="orch", execution_id=record.execution_id)
    start = OrchestrationMessage("inst", started, execution_id=record.execution_id)
    store.create_instance(record, start, ReuseIdPolicy.REPLACE_TERMINAL)
    assert heard.pop() is Work.ORCHESTRATIONS

    item = store.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    task = ActivityTask("inst", record.execution_id, 0, "act")
    timer = OrchestrationMessage("inst", TimerFired(fire_at=now, timer_id=1), visible_at=now + LONG)
    running = record.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=2)
    checkpoint = OrchestrationCheckpoint(
        instance=running,
        new_history=[started, OrchestratorStarted()],
        activity_tasks=[task],
        messages=[timer],
    )
    store.complete_orchestration_work_item(item, checkpoint)
    assert heard.pop() == Work.ACTIVITIES | Work.TIMERS

    activity = store.lock_next_activity_work_item("w", LONG)
    assert activity is not None
    store.abandon_activity_work_item(activity)
    assert heard.pop() is Work.ACTIVITIES
    activity = store.lock_next_activity_work_item("w", LONG)
    assert activity is not None
    result = OrchestrationMessage(
        "inst", TaskCompleted(task_scheduled_id=0, result="1"), execution_id=record.execution_id
    )
    store.complete_activity_work_item(activity, result)
    assert heard.pop() is Work.ORCHESTRATIONS

    item = store.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    store.abandon_orchestration_work_item(item, timedelta(milliseconds=1))
    assert heard.pop() is Work.TIMERS
    store.changes.unsubscribe(heard.append)


def test_a_worker_wakes_only_the_loop_whose_work_a_change_names(
    provider: ot.InMemoryProvider,
) -> None:
    app = ot.App()
    worker = ot.AsyncWorker(app, provider, max_poll_interval=60.0)
    orchestrations = worker._orchestration_polls.signal
    activities = worker._activity_polls.signal
    before = orchestrations.version, activities.version
    worker._on_change(Work.ACTIVITIES)
    assert (orchestrations.version, activities.version) == (before[0], before[1] + 1)
    worker._on_change(Work.TIMERS)
    worker._on_change(Work.ORCHESTRATIONS)
    assert (orchestrations.version, activities.version) == (before[0] + 2, before[1] + 1)
    worker._on_change(Work.NONE)
    worker._on_change(Work.ALL)
    assert (orchestrations.version, activities.version) == (before[0] + 3, before[1] + 2)
