"""Observability hooks: OpenTelemetry traces, metrics and log correlation, or nothing.

The client, the processor and the worker call the hooks of :func:`current`. Without the
``ostinato[otel]`` extra (``opentelemetry-api``) that is a :class:`Telemetry` whose hooks do
nothing and cost a method call; with it, :class:`~ostinato.runtime.telemetry.otel.OtelTelemetry`
on the global tracer and meter providers (or those given to :func:`configure`).

What is recorded (docs/observability.md shows a trace):

* a client's ``schedule_new_orchestration`` creates a ``create_orchestration:NAME`` span and
  stores its W3C ``traceparent`` in the instance's ``ExecutionStarted`` event: every span of
  the instance, in any process and after any restart, belongs to that trace;
* the worker that commits a step emits the spans that step finished — ``orchestration:NAME``
  (when the execution ends), ``timer`` (when it fires), ``sub_orchestration:NAME`` (when the
  child answers) — once, after the commit, from the step's new events: replaying a history
  emits nothing again;
* each activity execution (each attempt, retries included) is an ``activity:NAME`` span
  (``call_http`` for ``ctx.call_http``) around the function, current while it runs, so log
  records it makes carry its trace and span ids; an orchestration step runs with its trace
  current too;
* metrics: ``ostinato.orchestrations.started`` / ``.completed`` / ``.failed`` /
  ``.terminated`` (by name), ``ostinato.activity.duration``,
  ``ostinato.orchestration.step.duration``, ``ostinato.backlog`` (work ready and waiting,
  per kind), ``ostinato.delivery.attempts`` (a work item's delivery count) and
  ``ostinato.dead_letters``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ostinato.history import HistoryEvent
    from ostinato.provider import ActivityWorkItem, StorageProvider


class Telemetry:
    """The hooks, doing nothing (what runs without OpenTelemetry)."""

    enabled = False

    def orchestration_scheduled(self, name: str, instance_id: str) -> str | None:
        """A client starts an instance: the ``traceparent`` to store with it, or ``None``."""
        return None

    def step_context(self, trace_context: str | None) -> contextlib.AbstractContextManager[Any]:
        """Entered around an orchestration step: its trace is current inside."""
        return contextlib.nullcontext()

    def step_finished(
        self,
        instance_id: str,
        name: str,
        trace_context: str | None,
        history: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> Callable[[], None] | None:
        """A step produced ``new_events`` (``history``: the whole run, new events last);
        returns what to call once its checkpoint committed (spans and counts), or ``None``."""
        return None

    def activity(
        self, item: ActivityWorkItem, provider: StorageProvider
    ) -> contextlib.AbstractContextManager[Any]:
        """Entered around one activity execution."""
        return contextlib.nullcontext()

    def delivered(self, kind: str, dequeue_count: int) -> None:
        """A work item of ``kind`` (``orchestration``/``activity``) was handed out."""

    def step_committed(self, seconds: float) -> None:
        """A step's latency: from its work item's lock to its commit."""

    def dead_lettered(self, kind: str, source: str) -> None:
        """A message or work item of ``kind`` was moved from ``source`` (a queue or store
        name) to a dead-letter store."""

    def watch(self, provider: StorageProvider) -> None:
        """Report ``provider``'s backlog while a worker runs on it."""

    def unwatch(self, provider: StorageProvider) -> None:
        """Stop reporting ``provider``'s backlog."""


_NOOP = Telemetry()
_current: Telemetry | None = None


def _default() -> Telemetry:
    try:
        from ostinato.runtime.telemetry.otel import OtelTelemetry
    except ImportError:  # no opentelemetry-api: the ostinato[otel] extra is not installed
        return _NOOP
    return OtelTelemetry()


def current() -> Telemetry:
    """The hooks in use (OpenTelemetry's if installed, else the do-nothing ones)."""
    global _current
    if _current is None:
        _current = _default()
    return _current


def configure(
    tracer_provider: Any = None, meter_provider: Any = None, *, enabled: bool = True
) -> Telemetry:
    """Use these OpenTelemetry providers (default: the global ones), or with
    ``enabled=False`` record nothing. Returns the hooks now in use."""
    global _current
    if not enabled:
        _current = _NOOP
        return _current
    from ostinato.runtime.telemetry.otel import OtelTelemetry

    _current = OtelTelemetry(tracer_provider, meter_provider)
    return _current


@contextlib.contextmanager
def configured(tracer_provider: Any = None, meter_provider: Any = None) -> Iterator[Telemetry]:
    """:func:`configure` for a ``with`` block; the previous hooks come back after it."""
    global _current
    previous = _current
    try:
        yield configure(tracer_provider, meter_provider)
    finally:
        _current = previous


__all__ = ["Telemetry", "configure", "configured", "current"]
