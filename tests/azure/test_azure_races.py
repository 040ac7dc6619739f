"""Lost races on Azure Storage are lost locks (``WorkItemLockLost``), never ``ProviderError``.

Another receiver "takes" a held queue message the way a lapsed visibility lets one: the
message is made visible with our pop receipt and received again, so ours no longer matches
(``400 PopReceiptMismatch`` on Azure and Azurite).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient
from azure_helpers import ProviderMaker
from ostinato.errors import ProviderError, WorkItemLockLost
from ostinato.history import EventRaised, TaskCompleted
from ostinato.provider import ActivityTask, OrchestrationCheckpoint, OrchestrationMessage
from ostinato_azure import AzureStorageProvider
from test_azure_provider import LOCK, lock, running, started


def take_over(queue: QueueClient, message_id: str, pop_receipt: str) -> None:
    """Another receiver takes the message: visible again, then received by someone else."""
    queue.update_message(message_id, pop_receipt=pop_receipt, visibility_timeout=0)
    taken = [m for m in queue.receive_messages(visibility_timeout=60) if m.id == message_id]
    assert taken, "the message did not come back"


def held_event(provider: AzureStorageProvider, timeout: timedelta = LOCK) -> Any:
    started(provider, "i1")
    provider.send_message(OrchestrationMessage(instance_id="i1", event=EventRaised(name="x")))
    item = lock(provider, timeout=timeout)
    assert item is not None and isinstance(item.messages[0].event, EventRaised)
    received = item.provider_data.received[0]
    take_over(provider._control[received.queue], received.message_id, received.pop_receipt)
    return item


def test_completing_a_step_whose_message_was_taken_is_lock_lost_and_writes_nothing(
    make_provider: ProviderMaker,
) -> None:
    """A short lock's messages are hidden again before the commit writes anything; finding
    one taken by another receiver, the step loses its lock with nothing written."""
    provider = make_provider()
    item = held_event(provider, timeout=timedelta(milliseconds=500))
    checkpoint = OrchestrationCheckpoint(
        instance=running(item, 2), new_history=[item.messages[0].event]
    )
    with pytest.raises(WorkItemLockLost):
        provider.complete_orchestration_work_item(item, checkpoint)
    assert len(provider.get_history("i1")) == 1, "the lost step wrote its history"


def test_renewing_a_lock_whose_message_was_taken_is_lock_lost(
    make_provider: ProviderMaker,
) -> None:
    provider = make_provider()
    item = held_event(provider)
    with pytest.raises(WorkItemLockLost):
        provider.renew_orchestration_work_item_lock(item, LOCK)


def test_abandoning_a_step_whose_message_was_taken_changes_nothing(
    make_provider: ProviderMaker,
) -> None:
    provider = make_provider()
    item = held_event(provider)
    provider.abandon_orchestration_work_item(item)  # nothing of ours left to put back
    assert lock(provider, wait=0.5) is None, "the other receiver's message was handed out"


@pytest.mark.parametrize("call", ["complete", "renew", "abandon"])
def test_activity_calls_on_a_taken_task_are_lock_lost(
    make_provider: ProviderMaker, call: str
) -> None:
    provider = make_provider()
    started(provider, "i1")
    # No orchestration worker here: a complete takes the ordinary path (result, then delete).
    # A result handed over in-process makes no storage call; a task can be taken over only
    # once its visibility lapsed, which the complete checks (see test_azure_handover.py).
    provider.worker_stopped("w")
    provider._send_activity(ActivityTask("i1", "e1", 1, "act"))
    item = provider.lock_next_activity_work_item("w", LOCK)
    assert item is not None
    lock_state = item.provider_data
    take_over(provider._activity_queue, lock_state.message_id, lock_state.pop_receipt)
    result = OrchestrationMessage(
        instance_id="i1", execution_id="e1", event=TaskCompleted(task_scheduled_id=1)
    )
    calls: dict[str, Callable[[], None]] = {
        "complete": lambda: provider.complete_activity_work_item(item, result),
        "renew": lambda: provider.renew_activity_work_item_lock(item, LOCK),
        "abandon": lambda: provider.abandon_activity_work_item(item),
    }
    with pytest.raises(WorkItemLockLost):
        calls[call]()


def test_a_step_slower_than_its_lock_commits_if_no_one_took_it(
    make_provider: ProviderMaker,
) -> None:
    """A lock past its timeout still holds until another work item takes its messages."""
    provider = make_provider()
    started(provider, "i1")
    provider.send_message(OrchestrationMessage(instance_id="i1", event=EventRaised(name="x")))
    item = lock(provider, timeout=timedelta(milliseconds=50))
    assert item is not None
    time.sleep(0.3)  # the step takes longer than its lock
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(instance=running(item, 2), new_history=[item.messages[0].event]),
    )
    assert len(provider.get_history("i1")) == 2


def test_a_payload_blob_is_written_once(make_provider: ProviderMaker) -> None:
    """Payload blobs are content addressed and never rewritten, so a reader's ranged download
    of one never meets a changed ETag (412) while a writer stores the same value again."""
    provider = make_provider()
    other = make_provider(task_hub=provider.task_hub)
    name = provider.blobs.put("i1", "x" * 100_000)
    etag = provider._container.get_blob_client(name).get_blob_properties().etag
    assert other.blobs.put("i1", "x" * 100_000) == name  # another process, no cache
    assert provider._container.get_blob_client(name).get_blob_properties().etag == etag


def test_a_history_read_never_returns_part_of_a_history(make_provider: ProviderMaker) -> None:
    """Rows deleted under a read (a replace or purge between its pages) are read again; a
    history that stays incomplete is an error, never a silently shorter history."""
    provider = make_provider()
    started(provider, "i1")
    assert len(provider.get_history("i1")) == 1
    rows = provider._instances.query_entities("PartitionKey eq 'i1' and RowKey ne ''")
    for row in list(rows):
        provider._instances.delete_entity("i1", row["RowKey"])
    with pytest.raises(ProviderError, match="kept changing"):
        provider.get_history("i1")
