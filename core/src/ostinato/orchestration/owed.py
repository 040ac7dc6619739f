"""What a running execution is owed, read from its history: the messages and tasks that must
exist somewhere (in a queue, or held by a worker) for it to make progress.

A store whose messages can be lost (a queue service that lost acknowledged writes, an
operator who deleted them) uses this to repair an instance that waits for ever: it re-sends
what is owed. Every item is safe to send twice: a duplicate ``TimerFired`` or activity result
is dropped by replay, and a sub-orchestration's start carries its derived execution id, so
the child drops it as a duplicate (or, if it has ended, answers the parent again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ostinato.history import (
    ExecutionStarted,
    HistoryEvent,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.orchestration.actions import Origin, child_execution_id
from ostinato.provider import ActivityTask, InstanceRecord, OrchestrationMessage


@dataclass
class OwedWork:
    """Timers due and not fired, activity tasks without a result, sub-orchestration starts
    without an answer (each as the engine sent it)."""

    messages: list[OrchestrationMessage] = field(default_factory=list)
    activity_tasks: list[ActivityTask] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.messages or self.activity_tasks)


def owed_work(record: InstanceRecord, history: list[HistoryEvent], now: datetime) -> OwedWork:
    """What ``record``'s current execution (whose events are ``history``) is owed at ``now``.

    Timers not due yet are not owed (they wait, hidden, in the store). A finished or not yet
    started execution is owed nothing.
    """
    owed = OwedWork()
    if record.runtime_status.is_terminal or not history:
        return owed
    start = next((e for e in history if isinstance(e, ExecutionStarted)), None)
    execution = record.execution_id
    timers: dict[int, TimerCreated] = {}
    tasks: dict[int, TaskScheduled] = {}
    children: dict[int, SubOrchestrationInstanceCreated] = {}
    for event in history:
        if isinstance(event, TimerCreated):
            timers[event.task_id] = event
        elif isinstance(event, TimerFired):
            timers.pop(event.timer_id, None)
        elif isinstance(event, TaskScheduled):
            tasks[event.task_id] = event
        elif isinstance(event, TaskCompleted | TaskFailed):
            tasks.pop(event.task_scheduled_id, None)
        elif isinstance(event, SubOrchestrationInstanceCreated):
            children[event.task_id] = event
        elif isinstance(event, SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed):
            children.pop(event.task_scheduled_id, None)
    iid = record.instance_id
    for created in timers.values():
        if created.fire_at <= now:
            owed.messages.append(
                OrchestrationMessage(
                    instance_id=iid,
                    execution_id=execution,
                    event=TimerFired(
                        timestamp=created.fire_at, timer_id=created.task_id, fire_at=created.fire_at
                    ),
                )
            )
    owed.activity_tasks = [
        ActivityTask(iid, execution, scheduled.task_id, scheduled.name, scheduled.input)
        for scheduled in tasks.values()
    ]
    origin = Origin(
        instance_id=iid,
        execution_id=execution,
        name=record.name,
        parent=None if start is None else start.parent,
        time=now,
    )
    for child in children.values():
        owed.messages.append(
            OrchestrationMessage(
                instance_id=child.instance_id,
                event=ExecutionStarted(
                    timestamp=child.timestamp,
                    name=child.name,
                    execution_id=child_execution_id(origin, child.task_id),
                    input=child.input,
                    parent=ParentInstance(iid, execution, child.task_id, record.name),
                    version=child.version,
                ),
            )
        )
    return owed


__all__ = ["OwedWork", "owed_work"]
