"""Messages sent to an instance while it continues as new are never lost (Azurite).

Between the checkpoint that continues an instance as new (its row says ``CONTINUED_AS_NEW``)
and the step that starts the next execution, the core can only apply a message together with
that next ``ExecutionStarted``: handed out alone, a terminate (or an event) without an
execution id is carried over by nobody and dropped. On transactional providers both are
always visible at once; on Azure the control queue delivers them independently, so the
provider holds such messages back (a few seconds at most) until the start is there. (Handed
out alone, the core would defer them: see ``test_held_messages_are_handed_out_if_no_start_comes``.)

The tests drive the provider and the core's step processor by hand, deterministically.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import ostinato as ot
from azure_helpers import ProviderMaker, new_hub_name
from ostinato.converter import JsonDataConverter
from ostinato.history import EventRaised, ExecutionStarted, ExecutionTerminated
from ostinato.provider import OrchestrationWorkItem
from ostinato.runtime.processor import OrchestrationProcessor, ProcessedStep
from ostinato_azure import AzureStorageProvider

LOCK = timedelta(seconds=30)

app = ot.App()


@app.orchestrator
def can_relay(ctx: ot.OrchestrationContext, n: int) -> Any:
    """Each "next" event continues the instance as new with ``n + 1``."""
    ctx.set_custom_status(n)
    yield ctx.wait_for_external_event("next")
    ctx.continue_as_new(n + 1)


def processor_for(provider: AzureStorageProvider) -> OrchestrationProcessor:
    return OrchestrationProcessor(app, provider, JsonDataConverter(), cache_size=16)


def lock(provider: AzureStorageProvider, wait: float = 10) -> OrchestrationWorkItem:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        item = provider.lock_next_orchestration_work_item("w", LOCK)
        if item is not None:
            return item
        time.sleep(0.02)
    raise AssertionError("no work item was handed out")


def commit(
    provider: AzureStorageProvider, processor: OrchestrationProcessor, step: ProcessedStep
) -> None:
    provider.complete_orchestration_work_item(step.item, step.checkpoint)
    processor.committed(step)


def run_step(provider: AzureStorageProvider, processor: OrchestrationProcessor) -> ProcessedStep:
    step = processor.process(lock(provider))
    commit(provider, processor, step)
    return step


def kinds(item: OrchestrationWorkItem) -> set[type]:
    return {type(m.event) for m in item.messages}


def status(provider: AzureStorageProvider, instance_id: str) -> ot.OrchestrationStatus:
    record = provider.get_instance(instance_id)
    assert record is not None
    return record.runtime_status


def test_terminate_buffered_during_the_continue_as_new_step_waits_for_the_next_start(
    make_provider: ProviderMaker,
) -> None:
    """The CI failure of the eternal-orchestration scenario, step by step.

    A poll while the instance is in its continue-as-new work item receives the terminate and
    buffers it; once that step commits, the buffered terminate must not be handed out on its
    own (the core would drop it): it goes out with the next execution's start.
    """
    provider = make_provider()
    processor = processor_for(provider)
    client = ot.Client(provider)
    instance_id = client.schedule_new_orchestration(can_relay, input=0)
    run_step(provider, processor)  # RUNNING, waiting for "next"
    client.raise_orchestration_event(instance_id, "next")
    item = lock(provider)
    assert kinds(item) == {EventRaised}
    step = processor.process(item)  # continues as new
    client.terminate_orchestration(instance_id, output="stopped")
    deadline = time.monotonic() + 10
    while not provider._buffer.get(instance_id):  # a poll during the step buffers it
        assert provider.lock_next_orchestration_work_items("w", LOCK, 4) == []
        assert time.monotonic() < deadline, "the terminate was never received"
    commit(provider, processor, step)
    assert status(provider, instance_id) is ot.OrchestrationStatus.CONTINUED_AS_NEW

    after = lock(provider)
    assert kinds(after) == {ExecutionStarted, ExecutionTerminated}
    commit(provider, processor, processor.process(after))
    assert status(provider, instance_id) is ot.OrchestrationStatus.TERMINATED


def test_message_waits_while_another_worker_holds_the_next_start(
    make_provider: ProviderMaker,
) -> None:
    """Held back while the start is elsewhere, then delivered: not lost, and not stuck.

    Worker ``a`` wrote the ``CONTINUED_AS_NEW`` row (so its cache says so); worker ``b`` holds
    the next start. ``a`` must keep the terminate until the start committed, and then notice
    (despite its cache) that the instance runs again and hand the terminate out.
    """
    hub = new_hub_name()
    a = make_provider(task_hub=hub, partition_leases=False)
    b = make_provider(task_hub=hub, partition_leases=False)
    pa, pb = processor_for(a), processor_for(b)
    client = ot.Client(a)
    instance_id = client.schedule_new_orchestration(can_relay, input=0)
    run_step(a, pa)
    client.raise_orchestration_event(instance_id, "next")
    run_step(a, pa)  # continues as new
    assert status(a, instance_id) is ot.OrchestrationStatus.CONTINUED_AS_NEW
    held = lock(b)
    assert kinds(held) == {ExecutionStarted}
    client.terminate_orchestration(instance_id, output="stopped")

    for _ in range(3):  # a receives the terminate, but the start isn't there yet
        assert a.lock_next_orchestration_work_items("w", LOCK, 4) == []
    assert a._buffer.get(instance_id), "a should still hold the terminate"

    commit(b, pb, pb.process(held))
    assert status(a, instance_id) is ot.OrchestrationStatus.RUNNING
    item = lock(a)
    assert kinds(item) == {ExecutionTerminated}
    commit(a, pa, pa.process(item))
    assert status(a, instance_id) is ot.OrchestrationStatus.TERMINATED


def test_held_messages_are_handed_out_if_no_start_comes(make_provider: ProviderMaker) -> None:
    """A row says CONTINUED_AS_NEW but no next start exists (written by other means): the held
    messages are delivered after a few seconds, not held for ever."""
    provider = make_provider()
    processor = processor_for(provider)
    client = ot.Client(provider)
    instance_id = client.schedule_new_orchestration(can_relay, input=0)
    run_step(provider, processor)
    client.raise_orchestration_event(instance_id, "next")
    step = processor.process(lock(provider))
    step.checkpoint.messages[:] = [  # the next start is lost
        m for m in step.checkpoint.messages if not isinstance(m.event, ExecutionStarted)
    ]
    commit(provider, processor, step)
    assert status(provider, instance_id) is ot.OrchestrationStatus.CONTINUED_AS_NEW
    client.raise_orchestration_event(instance_id, "late")
    item = lock(provider, wait=20)
    assert kinds(item) == {EventRaised}
