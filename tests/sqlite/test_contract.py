"""The storage-provider contract on real SQLite files: locks, expiry, timers, batches."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.history import EventRaised, ExecutionStarted, OrchestratorStarted
from ostinato.provider import (
    ActivityTask,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    ReuseIdPolicy,
)
from ostinato.sqlite import SqliteProvider
from ostinato.status import OrchestrationStatus

from .helpers import LONG, create, event, record, start

SHORT = timedelta(milliseconds=300)


def running(rec_id: str, provider: SqliteProvider) -> OrchestrationCheckpoint:
    """A checkpoint that marks the instance RUNNING with one history event."""
    current = provider.get_instance(rec_id)
    assert current is not None
    return OrchestrationCheckpoint(
        instance=current.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=1),
        new_history=[OrchestratorStarted()],
    )


# -- orchestration work items -----------------------------------------------------------------
def test_lock_returns_the_pending_messages_and_record(provider: SqliteProvider) -> None:
    rec = create(provider, "a", input='"x"')
    provider.send_message(event("a", "first"))
    item = provider.lock_next_orchestration_work_item("w1", LONG)
    assert item is not None
    assert item.instance_id == "a"
    assert [type(m.event) for m in item.messages] == [ExecutionStarted, EventRaised]
    assert item.instance is not None and item.instance.execution_id == rec.execution_id
    assert item.instance.input == '"x"'
    assert provider.lock_next_orchestration_work_item("w2", LONG) is None


def test_complete_consumes_exactly_the_items_messages(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", LONG)
    assert item is not None
    provider.send_message(event("a", "late"))  # arrives after the lock: not part of the item
    assert provider.lock_next_orchestration_work_item("w2", LONG) is None  # still locked
    provider.complete_orchestration_work_item(item, running("a", provider))
    assert [type(e) for e in provider.get_history("a")] == [OrchestratorStarted]
    got = provider.get_instance("a")
    assert got is not None and got.runtime_status is OrchestrationStatus.RUNNING
    again = provider.lock_next_orchestration_work_item("w2", LONG)
    assert again is not None
    assert [m.event.name for m in again.messages] == ["late"]  # type: ignore[attr-defined]
    with pytest.raises(WorkItemLockLost):  # completed already
        provider.complete_orchestration_work_item(item, OrchestrationCheckpoint(instance=None))


def test_abandon_hands_messages_out_again(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", LONG)
    assert item is not None
    provider.abandon_orchestration_work_item(item)
    again = provider.lock_next_orchestration_work_item("w2", LONG)
    assert again is not None and len(again.messages) == 1
    assert again.dequeue_count == 2
    with pytest.raises(WorkItemLockLost):
        provider.abandon_orchestration_work_item(item)


def test_abandon_with_delay_hides_the_instance_until_then(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", LONG)
    assert item is not None
    provider.abandon_orchestration_work_item(item, timedelta(milliseconds=400))
    provider.send_message(event("a"))  # a new message does not bring it back early
    assert provider.lock_next_orchestration_work_item("w2", LONG) is None
    time.sleep(0.45)
    again = provider.lock_next_orchestration_work_item("w2", LONG)
    assert again is not None and len(again.messages) == 2


def test_renew_extends_the_lock(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", SHORT)
    assert item is not None
    first_until = item.locked_until
    provider.renew_orchestration_work_item_lock(item, timedelta(seconds=30))
    assert item.locked_until > first_until + timedelta(seconds=20)
    time.sleep(SHORT.total_seconds() + 0.1)
    assert provider.lock_next_orchestration_work_item("w2", LONG) is None
    provider.complete_orchestration_work_item(item, running("a", provider))
    assert provider.get_history("a") != []


def test_expired_lock_is_taken_over_and_the_old_holder_loses_it(provider: SqliteProvider) -> None:
    create(provider, "a")
    old = provider.lock_next_orchestration_work_item("w1", SHORT)
    assert old is not None
    time.sleep(SHORT.total_seconds() + 0.1)
    new = provider.lock_next_orchestration_work_item("w2", LONG)
    assert new is not None and new.instance_id == "a"
    assert new.lock_token != old.lock_token or new.locked_until != old.locked_until
    with pytest.raises(WorkItemLockLost):
        provider.complete_orchestration_work_item(old, running("a", provider))
    with pytest.raises(WorkItemLockLost):
        provider.renew_orchestration_work_item_lock(old, LONG)
    with pytest.raises(WorkItemLockLost):
        provider.abandon_orchestration_work_item(old)
    assert provider.get_history("a") == []  # the old holder changed nothing
    provider.complete_orchestration_work_item(new, running("a", provider))
    assert len(provider.get_history("a")) == 1


def test_expired_lock_counts_as_lost_even_if_nobody_took_it(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", SHORT)
    assert item is not None
    time.sleep(SHORT.total_seconds() + 0.1)
    with pytest.raises(WorkItemLockLost):
        provider.complete_orchestration_work_item(item, running("a", provider))
    assert provider.lock_next_orchestration_work_item("w2", LONG) is not None


def test_timer_message_is_never_handed_out_early(provider: SqliteProvider) -> None:
    create(provider, "a")
    item = provider.lock_next_orchestration_work_item("w1", LONG)
    assert item is not None
    fire_at = utcnow() + timedelta(milliseconds=500)
    timer = event("a", "timer", visible_at=fire_at)
    provider.complete_orchestration_work_item(
        item, OrchestrationCheckpoint(instance=None, messages=[timer])
    )
    while True:
        got = provider.lock_next_orchestration_work_item("w1", LONG)
        now = utcnow()
        if got is not None:
            break
        assert now < fire_at + timedelta(seconds=5), "the timer never fired"
        time.sleep(0.01)
    assert now >= fire_at
    assert [m.message_id for m in got.messages] == [timer.message_id]
    assert got.messages[0].visible_at == fire_at


def test_scheduled_start_waits_for_its_time(provider: SqliteProvider) -> None:
    rec = record("later")
    at = utcnow() + timedelta(milliseconds=300)
    provider.create_instance(rec, start(rec, visible_at=at), ReuseIdPolicy.REPLACE_TERMINAL)
    assert provider.lock_next_orchestration_work_item("w", LONG) is None
    time.sleep(0.35)
    assert provider.lock_next_orchestration_work_item("w", LONG) is not None


def test_batch_lock_takes_distinct_instances(provider: SqliteProvider) -> None:
    for i in range(30):
        create(provider, f"i{i:02}")
        provider.send_message(event(f"i{i:02}"))
    items = provider.lock_next_orchestration_work_items("w", LONG, 20)
    assert len(items) == 20
    assert len({i.instance_id for i in items}) == 20
    assert all(len(i.messages) == 2 for i in items)
    rest = provider.lock_next_orchestration_work_items("w", LONG, 20)
    assert len(rest) == 10
    assert {i.instance_id for i in items}.isdisjoint(i.instance_id for i in rest)


def test_batch_complete_isolates_a_lost_lock(provider: SqliteProvider) -> None:
    create(provider, "keep")
    create(provider, "lose")
    items = {i.instance_id: i for i in provider.lock_next_orchestration_work_items("w1", SHORT, 5)}
    provider.renew_orchestration_work_item_lock(items["keep"], LONG)
    time.sleep(SHORT.total_seconds() + 0.1)
    thief = provider.lock_next_orchestration_work_item("w2", LONG)
    assert thief is not None and thief.instance_id == "lose"
    results = provider.complete_orchestration_work_items(
        [(items["keep"], running("keep", provider)), (items["lose"], running("lose", provider))]
    )
    assert results[0] is None
    assert isinstance(results[1], WorkItemLockLost)
    assert len(provider.get_history("keep")) == 1
    assert provider.get_history("lose") == []


def test_batch_complete_isolates_a_failing_checkpoint(provider: SqliteProvider) -> None:
    create(provider, "good")
    create(provider, "bad")
    items = {i.instance_id: i for i in provider.lock_next_orchestration_work_items("w", LONG, 5)}
    unencodable = EventRaised(name="x", input=object())  # type: ignore[arg-type]
    bad = OrchestrationCheckpoint(instance=None, new_history=[unencodable])
    results = provider.complete_orchestration_work_items(
        [(items["good"], running("good", provider)), (items["bad"], bad)]
    )
    assert results[0] is None
    assert isinstance(results[1], Exception) and not isinstance(results[1], WorkItemLockLost)
    assert len(provider.get_history("good")) == 1
    assert provider.get_history("bad") == []
    # The failed item's lock is untouched: its holder may still abandon it.
    provider.abandon_orchestration_work_item(items["bad"])
    assert provider.lock_next_orchestration_work_item("w", LONG) is not None


def test_checkpoint_is_applied_as_a_whole(provider: SqliteProvider) -> None:
    rec = create(provider, "p")
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    create(provider, "other")
    task = ActivityTask("p", rec.execution_id, 0, "act", '"in"')
    checkpoint = OrchestrationCheckpoint(
        instance=rec.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=2),
        new_history=[
            ExecutionStarted(name="orch", execution_id=rec.execution_id),
            OrchestratorStarted(),
        ],
        activity_tasks=[task],
        messages=[event("other", "hello")],
    )
    provider.complete_orchestration_work_item(item, checkpoint)
    assert [type(e) for e in provider.get_history("p")] == [ExecutionStarted, OrchestratorStarted]
    activity = provider.lock_next_activity_work_item("w", LONG)
    assert activity is not None and activity.task == task
    other = provider.lock_next_orchestration_work_item("w", LONG)
    assert other is not None and other.instance_id == "other"
    assert [type(m.event) for m in other.messages] == [ExecutionStarted, EventRaised]


def test_reset_history_replaces_the_execution(provider: SqliteProvider) -> None:
    rec = create(provider, "c")
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    provider.complete_orchestration_work_item(item, running("c", provider))
    provider.send_message(event("c"))
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    fresh = ExecutionStarted(name="orch", execution_id="next")
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=rec.with_changes(execution_id="next", history_size=1),
            new_history=[fresh],
            reset_history=True,
        ),
    )
    assert provider.get_history("c") == [fresh]


# -- activity work items ----------------------------------------------------------------------
def _activity(provider: SqliteProvider, instance_id: str = "a", n: int = 1) -> list[ActivityTask]:
    rec = create(provider, instance_id)
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    tasks = [ActivityTask(instance_id, rec.execution_id, i, "act", json.dumps(i)) for i in range(n)]
    provider.complete_orchestration_work_item(
        item, OrchestrationCheckpoint(instance=None, activity_tasks=tasks)
    )
    return tasks


def _result(task: ActivityTask) -> OrchestrationMessage:
    return event(task.instance_id, f"done-{task.task_id}", execution_id=task.execution_id)


def test_activity_lock_complete_enqueues_the_result(provider: SqliteProvider) -> None:
    (task,) = _activity(provider)
    item = provider.lock_next_activity_work_item("w", LONG)
    assert item is not None and item.task == task
    assert provider.lock_next_activity_work_item("w2", LONG) is None
    provider.complete_activity_work_item(item, _result(task))
    assert provider.lock_next_activity_work_item("w", LONG) is None
    orch = provider.lock_next_orchestration_work_item("w", LONG)
    assert orch is not None
    assert [m.event.name for m in orch.messages] == ["done-0"]  # type: ignore[attr-defined]
    with pytest.raises(WorkItemLockLost):
        provider.complete_activity_work_item(item, _result(task))


def test_activity_abandon_renew_and_expiry(provider: SqliteProvider) -> None:
    (task,) = _activity(provider)
    item = provider.lock_next_activity_work_item("w1", SHORT)
    assert item is not None
    provider.abandon_activity_work_item(item, timedelta(milliseconds=300))
    assert provider.lock_next_activity_work_item("w2", LONG) is None
    time.sleep(0.35)
    item = provider.lock_next_activity_work_item("w2", SHORT)
    assert item is not None and item.dequeue_count == 2
    provider.renew_activity_work_item_lock(item, LONG)
    time.sleep(SHORT.total_seconds() + 0.1)
    assert provider.lock_next_activity_work_item("w3", LONG) is None
    provider.abandon_activity_work_item(item)
    old = provider.lock_next_activity_work_item("w3", SHORT)
    assert old is not None
    time.sleep(SHORT.total_seconds() + 0.1)
    new = provider.lock_next_activity_work_item("w4", LONG)
    assert new is not None and new.task == task
    with pytest.raises(WorkItemLockLost):
        provider.complete_activity_work_item(old, _result(task))
    with pytest.raises(WorkItemLockLost):
        provider.renew_activity_work_item_lock(old, LONG)
    with pytest.raises(WorkItemLockLost):
        provider.abandon_activity_work_item(old)
    assert provider.lock_next_orchestration_work_item("w", LONG) is None  # no result enqueued
    provider.complete_activity_work_item(new, _result(task))
    assert provider.lock_next_orchestration_work_item("w", LONG) is not None


def test_activity_batch_complete_isolates_a_lost_lock(provider: SqliteProvider) -> None:
    tasks = _activity(provider, n=3)
    items = provider.lock_next_activity_work_items("w", SHORT, 10)
    assert sorted(i.task.task_id for i in items) == [0, 1, 2]
    for item in items[:2]:
        provider.renew_activity_work_item_lock(item, LONG)
    time.sleep(SHORT.total_seconds() + 0.1)
    stolen = provider.lock_next_activity_work_item("thief", LONG)
    assert stolen is not None and stolen.task == items[2].task
    results = provider.complete_activity_work_items([(i, _result(i.task)) for i in items])
    assert results[:2] == [None, None]
    assert isinstance(results[2], WorkItemLockLost)
    orch = provider.lock_next_orchestration_work_item("w", LONG)
    assert orch is not None
    names = sorted(m.event.name for m in orch.messages)  # type: ignore[attr-defined]
    assert names == sorted(f"done-{t.task_id}" for t in tasks[:2])


# -- create, reuse-id policy ------------------------------------------------------------------
def test_reuse_id_policies(provider: SqliteProvider) -> None:
    first = create(provider, "s")
    with pytest.raises(InstanceAlreadyExistsError):
        create(provider, "s")  # PENDING is active
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=first.with_changes(
                runtime_status=OrchestrationStatus.COMPLETED, history_size=1
            ),
            new_history=[OrchestratorStarted()],
        ),
    )
    provider.send_message(event("s", "stale"))
    with pytest.raises(InstanceAlreadyExistsError):
        create(provider, "s", ReuseIdPolicy.ERROR_IF_EXISTS)
    second = create(provider, "s")  # COMPLETED is replaced by the default policy
    got = provider.get_instance("s")
    assert got is not None and got.execution_id == second.execution_id != first.execution_id
    assert got.runtime_status is OrchestrationStatus.PENDING
    assert provider.get_history("s") == []
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    assert [m.execution_id for m in item.messages] == [second.execution_id]  # stale one gone
    third = create(provider, "s", ReuseIdPolicy.REPLACE_ANY)  # replaces even an active one
    with pytest.raises(WorkItemLockLost):  # ...and the old execution's lock goes with it
        provider.complete_orchestration_work_item(item, OrchestrationCheckpoint(instance=None))
    got = provider.get_instance("s")
    assert got is not None and got.execution_id == third.execution_id


def test_twenty_threads_starting_one_id_create_exactly_one(db_path: Path) -> None:
    providers = [SqliteProvider(db_path) for _ in range(4)]  # several connections too
    providers[0].setup()
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def start_one(n: int) -> None:
        rec = record("singleton", input=json.dumps(n))
        barrier.wait()
        try:
            providers[n % 4].create_instance(rec, start(rec), ReuseIdPolicy.REPLACE_TERMINAL)
            outcome = "created"
        except InstanceAlreadyExistsError:
            outcome = "exists"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=start_one, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * 19
    item = providers[1].lock_next_orchestration_work_item("w", LONG)
    assert item is not None and len(item.messages) == 1  # one start message, no duplicates
    stored = providers[2].get_instance("singleton")
    assert stored is not None and item.messages[0].execution_id == stored.execution_id
    for p in providers:
        p.close()


def test_in_memory_database_works_across_threads() -> None:
    provider = SqliteProvider(":memory:")
    assert provider.capabilities.multi_process is False
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                create(provider, f"t{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(provider.lock_next_orchestration_work_items("w", LONG, 100)) == 80
    provider.close()
