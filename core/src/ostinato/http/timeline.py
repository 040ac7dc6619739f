"""An instance's timeline: its activities, timers and sub-orchestrations as spans in time.

Built from the history alone: a span starts at its scheduling event (``TaskScheduled``,
``TimerCreated``, ``SubOrchestrationInstanceCreated``) and ends at the event that completes it
(matched by task id). A span still open ends "now" (a timer: at the time it is due).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ostinato.history import (
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


class SpanKind(enum.Enum):
    ACTIVITY = "activity"
    TIMER = "timer"
    SUB_ORCHESTRATION = "sub-orchestration"


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    OPEN = "open"


@dataclass
class Span:
    """One bar of the timeline."""

    kind: SpanKind
    name: str
    start: datetime
    end: datetime | None = None
    outcome: Outcome = Outcome.OPEN


@dataclass(frozen=True)
class Bar:
    """A span placed on the timeline: ``left`` and ``width`` in percent of its length."""

    span: Span
    left: float
    width: float
    seconds: float


@dataclass(frozen=True)
class Timeline:
    """The bars of one instance, between ``start`` and ``end``."""

    start: datetime
    end: datetime
    bars: tuple[Bar, ...]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def spans(events: Sequence[HistoryEvent]) -> list[Span]:
    """The activities, timers and sub-orchestrations of a history, in the order started."""
    found: list[Span] = []
    open_by_id: dict[int, Span] = {}
    for event in events:
        if isinstance(event, TaskScheduled):
            span = Span(SpanKind.ACTIVITY, event.name, event.timestamp)
            open_by_id[event.task_id] = span
        elif isinstance(event, SubOrchestrationInstanceCreated):
            span = Span(SpanKind.SUB_ORCHESTRATION, event.name, event.timestamp)
            open_by_id[event.task_id] = span
        elif isinstance(event, TimerCreated):
            span = Span(SpanKind.TIMER, f"timer until {event.fire_at:%H:%M:%S}", event.timestamp)
            span.end = event.fire_at  # due time, until it fires
            open_by_id[event.task_id] = span
        else:
            _close(event, open_by_id)
            continue
        found.append(span)
    return found


def _close(event: HistoryEvent, open_by_id: dict[int, Span]) -> None:
    if isinstance(event, TaskCompleted | SubOrchestrationInstanceCompleted):
        span = open_by_id.pop(event.task_scheduled_id, None)
        outcome = Outcome.COMPLETED
    elif isinstance(event, TaskFailed | SubOrchestrationInstanceFailed):
        span = open_by_id.pop(event.task_scheduled_id, None)
        outcome = Outcome.FAILED
    elif isinstance(event, TimerFired):
        span = open_by_id.pop(event.timer_id, None)
        outcome = Outcome.COMPLETED
    else:
        return
    if span is not None:
        span.end, span.outcome = event.timestamp, outcome


def timeline(events: Sequence[HistoryEvent], now: datetime) -> Timeline | None:
    """The timeline of a history (None for an empty one); open spans run until ``now``."""
    if not events:
        return None
    found = spans(events)
    start = events[0].timestamp
    end = max([events[-1].timestamp, *(s.end for s in found if s.end is not None)])
    if any(s.end is None for s in found):
        end = max(end, now)
    total = max((end - start).total_seconds(), 1e-6)
    bars = []
    for span in found:
        stop = span.end if span.end is not None else end
        left = (span.start - start).total_seconds() / total * 100
        seconds = (stop - span.start).total_seconds()
        width = max(seconds / total * 100, 0.5)
        bars.append(Bar(span, round(min(left, 99.5), 3), round(min(width, 100 - left), 3), seconds))
    return Timeline(start, end, tuple(bars))


__all__ = ["Bar", "Outcome", "Span", "SpanKind", "Timeline", "spans", "timeline"]
