"""Outbound actions: what a step's scheduling events and ending send to the outside world.

The engine records scheduling events (``TaskScheduled``, ``TimerCreated``, ...) in history;
this module turns each into the activity tasks and messages a checkpoint carries, and an
ended execution into the messages it owes others (its parent's result, released entity
locks, terminations of its children, the next execution's start). Everything here is a pure
function of the event and the :class:`Origin` that sent it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ostinato.errors import FailureDetails
from ostinato.frozen import fast_init
from ostinato.history import (
    ContinueAsNew,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityRequest,
    EntityUnlock,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.provider import ActivityTask, OrchestrationMessage
from ostinato.status import OrchestrationStatus

__all__ = [
    "SCHEDULING_EVENTS",
    "Ending",
    "Origin",
    "SchedulingEvent",
    "StepResult",
    "child_execution_id",
    "continued_execution_id",
    "ending_messages",
    "outbound",
    "unlock_messages",
]

#: The namespace of derived sub-orchestration execution ids.
_CHILD_EXECUTIONS = uuid.UUID("5b0e7c1e-2f43-4d6a-9a57-3c2d8e1f6b90")
#: The namespace of derived continue-as-new execution ids.
_NEXT_EXECUTIONS = uuid.UUID("9d3f41a2-6c1b-4e57-8f0a-2b7e5c9d1a34")

SchedulingEvent = (
    TaskScheduled
    | TimerCreated
    | SubOrchestrationInstanceCreated
    | EventSent
    | EntityOperationCalled
    | EntityOperationSignaled
    | EntityLockRequested
    | EntityUnlockSent
)
EntityAction = (
    EntityOperationCalled | EntityOperationSignaled | EntityLockRequested | EntityUnlockSent
)


SCHEDULING_EVENTS = (
    TaskScheduled,
    TimerCreated,
    SubOrchestrationInstanceCreated,
    EventSent,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityLockRequested,
    EntityUnlockSent,
)


@dataclass(init=False, slots=True)
class StepResult:
    """What one step of a run produced, for the runtime to persist; made empty."""

    new_events: list[HistoryEvent]
    activity_tasks: list[ActivityTask]
    messages: list[OrchestrationMessage]

    def __init__(self) -> None:
        self.new_events = []
        self.activity_tasks = []
        self.messages = []


@dataclass(slots=True)
class Origin:
    """The execution that sends an action, at the step's time (one per run, its ``time``
    moved to each step's; not frozen, which would cost a call per field to build)."""

    instance_id: str
    execution_id: str
    name: str
    parent: ParentInstance | None
    time: datetime
    version: str | None = None
    tags: dict[str, str] | None = None
    #: The W3C traceparent of the execution's trace (OpenTelemetry), passed on to the
    #: sub-orchestrations it starts and to the execution it continues as.
    trace_context: str | None = None


@fast_init
@dataclass(frozen=True)
class Ending:
    """How an execution ended, with what it still holds and owes."""

    ended: ExecutionCompleted | ContinueAsNew
    output: str | None
    held_locks: EntityLockRequested | None
    terminate_children: Sequence[str]
    carried_over: Sequence[HistoryEvent]
    buffered_events: Iterable[HistoryEvent]


def outbound(action: SchedulingEvent, origin: Origin, result: StepResult) -> None:
    """Add what ``action`` sends (an activity task or messages) to ``result``."""
    if isinstance(action, EntityAction):
        result.messages.extend(_entity_messages(action, origin))
    elif isinstance(action, TaskScheduled):
        result.activity_tasks.append(
            ActivityTask(
                instance_id=origin.instance_id,
                execution_id=origin.execution_id,
                task_id=action.task_id,
                name=action.name,
                input=action.input,
            )
        )
    elif isinstance(action, TimerCreated):
        result.messages.append(
            OrchestrationMessage(
                instance_id=origin.instance_id,
                execution_id=origin.execution_id,
                visible_at=action.fire_at,
                event=TimerFired(
                    timestamp=action.fire_at, timer_id=action.task_id, fire_at=action.fire_at
                ),
            )
        )
    elif isinstance(action, SubOrchestrationInstanceCreated):
        result.messages.append(
            OrchestrationMessage(
                instance_id=action.instance_id,
                event=ExecutionStarted(
                    timestamp=origin.time,
                    name=action.name,
                    execution_id=child_execution_id(origin, action.task_id),
                    input=action.input,
                    version=action.version,
                    parent=ParentInstance(
                        instance_id=origin.instance_id,
                        execution_id=origin.execution_id,
                        task_id=action.task_id,
                        name=origin.name,
                    ),
                    trace_context=origin.trace_context,
                ),
            )
        )
    else:
        result.messages.append(
            OrchestrationMessage(
                instance_id=action.instance_id,
                event=EventRaised(timestamp=origin.time, name=action.name, input=action.input),
            )
        )


