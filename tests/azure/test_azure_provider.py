"""Azure-specific behaviour on Azurite: row ETags, atomic checkpoints, crash repair, dead
letters, delivery counts, hops, leases."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from azure_helpers import ProviderMaker, new_hub_name
from click.testing import CliRunner
from ostinato.cli.commands import cli as ostinato_cli
from ostinato.clock import utcnow
from ostinato.errors import ConfigurationError, WorkItemLockLost
from ostinato.history import EventRaised, ExecutionStarted
from ostinato.provider import (
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    ReuseIdPolicy,
)
from ostinato_azure import AzureStorageProvider
from ostinato_azure import _queues as azure_queues
from ostinato_azure.__main__ import main as azure_cli

LOCK = timedelta(seconds=30)


def start(
    provider: AzureStorageProvider, instance_id: str, name: str = "orch", execution: str = "e1"
) -> None:
    now = utcnow()
    record = InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=execution,
        runtime_status=ot.OrchestrationStatus.PENDING,
        created_at=now,
        last_updated_at=now,
    )
    message = OrchestrationMessage(
        instance_id=instance_id,
        execution_id=execution,
        event=ExecutionStarted(name=name, execution_id=execution),
    )
    provider.create_instance(record, message, ReuseIdPolicy.REPLACE_TERMINAL)


def running(item: Any, size: int) -> InstanceRecord:
    base = item.instance
    assert base is not None
    return base.with_changes(runtime_status=ot.OrchestrationStatus.RUNNING, history_size=size)


def started(provider: AzureStorageProvider, instance_id: str, execution: str = "e1") -> None:
    """Create the instance and run its first step, so it is RUNNING with a history."""
    start(provider, instance_id, execution=execution)
    item = lock(provider)
    assert item is not None
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(instance=running(item, 1), new_history=[item.messages[0].event]),
    )


def lock(provider: AzureStorageProvider, timeout: timedelta = LOCK, wait: float = 10) -> Any:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        item = provider.lock_next_orchestration_work_item("w", timeout)
        if item is not None:
            return item
        time.sleep(0.05)
    return None


@pytest.mark.parametrize(
    ("name", "problem"),
    [("ab", "3-45"), ("x" * 46, "3-45"), ("1hub", "start with a letter"), ("my-hub", "letters")],
)
def test_task_hub_names_follow_azure_rules(connection_string: str, name: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        AzureStorageProvider(connection_string, task_hub=name)


def test_partition_count_is_checked(connection_string: str) -> None:
    with pytest.raises(ConfigurationError, match="partition_count"):
        AzureStorageProvider(connection_string, task_hub="okhub", partition_count=17)


def test_entry_point_builds_the_provider(connection_string: str) -> None:
    from ostinato.discovery import load_provider_factory

    factory = load_provider_factory("azure")
    assert factory is AzureStorageProvider


def test_sentinel_etag_conflict_is_lock_lost_and_changes_nothing(
    make_provider: ProviderMaker,
) -> None:
    """Two workers without leases get two messages of one instance; the second commit loses."""
    hub = new_hub_name()
    a = make_provider(task_hub=hub, partition_leases=False)
    b = make_provider(task_hub=hub, partition_leases=False)
    start(a, "i1")
    first = lock(a)
    assert first is not None
    a.send_message(OrchestrationMessage(instance_id="i1", event=EventRaised(name="x")))
    second = lock(b)
    assert second is not None and second.instance_id == "i1"
    started = first.messages[0].event
    a.complete_orchestration_work_item(
        first, OrchestrationCheckpoint(instance=running(first, 1), new_history=[started])
    )
    with pytest.raises(WorkItemLockLost):
        b.complete_orchestration_work_item(
            second,
            OrchestrationCheckpoint(
                instance=running(second, 2), new_history=[started, second.messages[0].event]
            ),
        )
    assert [type(e) for e in a.get_history("i1")] == [ExecutionStarted]
    # The loser's message was made visible again at once, not after its lock timeout.
    again = lock(a, wait=5)
    assert again is not None and isinstance(again.messages[0].event, EventRaised)


def test_a_checkpoint_commits_history_and_status_in_one_transaction(
    make_provider: ProviderMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history and the instance row are one entity-group transaction: a worker dying
    right after that write leaves both new, dying before it leaves both old. An instance
    RUNNING with a completed history cannot be written."""
    provider = make_provider(partition_leases=False)
    start(provider, "i1")
    item = lock(provider, timedelta(seconds=2))
    assert item is not None
    real = provider._instances.submit_transaction
    writes: list[list[Any]] = []

    def commit_then_die(operations: Any, **kwargs: Any) -> Any:
        writes.append(list(operations))
        real(operations, **kwargs)
        raise RuntimeError("worker died right after the commit")

    monkeypatch.setattr(provider._instances, "submit_transaction", commit_then_die)
    before = provider.operations.copy()
    record = running(item, 1).with_changes(runtime_status=ot.OrchestrationStatus.COMPLETED)
    with pytest.raises(RuntimeError):
        provider.complete_orchestration_work_item(
            item, OrchestrationCheckpoint(instance=record, new_history=[item.messages[0].event])
        )
    monkeypatch.undo()
    table_writes = {
        kind: n - before[kind]
        for kind, n in provider.operations.items()
        if kind.startswith("table.") and n > before[kind]
    }
    assert table_writes == {"table.batch": 1}  # no separate instance-row write
    assert [op[1]["RowKey"] for op in writes[0]] == ["", "e1.00000000"]
    assert provider.get_instance("i1").runtime_status is ot.OrchestrationStatus.COMPLETED  # type: ignore[union-attr]
    assert [type(e) for e in provider.get_history("i1")] == [ExecutionStarted]

    start(provider, "i2")
    item = lock(provider, timedelta(seconds=2))
    assert item is not None and item.instance_id == "i2"

    def die_before(operations: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker died before the commit")

    monkeypatch.setattr(provider._instances, "submit_transaction", die_before)
    record = running(item, 1).with_changes(runtime_status=ot.OrchestrationStatus.COMPLETED)
    with pytest.raises(RuntimeError):
        provider.complete_orchestration_work_item(
            item, OrchestrationCheckpoint(instance=record, new_history=[item.messages[0].event])
        )
    monkeypatch.undo()
    assert provider.get_instance("i2").runtime_status is ot.OrchestrationStatus.PENDING  # type: ignore[union-attr]
    assert provider.get_history("i2") == []


def test_a_long_step_shows_its_status_only_with_its_whole_history(
    make_provider: ProviderMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 99 rows a step takes several transactions; until the last one commits, the
    instance row (status and history length) is unchanged and the new rows are invisible."""
    provider = make_provider(partition_leases=False)
    start(provider, "i1")
    item = lock(provider, timedelta(seconds=5))
    assert item is not None
    real = provider._instances.submit_transaction
    calls = 0

    def die_before_the_last(operations: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("worker died before the last transaction")
        return real(operations, **kwargs)

    monkeypatch.setattr(provider._instances, "submit_transaction", die_before_the_last)
    events = [item.messages[0].event] + [EventRaised(name=f"e{i}") for i in range(249)]
    record = running(item, 250).with_changes(runtime_status=ot.OrchestrationStatus.COMPLETED)
    with pytest.raises(RuntimeError):
        provider.complete_orchestration_work_item(
            item, OrchestrationCheckpoint(instance=record, new_history=events)
        )
    monkeypatch.undo()
    assert calls == 3
    assert provider.get_instance("i1").runtime_status is ot.OrchestrationStatus.PENDING  # type: ignore[union-attr]
    assert provider.get_history("i1") == []


def test_a_task_hub_of_the_earlier_layout_is_refused_clearly(
    make_provider: ProviderMaker, connection_string: str
) -> None:
    """A hub with the separate history table of the earlier layout is not read as empty."""
    provider = make_provider()
    provider.setup()
    provider._table_service.create_table(provider.names.legacy_history_table)
    later = AzureStorageProvider(connection_string, task_hub=provider.task_hub)
    try:
        with pytest.raises(ConfigurationError, match=r"earlier ostinato-azure.*ostinato export"):
            later.setup()
    finally:
        later.close()
        provider._table_service.delete_table(provider.names.legacy_history_table)


def test_lost_start_message_is_resent(
    make_provider: ProviderMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client dies between the instance row and the enqueue: the repair sweep re-sends."""
    provider = make_provider(partition_leases=False, start_repair_after=0.5)
    queue = provider._control[provider._queue_index("i1")]

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("client died here")

    monkeypatch.setattr(queue, "send_message", crash)
    with pytest.raises(RuntimeError):
        start(provider, "i1")
    monkeypatch.undo()
    assert provider.lock_next_orchestration_work_item("w", LOCK) is None
    with pytest.raises(ot.InstanceAlreadyExistsError):
        start(provider, "i1")  # it is PENDING: still refused, and nothing duplicated
    time.sleep(0.6)
    assert provider.repair_pending_starts() == 1
    item = lock(provider)
    assert item is not None and isinstance(item.messages[0].event, ExecutionStarted)
    assert provider.repair_pending_starts() == 0  # claimed: not re-sent again at once


def test_long_timer_hops_and_never_fires_early(
    make_provider: ProviderMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_queues, "MAX_VISIBILITY", timedelta(seconds=1))
    provider = make_provider(partition_leases=False)
    started(provider, "i1")
    due = utcnow() + timedelta(seconds=4.6)
    provider.send_message(
        OrchestrationMessage(instance_id="i1", event=EventRaised(name="t"), visible_at=due)
    )
    sends = provider.operations["queue.send"]
    item = lock(provider, timedelta(seconds=1), wait=10)  # receives hold messages 2 s
    assert item is not None
    assert utcnow() >= due
    assert provider.operations["queue.send"] - sends >= 1  # at least one hop


def test_undecodable_message_is_a_dead_letter_listed_retried_and_deleted(
    make_provider: ProviderMaker, connection_string: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A control-queue message that is not an ostinato message, but names its instance, is
    named in that instance's next work item beside its other messages and moves to the dead
    letters when the item completes; they are listed, shown, retried and deleted."""
    body = '{"instance_id": "i1", "event": "not an event"}'
    provider = make_provider(partition_leases=False, partition_count=1)
    started(provider, "i1")
    provider._control[0].send_message(body)
    provider.send_message(OrchestrationMessage(instance_id="i1", event=EventRaised(name="x")))
    item = lock(provider)
    assert item is not None and [type(m.event) for m in item.messages] == [EventRaised]
    [named] = item.dead_letters
    assert (named.instance_id, named.body) == ("i1", body) and "undecodable" in named.reason
    assert provider.list_dead_letters() == [], "moved aside before its item completed"
    provider.complete_orchestration_work_item(item, OrchestrationCheckpoint(None))
    [letter] = ot.Client(provider).list_dead_letters()
    assert letter.instance_id == "i1" and "undecodable" in letter.reason
    assert letter.body == body
    assert provider.get_dead_letter(letter.id) == letter
    assert provider.list_dead_letters(instance_id="other") == []
    cli = ["--connection-string", connection_string, "--task-hub", provider.task_hub, "poison"]
    assert azure_cli([*cli, "list"]) == 0
    assert letter.id in capsys.readouterr().out
    settings = ["--set", f"connection_string={connection_string}"]
    settings += ["--set", f"task_hub={provider.task_hub}"]
    listed = CliRunner().invoke(
        ostinato_cli, ["--provider", "azure", *settings, "dead-letters", "list", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    assert [d["id"] for d in json.loads(listed.output)["dead_letters"]] == [letter.id]
    assert provider.retry_dead_letter(letter.id)  # back on its queue, as it was
    assert provider.list_dead_letters() == []
    again = lock(provider)
    assert again is not None and again.messages == []
    assert [d.body for d in again.dead_letters] == [body]  # undecodable still
    provider.complete_orchestration_work_item(again, OrchestrationCheckpoint(None))
    [back] = provider.list_dead_letters()  # a dead letter again
    assert provider.delete_dead_letter(back.id)
    assert not provider.delete_dead_letter(back.id)
    assert provider.list_dead_letters() == [] and provider.get_dead_letter(back.id) is None


def test_delivery_count_survives_the_death_of_the_receiving_process(
    make_provider: ProviderMaker,
) -> None:
    """A task a dead process held is counted once more by the next process (the queue's own
    count), and an abandon gives its delivery back (carried in the message itself)."""
    hub = new_hub_name()
    dying = make_provider(task_hub=hub)
    other = make_provider(task_hub=hub)
    started(dying, "i1")
    dying._send_activity(ot.provider.ActivityTask("i1", "e1", 1, "crashes"))
    first = dying.lock_next_activity_work_item("w", timedelta(seconds=1))
    assert first is not None and first.dequeue_count == 1
    time.sleep(3.2)  # the process "died": the queue shows the task again (1.5 x lock + 1 s)
    second = other.lock_next_activity_work_item("w", LOCK)
    assert second is not None and second.dequeue_count == 2
    other.abandon_activity_work_item(second)
    third = dying.lock_next_activity_work_item("w", LOCK)
    assert third is not None and third.dequeue_count == 2, "an abandon must not count"
    dying.abandon_activity_work_item(third)


def test_activity_tasks_of_a_purged_instance_stay_dropped_after_the_id_is_created_again(
    make_provider: ProviderMaker,
) -> None:
    """Tasks of the purged execution, and tasks queued before the purge, are never handed
    out, also once the same id runs again (its first step rewrites the history sentinel)."""
    provider = make_provider(partition_leases=False)
    started(provider, "i1")
    provider._send_activity(ot.provider.ActivityTask("i1", "e1", 1, "of the purged run"))
    provider._send_activity(ot.provider.ActivityTask("i1", "e0", 2, "of an older run"))
    time.sleep(1.2)  # queue insertion times are whole seconds
    assert provider.purge_instance("i1", set(ot.OrchestrationStatus))
    started(provider, "i1", execution="e2")
    provider._send_activity(ot.provider.ActivityTask("i1", "e2", 3, "of the new run"))
    item = provider.lock_next_activity_work_item("w", LOCK)
    assert item is not None and item.task.task_id == 3
    assert provider.lock_next_activity_work_item("w", LOCK) is None
    assert provider.backlog()["activities"] == 1  # the dead ones were deleted


def test_partitions_are_shared_and_taken_over_after_a_worker_dies(
    make_provider: ProviderMaker,
) -> None:
    hub = new_hub_name()
    a = make_provider(task_hub=hub, partition_count=4, lease_duration=2.0, worker_id="a")
    a._ensure_partitions("a")
    assert a._partitions is not None and a._partitions.receivable() == [0, 1, 2, 3]
    b = make_provider(task_hub=hub, partition_count=4, lease_duration=2.0, worker_id="b")
    b._ensure_partitions("b")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # cooperative hand-over: a drains two and releases
        if len(a._partitions.receivable()) == 2 and len(b._partitions.receivable()) == 2:
            break
        time.sleep(0.2)
    assert sorted(a._partitions.receivable() + b._partitions.receivable()) == [0, 1, 2, 3]
    a.stop_without_release()  # "killed": its leases must expire first
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(b._partitions.receivable()) < 4:
        time.sleep(0.2)
    assert b._partitions.receivable() == [0, 1, 2, 3]


def test_concurrent_creates_of_one_id_start_exactly_one(make_provider: ProviderMaker) -> None:
    provider = make_provider(partition_leases=False)
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def create() -> None:
        barrier.wait()
        try:
            start(provider, "singleton")
            outcomes.append("created")
        except ot.InstanceAlreadyExistsError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 19 + ["created"]
    item = lock(provider)
    assert item is not None and len(item.messages) == 1
    assert lock(provider, wait=1) is None


def test_history_over_one_batch_is_written_atomically(make_provider: ProviderMaker) -> None:
    provider = make_provider(partition_leases=False)
    start(provider, "big")
    item = lock(provider)
    events = [item.messages[0].event] + [EventRaised(name=f"e{i}") for i in range(250)]
    provider.complete_orchestration_work_item(
        item, OrchestrationCheckpoint(instance=running(item, len(events)), new_history=events)
    )
    assert provider.operations["table.batch"] == 3  # 99 + 99 + 53 rows, each with the sentinel
    got = provider.get_history("big")
    assert [getattr(e, "name", None) for e in got[1:]] == [f"e{i}" for i in range(250)]


def test_an_unreachable_store_is_named_without_its_key() -> None:
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    key = "bm90IGEgcmVhbCBrZXk="
    provider = AzureStorageProvider(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{ports[0]}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{ports[1]}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{ports[2]}/devstoreaccount1;"
    )
    with pytest.raises(ot.ProviderError) as caught:
        provider.setup()
    message = str(caught.value)
    assert "Cannot reach Azure Storage to create the task hub (Connection refused)" in message
    assert f"is Azurite / the storage account reachable at http://127.0.0.1:{ports[2]}" in message
    assert key not in message
