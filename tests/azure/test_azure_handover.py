"""In-process hand-over on Azurite: activity tasks a step sends go to this process's activity
worker without a receive, and their results to its orchestration worker without a send, held
as the task they answer until the step that consumes them commits (see the README)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import ostinato as ot
from azure_helpers import ProviderMaker, new_hub_name
from ostinato.history import ExecutionStarted, TaskCompleted, TaskScheduled
from ostinato.provider import ActivityTask, OrchestrationCheckpoint, OrchestrationMessage
from ostinato_azure import AzureStorageProvider
from test_azure_provider import LOCK, lock, running, start


def wait_for(poll: Any, seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = poll()
        if found:
            return found
        time.sleep(0.05)
    return None


def schedule(
    provider: AzureStorageProvider, instance_id: str, activity_lock: timedelta = LOCK
) -> None:
    """Start the instance and commit its first step, which schedules one activity."""
    start(provider, instance_id)
    provider.lock_next_activity_work_items("w", activity_lock, 1)  # an activity worker polls
    item = lock(provider)
    assert item is not None
    events = [item.messages[0].event, TaskScheduled(task_id=1, name="say")]
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=running(item, 2),
            new_history=events,
            activity_tasks=[ActivityTask(instance_id, "e1", 1, "say")],
        ),
    )


def result(instance_id: str) -> OrchestrationMessage:
    return OrchestrationMessage(
        instance_id=instance_id,
        execution_id="e1",
        event=TaskCompleted(task_scheduled_id=1, result='"hi"'),
    )


def test_a_task_and_its_result_are_handed_over_without_receives_or_a_result_message(
    make_provider: ProviderMaker,
) -> None:
    provider = make_provider(partition_leases=False)
    schedule(provider, "i1")
    provider.reset_operation_counts()
    task = provider.lock_next_activity_work_item("w", LOCK)
    assert task is not None and task.task.name == "say" and task.dequeue_count == 1
    provider.complete_activity_work_item(task, result("i1"))
    item = provider.lock_next_orchestration_work_item("w", LOCK)
    assert item is not None and isinstance(item.messages[0].event, TaskCompleted)
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=running(item, 3).with_changes(runtime_status=ot.OrchestrationStatus.COMPLETED),
            new_history=[item.messages[0].event],
        ),
    )
    # The task was handed out and its result delivered from memory: no receive, no send.
    # The step's transaction, then the task's delete (it was the result's durable form).
    assert dict(provider.operations) == {"table.batch": 1, "queue.delete": 1}
    assert provider.backlog() == {"orchestrations": 0, "activities": 0}
    history = provider.get_history("i1")
    assert [type(e) for e in history] == [ExecutionStarted, TaskScheduled, TaskCompleted]


def test_a_handed_over_result_survives_the_death_of_its_process(
    make_provider: ProviderMaker,
) -> None:
    """The result only ever lived in memory: the task it answers is still on the queue,
    invisible, and runs again once the dead process's visibility lapses."""
    hub = new_hub_name()
    dying = make_provider(task_hub=hub, partition_leases=False)
    other = make_provider(task_hub=hub, partition_leases=False)
    short = timedelta(seconds=1)
    schedule(dying, "i1", short)  # held for 3 s (1.2 x lock + 1 s)
    task = dying.lock_next_activity_work_item("w", short)
    assert task is not None
    dying.complete_activity_work_item(task, result("i1"))
    assert dying._buffer["i1"], "the result was handed over in-process"
    # The process dies here (nothing of it runs any more). Its task comes back to another.
    again = wait_for(lambda: other.lock_next_activity_work_item("w", LOCK), 30)
    assert again is not None and again.task.task_id == 1 and again.dequeue_count == 2
    other.complete_activity_work_item(again, result("i1"))  # not its partition: a message
    item = wait_for(lambda: other.lock_next_orchestration_work_item("w", LOCK))
    assert item is not None and isinstance(item.messages[0].event, TaskCompleted)


def test_an_abandoned_handed_over_result_becomes_a_control_message_with_its_count(
    make_provider: ProviderMaker,
) -> None:
    hub = new_hub_name()
    provider = make_provider(task_hub=hub, partition_leases=False)
    other = make_provider(task_hub=hub, partition_leases=False)
    schedule(provider, "i1")
    task = provider.lock_next_activity_work_item("w", LOCK)
    assert task is not None
    provider.complete_activity_work_item(task, result("i1"))
    item = provider.lock_next_orchestration_work_item("w", LOCK)
    assert item is not None and item.dequeue_count == 1
    provider.abandon_orchestration_work_item(item)
    # Sent to the control queue (the activity does not run again), the task deleted.
    assert wait_for(lambda: provider.backlog() == {"orchestrations": 1, "activities": 0})
    again = wait_for(lambda: other.lock_next_orchestration_work_item("w", LOCK))
    assert again is not None and isinstance(again.messages[0].event, TaskCompleted)
    assert again.dequeue_count == 1, "an abandon gives its delivery back"


def test_a_result_is_not_handed_over_for_a_partition_this_process_does_not_receive(
    make_provider: ProviderMaker,
) -> None:
    hub = new_hub_name()
    provider = make_provider(task_hub=hub, partition_count=1)
    schedule(provider, "i1")
    task = provider.lock_next_activity_work_item("w", LOCK)
    assert task is not None
    assert provider._partitions is not None
    provider._partitions.stop(release=True)  # the lease went to another worker
    provider.complete_activity_work_item(task, result("i1"))
    assert "i1" not in provider._buffer
    assert provider.backlog() == {"orchestrations": 1, "activities": 0}


def test_the_result_of_a_task_delivered_again_goes_through_the_control_queue(
    make_provider: ProviderMaker,
) -> None:
    """A second delivery may come from a result whose step killed its process: that result
    must be a control message, whose own count the poison policy reads."""
    provider = make_provider(partition_leases=False)
    short = timedelta(seconds=1)
    schedule(provider, "i1", short)
    first = provider.lock_next_activity_work_item("w", short)
    assert first is not None and first.dequeue_count == 1
    time.sleep(1.2)  # its lock expired (the queue still hides it): handed out again
    second = wait_for(lambda: provider.lock_next_activity_work_item("w", LOCK))
    assert second is not None and second.dequeue_count == 2
    provider.complete_activity_work_item(second, result("i1"))
    assert "i1" not in provider._buffer
    assert provider.backlog() == {"orchestrations": 1, "activities": 0}
