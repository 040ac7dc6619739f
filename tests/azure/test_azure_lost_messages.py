"""An instance whose in-flight message was lost is repaired, never left waiting (Azurite).

The tests run one orchestration step by hand (its activity task, timer or sub-orchestration
start is then queued), delete that message from Azurite as a storage failure would, and start a
worker: the partition owner's scan finds the idle RUNNING instance owing work nobody holds and
re-sends it, and the instance completes.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from azure_helpers import ProviderMaker
from ostinato.converter import JsonDataConverter
from ostinato.runtime.processor import OrchestrationProcessor
from ostinato_azure import AzureStorageProvider

LOCK = timedelta(seconds=30)

app = ot.App()


@app.activity
def double(ctx: ot.ActivityContext, n: int) -> int:
    return n * 2


@app.orchestrator
def waits_on_activity(ctx: ot.OrchestrationContext, n: int) -> Any:
    return (yield ctx.call_activity(double, input=n))


@app.orchestrator
def waits_on_timer(ctx: ot.OrchestrationContext, n: int) -> Any:
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(milliseconds=300))
    return n * 2


@app.orchestrator
def waits_on_child(ctx: ot.OrchestrationContext, n: int) -> Any:
    return (yield ctx.call_sub_orchestrator(waits_on_activity, input=n))


def first_step(provider: AzureStorageProvider, instance_id: str) -> None:
    """Run the instance's first step by hand: it leaves one message in flight."""
    processor = OrchestrationProcessor(app, provider, JsonDataConverter(), cache_size=0)
    deadline = time.monotonic() + 10
    while (item := provider.lock_next_orchestration_work_item("hand", LOCK)) is None:
        assert time.monotonic() < deadline, "the start was never handed out"
        time.sleep(0.02)
    step = processor.process(item)
    provider.complete_orchestration_work_item(item, step.checkpoint)
    processor.committed(step)


@pytest.mark.parametrize("orchestrator", [waits_on_activity, waits_on_timer, waits_on_child])
def test_an_instance_whose_in_flight_message_was_lost_completes(
    make_provider: ProviderMaker, orchestrator: Any
) -> None:
    provider = make_provider(lost_work_repair_after=2.0, partition_count=1)
    client = ot.Client(provider)
    instance_id = client.schedule_new_orchestration(orchestrator, input=21)
    first_step(provider, instance_id)
    provider.close()  # puts back nothing: the step consumed its messages
    lost = {"activities": 0, "orchestrations": 0}
    for queue in [*provider._control, provider._activity_queue]:
        lost["activities" if queue is provider._activity_queue else "orchestrations"] += len(
            list(queue.peek_messages(max_messages=32))
        )
        queue.clear_messages()
    if orchestrator is not waits_on_timer:  # a timer is hidden until due: not peekable
        assert sum(lost.values()) == 1, lost
    with ot.Worker(app, provider, max_poll_interval=0.2, lock_timeout=timedelta(seconds=10)):
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    assert state.output == 42