def child_execution_id(origin: Origin, task_id: int) -> str:
    """The execution id of the sub-orchestration ``origin`` starts as ``task_id``.

    Derived from (instance, execution, task id), so a step retried after its start message
    went out (a non-transactional checkpoint that failed midway) sends the very same start,
    which the child drops as a duplicate instead of failing the parent.
    """
    key = f"{origin.instance_id}\x1f{origin.execution_id}\x1f{task_id}"
    return uuid.uuid5(_CHILD_EXECUTIONS, key).hex


def continued_execution_id(instance_id: str, execution_id: str) -> str:
    """The execution id that execution ``execution_id`` of ``instance_id`` continues as new as.

    Derived, so a continue-as-new step retried after its start message went out (a
    non-transactional checkpoint that failed midway) sends the very same start, which the
    instance drops as a duplicate instead of starting a second execution.
    """
    return uuid.uuid5(_NEXT_EXECUTIONS, f"{instance_id}\x1f{execution_id}").hex


def unlock_messages(
    origin: Origin, entity_ids: Sequence[str], critical_section_id: str
) -> list[OrchestrationMessage]:
    """The messages that release ``origin``'s locks on ``entity_ids``."""
    return [
        OrchestrationMessage(
            instance_id=entity_id,
            event=EntityUnlock(
                timestamp=origin.time,
                holder_instance_id=origin.instance_id,
                critical_section_id=critical_section_id,
            ),
        )
        for entity_id in entity_ids
    ]


def ending_messages(origin: Origin, ending: Ending) -> list[OrchestrationMessage]:
    """What an ended execution sends: unlocks, child terminations, a new start or a result."""
    messages: list[OrchestrationMessage] = []
    if ending.held_locks is not None:  # the execution ended inside a critical section
        held = ending.held_locks
        messages.extend(unlock_messages(origin, held.entity_ids, held.critical_section_id))
    for child_id in ending.terminate_children:
        messages.append(
            OrchestrationMessage(
                instance_id=child_id,
                event=ExecutionTerminated(
                    timestamp=origin.time, output=ending.output, recursive=True
                ),
            )
        )
    ended = ending.ended
    if isinstance(ended, ContinueAsNew):
        messages.append(
            OrchestrationMessage(
                instance_id=origin.instance_id,
                event=ExecutionStarted(
                    timestamp=origin.time,
                    name=origin.name,
                    execution_id=ended.new_execution_id,
                    input=ended.input,
                    parent=origin.parent,
                    version=origin.version,
                    tags=origin.tags,
                    trace_context=origin.trace_context,
                ),
            )
        )
        for carried in ending.carried_over:  # arrived in the step that continued as new
            messages.append(OrchestrationMessage(instance_id=origin.instance_id, event=carried))
        for buffered in ending.buffered_events:
            messages.append(
                OrchestrationMessage(
                    instance_id=origin.instance_id,
                    execution_id=ended.new_execution_id,
                    event=buffered,
                )
            )
        return messages
    parent = origin.parent
    if parent is None:
        return messages
    if ended.status is OrchestrationStatus.COMPLETED:
        event: HistoryEvent = SubOrchestrationInstanceCompleted(
            timestamp=origin.time, task_scheduled_id=parent.task_id, result=ended.result
        )
    else:
        failure = ended.failure or FailureDetails(
            "OrchestrationTerminated", f"Orchestration '{origin.instance_id}' was terminated"
        )
        event = SubOrchestrationInstanceFailed(
            timestamp=origin.time, task_scheduled_id=parent.task_id, failure=failure
        )
    messages.append(
        OrchestrationMessage(
            instance_id=parent.instance_id, execution_id=parent.execution_id, event=event
        )
    )
    return messages


def _entity_messages(
    action: EntityOperationCalled
    | EntityOperationSignaled
    | EntityLockRequested
    | EntityUnlockSent,
    origin: Origin,
) -> list[OrchestrationMessage]:
    request_id = f"{origin.instance_id}:{origin.execution_id}:{action.task_id}"
    if isinstance(action, EntityUnlockSent):
        return unlock_messages(origin, action.entity_ids, action.critical_section_id)
    if isinstance(action, EntityLockRequested):
        event = EntityRequest(
            timestamp=origin.time,
            request_id=request_id,
            caller_instance_id=origin.instance_id,
            caller_execution_id=origin.execution_id,
            caller_task_id=action.task_id,
            lock_set=action.entity_ids,
            critical_section_id=action.critical_section_id,
        )
        return [OrchestrationMessage(instance_id=action.entity_ids[0], event=event)]
    called = isinstance(action, EntityOperationCalled)
    event = EntityRequest(
        timestamp=origin.time,
        request_id=request_id,
        operation=action.name,
        input=action.input,
        caller_instance_id=origin.instance_id,
        caller_execution_id=origin.execution_id if called else None,
        caller_task_id=action.task_id if called else None,
    )
    visible_at = action.scheduled_at if isinstance(action, EntityOperationSignaled) else None
    return [OrchestrationMessage(instance_id=action.entity_id, event=event, visible_at=visible_at)]
