"""Ending an instance without running its code.

When a step cannot run (its orchestrator keeps killing the worker, a record of it cannot be
decoded, a value it produced cannot be stored) or must not wait for its code (a terminate of
such an instance), the core commits a checkpoint built here: the instance goes FAILED (or
TERMINATED), the end is recorded in its history, a waiting parent is told, and the work item's
messages are consumed. Nothing here calls user code, and history is optional: without it (a
corrupt history) the parent cannot be found and is not told.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ostinato.clock import utcnow
from ostinato.errors import FailureDetails
from ostinato.history import (
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
)
from ostinato.provider import (
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
)
from ostinato.status import OrchestrationStatus


def failure_notice(
    instance_id: str, execution_id: str, failure: FailureDetails
) -> OrchestrationMessage:
    """A message that fails the execution ``execution_id`` of ``instance_id`` with
    ``failure`` when it is delivered, without running its code (see :func:`noticed_failure`)."""
    event = ExecutionCompleted(status=OrchestrationStatus.FAILED, failure=failure)
    return OrchestrationMessage(instance_id=instance_id, execution_id=execution_id, event=event)


def noticed_failure(item: OrchestrationWorkItem) -> FailureDetails | None:
    """The failure a :func:`failure_notice` among ``item``'s messages asks for, if one is
    for the instance's current execution and that execution has not ended."""
    record = item.instance
    if record is None:
        return None
    for message in item.messages:
        event = message.event
        if (
            isinstance(event, ExecutionCompleted)
            and message.execution_id == record.execution_id
            and event.failure is not None
            and not record.runtime_status.is_terminal
        ):
            return event.failure
    return None


def failing_checkpoint(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | None,
    failure: FailureDetails,
    now: datetime | None = None,
    *,
    history_lost: bool = False,
) -> OrchestrationCheckpoint:
    """A checkpoint that fails ``item``'s instance with ``failure`` and consumes its messages.

    ``history_lost``: the stored history was moved aside (a dead letter); the checkpoint
    starts the history again with the failure.
    """
    return _ending(
        item, history, OrchestrationStatus.FAILED, failure, None, now or utcnow(), history_lost
    )


def terminating_checkpoint(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | None,
    terminate: ExecutionTerminated,
    now: datetime | None = None,
) -> OrchestrationCheckpoint:
    """A checkpoint that terminates ``item``'s instance as ``terminate`` asks."""
    return _ending(item, history, OrchestrationStatus.TERMINATED, None, terminate, now or utcnow())


def _ending(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | None,
    status: OrchestrationStatus,
    failure: FailureDetails | None,
    terminate: ExecutionTerminated | None,
    now: datetime,
    history_lost: bool = False,
) -> OrchestrationCheckpoint:
    record = item.instance
    events = list(history or [])
    new_start = next(
        (
            m.event
            for m in item.messages
            if isinstance(m.event, ExecutionStarted) and starts_new_execution(record, m.event)
        ),
        None,
    )
    if new_start is None and (record is None or record.runtime_status.is_terminal):
        return OrchestrationCheckpoint(instance=None)  # nothing runs: consume the messages
    new_history: list[HistoryEvent] = []
    reset = False
    if new_start is not None:
        assert isinstance(new_start, ExecutionStarted)
        reset = record is not None and (
            record.history_size > 0 or record.execution_id != new_start.execution_id
        )
        events = [new_start]
        new_history.append(new_start)
        base = InstanceRecord(
            instance_id=item.instance_id,
            name=new_start.name,
            execution_id=new_start.execution_id,
            runtime_status=OrchestrationStatus.RUNNING,
            created_at=record.created_at if record is not None else now,
            last_updated_at=now,
            input=new_start.input,
            parent_instance_id=new_start.parent.instance_id if new_start.parent else None,
        )
        size = 0
    else:
        assert record is not None
        base, size = record, 0 if history_lost else record.history_size
        reset = history_lost
    output = terminate.output if terminate is not None else None
    new_history += [
        OrchestratorStarted(timestamp=now),
        OrchestratorCompleted(timestamp=now),
        ExecutionCompleted(timestamp=now, status=status, result=output, failure=failure),
    ]
    ended = base.with_changes(
        runtime_status=status,
        output=output,
        failure_details=failure,
        last_updated_at=now,
        history_size=size + len(new_history),
    )
    messages = _tell_parent(item.instance_id, events, failure, now)
    if terminate is not None and terminate.recursive:
        messages += [
            OrchestrationMessage(
                instance_id=child,
                event=ExecutionTerminated(timestamp=now, output=output, recursive=True),
            )
            for child in _open_children(events)
        ]
    return OrchestrationCheckpoint(
        instance=ended, new_history=new_history, reset_history=reset, messages=messages
    )


def starts_new_execution(record: InstanceRecord | None, start: ExecutionStarted) -> bool:
    """Whether ``start`` begins a new execution of the instance stored as ``record``."""
    if record is None:
        return True
    status = record.runtime_status
    if status is OrchestrationStatus.PENDING:
        return record.execution_id == start.execution_id and record.history_size == 0
    if status is OrchestrationStatus.CONTINUED_AS_NEW or status.is_terminal:
        return record.execution_id != start.execution_id
    return False


def _tell_parent(
    instance_id: str,
    events: Sequence[HistoryEvent],
    failure: FailureDetails | None,
    now: datetime,
) -> list[OrchestrationMessage]:
    start = next((e for e in events if isinstance(e, ExecutionStarted)), None)
    if start is None or start.parent is None:
        return []
    parent = start.parent
    failure = failure or FailureDetails(
        "OrchestrationTerminated", f"Orchestration '{instance_id}' was terminated"
    )
    return [
        OrchestrationMessage(
            instance_id=parent.instance_id,
            execution_id=parent.execution_id,
            event=SubOrchestrationInstanceFailed(
                timestamp=now, task_scheduled_id=parent.task_id, failure=failure
            ),
        )
    ]


def _open_children(events: Sequence[HistoryEvent]) -> list[str]:
    """Sub-orchestrations the history started and has no result of."""
    children: dict[int, str] = {}
    for event in events:
        if isinstance(event, SubOrchestrationInstanceCreated):
            children[event.task_id] = event.instance_id
        elif isinstance(event, SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed):
            children.pop(event.task_scheduled_id, None)
    return list(children.values())


__all__ = ["failing_checkpoint", "starts_new_execution", "terminating_checkpoint"]
