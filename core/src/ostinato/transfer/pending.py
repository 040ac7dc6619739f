"""What a history says must still be pending: timers and activity tasks.

A store that cannot read a delayed message before it is due (Azure Storage queues hide a
timer until it fires) exports a running instance without its timer; an activity task that a
dead worker held hidden is missing the same way. The history tells what is owed: a
``TimerCreated`` without its ``TimerFired``, a ``TaskScheduled`` without its result. The core
adds those to a snapshot (the timer exactly as the engine would have sent it; the activity
runs again, as at-least-once allows, and a duplicate result is dropped by replay).
"""

from __future__ import annotations

from dataclasses import replace

from ostinato.history import (
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.provider import ActivityTask, InstanceSnapshot, OrchestrationMessage


def complete_pending(snapshot: InstanceSnapshot) -> tuple[InstanceSnapshot, int]:
    """``snapshot`` with the timers and activity tasks its history owes and it lacks, and
    how many were added. Finished instances owe nothing."""
    record = snapshot.record
    if record is None or record.runtime_status.is_terminal or not snapshot.history:
        return snapshot, 0
    execution = record.execution_id
    timers: dict[int, TimerCreated] = {}
    tasks: dict[int, TaskScheduled] = {}
    for event in snapshot.history:
        if isinstance(event, TimerCreated):
            timers[event.task_id] = event
        elif isinstance(event, TimerFired):
            timers.pop(event.timer_id, None)
        elif isinstance(event, TaskScheduled):
            tasks[event.task_id] = event
        elif isinstance(event, TaskCompleted | TaskFailed):
            tasks.pop(event.task_scheduled_id, None)
    for message in snapshot.messages:
        if message.execution_id not in (None, execution):
            continue
        event = message.event
        if isinstance(event, TimerFired):
            timers.pop(event.timer_id, None)
        elif isinstance(event, TaskCompleted | TaskFailed):
            tasks.pop(event.task_scheduled_id, None)
    for task in snapshot.activity_tasks:
        if task.execution_id == execution:
            tasks.pop(task.task_id, None)
    if not timers and not tasks:
        return snapshot, 0
    iid = snapshot.instance_id
    added_messages = [
        OrchestrationMessage(
            instance_id=iid,
            execution_id=execution,
            visible_at=created.fire_at,
            event=TimerFired(
                timestamp=created.fire_at, timer_id=created.task_id, fire_at=created.fire_at
            ),
        )
        for created in timers.values()
    ]
    added_tasks = [
        ActivityTask(iid, execution, scheduled.task_id, scheduled.name, scheduled.input)
        for scheduled in tasks.values()
    ]
    completed = replace(
        snapshot,
        messages=[*snapshot.messages, *added_messages],
        activity_tasks=[*snapshot.activity_tasks, *added_tasks],
    )
    return completed, len(added_messages) + len(added_tasks)


__all__ = ["complete_pending"]
