"""Observability hooks: OpenTelemetry traces, metrics and log correlation, or nothing.

The client, the processor and the worker call the hooks of :func:`current`. Without the
``ostinato[otel]`` extra (``opentelemetry-api``), and with it until an OpenTelemetry SDK sets
a global tracer or meter provider, that is a :class:`Telemetry` whose hooks do nothing and
cost a method call; then :class:`~ostinato.runtime.telemetry.otel.OtelTelemetry` on the
global providers (or on those given to :func:`configure`).

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
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ostinato.history import HistoryEvent
    from ostinato.provider import ActivityWorkItem, StorageProvider


#: A context manager that does nothing (reusable: it keeps no state).
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


class Telemetry:
    """The hooks, doing nothing (what runs without OpenTelemetry)."""

    enabled = False

    def orchestration_scheduled(self, name: str, instance_id: str) -> str | None:
        """A client starts an instance: the ``traceparent`` to store with it, or ``None``."""
        return None

    def step_context(self, trace_context: str | None) -> contextlib.AbstractContextManager[Any]:
        """Entered around an orchestration step: its trace is current inside."""
        return _NOTHING

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
        return _NOTHING

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
#: What :func:`current` returns until :data:`_look_again_at`: the hooks :func:`configure`
#: chose, OpenTelemetry's once an SDK was found, else the do-nothing ones.
_in_use: Telemetry = _NOOP
#: When :func:`current` looks again whether an SDK was set (``time.monotonic()``); never
#: once :func:`configure` chose or an SDK was found.
_look_again_at = 0.0
#: How often :func:`current` looks again whether an SDK was set (the look costs microseconds).
RECHECK_SECONDS = 1.0


#: The environment variables that make OpenTelemetry load an SDK's providers by itself.
_PROVIDER_VARIABLES = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")


def _opentelemetry_api() -> tuple[Any, Any] | None:
    """OpenTelemetry's ``trace`` and ``metrics`` modules if they can hold a configured
    provider: imported already (an SDK is configured through them) or told by the
    environment to load one. ``None`` otherwise, without importing anything."""
    imported = "opentelemetry.trace" in sys.modules or "opentelemetry.metrics" in sys.modules
    if not imported and not any(name in os.environ for name in _PROVIDER_VARIABLES):
        return None
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # no opentelemetry-api: the ostinato[otel] extra is not installed
        return None
    return trace, metrics


def _sdk_configured() -> bool:
    """Whether OpenTelemetry is installed and a global tracer or meter provider was set
    (``trace.set_tracer_provider``, ``metrics.set_meter_provider`` or their environment
    variables). Until then the API hands out proxies whose spans record nothing, so the
    hooks would cost time for nothing."""
    api = _opentelemetry_api()
    if api is None:
        return False
    trace, metrics = api
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    # The API's unset meter provider is a private proxy class; any other one was set.
    return not type(metrics.get_meter_provider()).__name__.startswith("_Proxy")


def current() -> Telemetry:
    """The hooks in use: those :func:`configure` chose; else OpenTelemetry's on the global
    providers once an SDK has set one (seen within :data:`RECHECK_SECONDS`); else the
    do-nothing ones. Between looks this is one clock read."""
    if time.monotonic() < _look_again_at:
        return _in_use
    return _look()


def _look() -> Telemetry:
    """Whether an SDK was set by now: OpenTelemetry's hooks for good if so, else the
    do-nothing ones until the next look."""
    global _in_use, _look_again_at
    if not _sdk_configured():
        _look_again_at = time.monotonic() + RECHECK_SECONDS
        return _NOOP
    from ostinato.runtime.telemetry.otel import OtelTelemetry

    _in_use, _look_again_at = OtelTelemetry(), math.inf
    return _in_use


def configure(
    tracer_provider: Any = None, meter_provider: Any = None, *, enabled: bool = True
) -> Telemetry:
    """Use these OpenTelemetry providers (default: the global ones), or with
    ``enabled=False`` record nothing. Returns the hooks now in use."""
    global _in_use, _look_again_at
    if enabled:
        from ostinato.runtime.telemetry.otel import OtelTelemetry

        _in_use = OtelTelemetry(tracer_provider, meter_provider)
    else:
        _in_use = _NOOP
    _look_again_at = math.inf
    return _in_use


@contextlib.contextmanager
def configured(tracer_provider: Any = None, meter_provider: Any = None) -> Iterator[Telemetry]:
    """:func:`configure` for a ``with`` block; the previous hooks come back after it."""
    global _in_use, _look_again_at
    previous = _in_use, _look_again_at
    try:
        yield configure(tracer_provider, meter_provider)
    finally:
        _in_use, _look_again_at = previous


__all__ = ["Telemetry", "configure", "configured", "current"]
