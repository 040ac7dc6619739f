"""Continue-as-new ids are derived, so the core can tell the next execution's start (see
``ostinato.orchestration.actions.continued_execution_id``) even when a non-transactional store
delivers it before the step that continued as new is committed, or after that execution ended
another way."""

from __future__ import annotations

from datetime import UTC, datetime

import ostinato as ot
from ostinato.converter import JsonDataConverter
from ostinato.history import ExecutionStarted
from ostinato.memory import InMemoryProvider
from ostinato.orchestration.actions import continued_execution_id
from ostinato.provider import InstanceRecord, OrchestrationMessage, OrchestrationWorkItem
from ostinato.runtime.processor import OrchestrationProcessor

app = ot.App()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _item(status: ot.OrchestrationStatus, start: ExecutionStarted) -> OrchestrationWorkItem:
    record = InstanceRecord(
        instance_id="i1",
        name="orch",
        execution_id="e0",
        runtime_status=status,
        created_at=NOW,
        last_updated_at=NOW,
    )
    return OrchestrationWorkItem(
        instance_id="i1",
        messages=[OrchestrationMessage(instance_id="i1", event=start)],
        instance=record,
        lock_token="t",
        locked_until=NOW,
    )


def _next_start() -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=NOW, name="orch", execution_id=continued_execution_id("i1", "e0")
    )


def test_the_derived_id_depends_on_instance_and_execution() -> None:
    ids = {continued_execution_id(i, e) for i in ("i1", "i2") for e in ("e0", "e1")}
    assert len(ids) == 4 and continued_execution_id("i1", "e0") in ids


def test_a_next_start_that_arrives_before_its_continue_as_new_step_waits() -> None:
    processor = OrchestrationProcessor(app, InMemoryProvider(), JsonDataConverter(), 0)
    step = processor.process(_item(ot.OrchestrationStatus.RUNNING, _next_start()))
    [deferred] = step.checkpoint.messages
    assert deferred.event == _next_start() and deferred.visible_at is not None
    assert step.checkpoint.instance is None  # nothing ran


def test_a_next_start_of_an_execution_that_ended_otherwise_is_dropped() -> None:
    processor = OrchestrationProcessor(app, InMemoryProvider(), JsonDataConverter(), 0)
    step = processor.process(_item(ot.OrchestrationStatus.TERMINATED, _next_start()))
    assert step.checkpoint.messages == [] and step.checkpoint.instance is None
