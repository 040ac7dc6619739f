"""Rewinding a FAILED execution: which part of its history to keep and what to run again.

A failed execution is rewound to the end of its last step that did not fail: the failed step's
history is dropped (its ``ExecutionCompleted`` included) and the events it received are given
to the run again, except failures of activities and sub-orchestrations, which are retried
instead: the activities run again and the sub-orchestrations are rewound in turn. The code
(fixed, usually) then continues from there as if the failure had not happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ostinato.history import (
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
)


@dataclass
class RewindPlan:
    """``kept``: the history up to the last step that did not fail; ``redeliver``: events the
    failed step received, to apply again; ``rerun``: activities to run again;
    ``children``: the instance ids of failed sub-orchestrations to rewind."""

    kept: list[HistoryEvent]
    redeliver: list[HistoryEvent] = field(default_factory=list)
    rerun: list[TaskScheduled] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


def plan_rewind(history: Sequence[HistoryEvent]) -> RewindPlan:
    """How to rewind the failed execution whose history is ``history``."""
    last_started = max(
        (i for i, e in enumerate(history) if isinstance(e, OrchestratorStarted)), default=0
    )
    kept_until = max(
        (i for i, e in enumerate(history[:last_started]) if isinstance(e, OrchestratorCompleted)),
        default=-1,
    )
    plan = RewindPlan(kept=list(history[: kept_until + 1]))
    activities = {e.task_id: e for e in plan.kept if isinstance(e, TaskScheduled)}
    children = {e.task_id: e for e in plan.kept if isinstance(e, SubOrchestrationInstanceCreated)}
    for event in history[kept_until + 1 : last_started]:
        if isinstance(event, TaskFailed) and event.task_scheduled_id in activities:
            plan.rerun.append(activities[event.task_scheduled_id])
        elif (
            isinstance(event, SubOrchestrationInstanceFailed)
            and event.task_scheduled_id in children
        ):
            plan.children.append(children[event.task_scheduled_id].instance_id)
        else:
            plan.redeliver.append(event)
    return plan


__all__ = ["RewindPlan", "plan_rewind"]
