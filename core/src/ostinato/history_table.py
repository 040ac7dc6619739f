"""The history table the way the Durable Functions documentation shows it.

One row per history event, with the columns event type, timestamp, name, input, result and
status; completions carry the name of the task they complete. ``ostinato history`` prints it
and the dashboard shows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ostinato import history
from ostinato.errors import FailureDetails
from ostinato.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)


def decode_payload(text: str | None) -> Any:
    """A stored payload as plain JSON data (``None`` for no payload, text if not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class HistoryRow:
    """One line of the history table (the Durable Functions history table's columns)."""

    event: HistoryEvent
    name: str | None = None
    input: str | None = None
    result: str | None = None
    status: str | None = None
    failure: FailureDetails | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "event_type": self.event.event_type.value,
            "timestamp": self.event.timestamp.isoformat(),
            "name": self.name,
            "input": decode_payload(self.input),
            "result": (
                self.failure.to_dict() if self.failure is not None else decode_payload(self.result)
            ),
            "status": self.status,
            "event": history.to_dict(self.event),
        }


def history_rows(events: Iterable[HistoryEvent]) -> list[HistoryRow]:
    """The history table's rows: each event with the name of the task it belongs to."""
    task_names: dict[int, str] = {}
    rows: list[HistoryRow] = []
    for e in events:
        if isinstance(e, ExecutionStarted):
            row = HistoryRow(e, name=e.name, input=e.input)
        elif isinstance(e, TaskScheduled):
            task_names[e.task_id] = e.name
            row = HistoryRow(e, name=e.name, input=e.input)
        elif isinstance(e, TaskCompleted):
            row = HistoryRow(e, name=task_names.get(e.task_scheduled_id), result=e.result)
        elif isinstance(e, TaskFailed):
            row = HistoryRow(
                e, name=task_names.get(e.task_scheduled_id), failure=e.failure, status="Failed"
            )
        elif isinstance(e, SubOrchestrationInstanceCreated):
            task_names[e.task_id] = e.name
            row = HistoryRow(e, name=e.name, input=e.input)
        elif isinstance(e, SubOrchestrationInstanceCompleted):
            row = HistoryRow(e, name=task_names.get(e.task_scheduled_id), result=e.result)
        elif isinstance(e, SubOrchestrationInstanceFailed):
            row = HistoryRow(
                e, name=task_names.get(e.task_scheduled_id), failure=e.failure, status="Failed"
            )
        elif isinstance(e, TimerCreated | TimerFired):
            row = HistoryRow(e, input=json.dumps(e.fire_at.isoformat()))
        elif isinstance(e, EventRaised | EventSent):
            row = HistoryRow(e, name=e.name, input=e.input)
        elif isinstance(e, ExecutionSuspended | ExecutionResumed):
            row = HistoryRow(e, input=None if e.reason is None else json.dumps(e.reason))
        elif isinstance(e, ExecutionTerminated):
            row = HistoryRow(e, result=e.output, status="Terminated")
        elif isinstance(e, ExecutionCompleted):
            row = HistoryRow(
                e, result=e.result, failure=e.failure, status=e.status.value.capitalize()
            )
        elif isinstance(e, ContinueAsNew):
            row = HistoryRow(e, input=e.input, status="ContinuedAsNew")
        else:
            row = HistoryRow(e)
        rows.append(row)
    return rows


__all__ = ["HistoryRow", "decode_payload", "history_rows"]
