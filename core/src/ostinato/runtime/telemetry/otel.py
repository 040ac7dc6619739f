"""The OpenTelemetry implementation of the hooks (see :mod:`ostinato.runtime.telemetry`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ostinato.history import (
    ContinueAsNew,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TimerCreated,
    TimerFired,
)
from ostinato.orchestration.call_http import HTTP_ACTIVITY
from ostinato.provider import ActivityWorkItem, StorageProvider
from ostinato.runtime.telemetry import Telemetry
from ostinato.status import OrchestrationStatus

log = logging.getLogger("ostinato.runtime.telemetry")

_PROPAGATOR = TraceContextTextMapPropagator()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: (instance, execution) pairs whose trace context a worker remembers for its activities.
_REMEMBERED = 10_000

NAME = "ostinato.orchestration.name"
INSTANCE = "ostinato.instance_id"
EXECUTION = "ostinato.execution_id"
TASK = "ostinato.task_id"
KIND = "ostinato.kind"


_COMPLETIONS = (TimerFired, SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)


def _version() -> str:
    try:
        return importlib.metadata.version("ostinato")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


class _SpanSpec:
    """A span to emit once a step committed: all of it is known from the history."""

    __slots__ = ("attributes", "end", "error", "name", "start")

    def __init__(
        self,
        name: str,
        start: datetime,
        end: datetime,
        attributes: dict[str, Any],
        error: str | None = None,
    ) -> None:
        self.name, self.start, self.end = name, start, end
        self.attributes, self.error = attributes, error


class ActivityObservation:
    """Handed to the worker around an activity: it reports the outcome here."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.outcome = "completed"

    def failed(self, exc: BaseException) -> None:
        self.outcome = "failed"
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class OtelTelemetry(Telemetry):
    """Traces and metrics through the OpenTelemetry API."""

    enabled = True

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        version = _version()
        self.tracer = trace.get_tracer("ostinato", version, tracer_provider=tracer_provider)
        meter = metrics.get_meter("ostinato", version, meter_provider=meter_provider)
        self.counters = {
            "started": meter.create_counter(
                "ostinato.orchestrations.started", "{instance}", "Orchestration executions started"
            ),
            OrchestrationStatus.COMPLETED: meter.create_counter(
                "ostinato.orchestrations.completed", "{instance}", "Executions that completed"
            ),
            OrchestrationStatus.FAILED: meter.create_counter(
                "ostinato.orchestrations.failed", "{instance}", "Executions that failed"
            ),
            OrchestrationStatus.TERMINATED: meter.create_counter(
                "ostinato.orchestrations.terminated", "{instance}", "Executions terminated"
            ),
        }
        self.activity_duration = meter.create_histogram(
            "ostinato.activity.duration", "s", "Time an activity function ran"
        )
        self.step_duration = meter.create_histogram(
            "ostinato.orchestration.step.duration", "s", "From locking a step to its commit"
        )
        self.attempts = meter.create_histogram(
            "ostinato.delivery.attempts", "{delivery}", "Deliveries of each work item handed out"
        )
        self.dead_letters = meter.create_counter(
            "ostinato.dead_letters", "{item}", "Messages and work items moved to dead letters"
        )
        meter.create_observable_gauge(
            "ostinato.backlog",
            callbacks=[self._observe_backlog],
            unit="{item}",
            description="Work ready and waiting for a worker, by kind",
        )
        self._watched: list[StorageProvider] = []
        self._traces: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._mutex = threading.Lock()

    # -- trace context ----------------------------------------------------------------------
    @staticmethod
    def _context(trace_context: str | None) -> otel_context.Context | None:
        if not trace_context:
            return None
        return _PROPAGATOR.extract({"traceparent": trace_context})

    def orchestration_scheduled(self, name: str, instance_id: str) -> str | None:
        span = self.tracer.start_span(
            f"create_orchestration:{name}",
            kind=SpanKind.PRODUCER,
            attributes={NAME: name, INSTANCE: instance_id},
        )
        try:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
            return carrier.get("traceparent")
        finally:
            span.end()

    @contextlib.contextmanager
    def step_context(self, trace_context: str | None) -> Iterator[None]:
        context = self._context(trace_context)
        if context is None:
            yield
            return
        token = otel_context.attach(context)
        try:
            yield
        finally:
            otel_context.detach(token)

    def _remember(self, instance_id: str, execution_id: str, trace_context: str | None) -> None:
        with self._mutex:
            self._traces[(instance_id, execution_id)] = trace_context
            self._traces.move_to_end((instance_id, execution_id))
            while len(self._traces) > _REMEMBERED:
                self._traces.popitem(last=False)

    def _trace_of(
        self, instance_id: str, execution_id: str, provider: StorageProvider
    ) -> str | None:
        key = (instance_id, execution_id)
        with self._mutex:
            if key in self._traces:
                return self._traces[key]
        # Another process ran the step that scheduled it: the start event has the context.
        found: str | None = None
        try:
            for event in provider.get_history(instance_id)[:1]:
                if isinstance(event, ExecutionStarted) and event.execution_id == execution_id:
                    found = event.trace_context
        except Exception:
            log.debug("Reading the trace context of %s failed", instance_id, exc_info=True)
        self._remember(instance_id, execution_id, found)
        return found

    # -- orchestration steps ----------------------------------------------------------------
    def step_finished(
        self,
        instance_id: str,
        name: str,
        trace_context: str | None,
        history: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> Callable[[], None] | None:
        start = history[0] if history else None
        if not isinstance(start, ExecutionStarted):
            return None
        self._remember(instance_id, start.execution_id, trace_context)
        base = {NAME: name, INSTANCE: instance_id, EXECUTION: start.execution_id}
        specs: list[_SpanSpec] = []
        counts: list[Any] = []
        scheduled: dict[int, HistoryEvent] | None = None
        for event in new_events:
            if isinstance(event, ExecutionStarted):
                counts.append(self.counters["started"])
            elif isinstance(event, _COMPLETIONS):
                scheduled = scheduled or _scheduling_events(history)
                specs.extend(_completion_span(event, scheduled, base))
            elif isinstance(event, ExecutionCompleted | ContinueAsNew):
                status = (
                    event.status
                    if isinstance(event, ExecutionCompleted)
                    else OrchestrationStatus.CONTINUED_AS_NEW
                )
                error = None
                if isinstance(event, ExecutionCompleted) and event.failure is not None:
                    error = f"{event.failure.error_type}: {event.failure.message}"
                specs.append(
                    _SpanSpec(
                        f"orchestration:{name}",
                        start.timestamp,
                        event.timestamp,
                        {**base, "ostinato.orchestration.status": status.value},
                        error,
                    )
                )
                counter = self.counters.get(status)
                if counter is not None:
                    counts.append(counter)
        if not specs and not counts:
            return None
        parent = self._context(trace_context)

        def emit() -> None:
            for counter in counts:
                counter.add(1, {NAME: name})
            for spec in specs:
                span = self.tracer.start_span(
                    spec.name,
                    context=parent,
                    kind=SpanKind.INTERNAL,
                    attributes=spec.attributes,
                    start_time=_ns(spec.start),
                )
                if spec.error is not None:
                    span.set_status(Status(StatusCode.ERROR, spec.error))
                span.end(end_time=_ns(spec.end))

        return emit

    # -- activities ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def activity(
        self, item: ActivityWorkItem, provider: StorageProvider
    ) -> Iterator[ActivityObservation]:
        task = item.task
        parent = self._context(self._trace_of(task.instance_id, task.execution_id, provider))
        name = "call_http" if task.name == HTTP_ACTIVITY else f"activity:{task.name}"
        attributes: dict[str, Any] = {
            "ostinato.activity.name": task.name,
            INSTANCE: task.instance_id,
            EXECUTION: task.execution_id,
            TASK: task.task_id,
            "ostinato.delivery_count": item.dequeue_count,
        }
        began = time.perf_counter()
        observation: ActivityObservation | None = None
        with self.tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            observation = ActivityObservation(span)
            try:
                yield observation
            finally:
                self.activity_duration.record(
                    time.perf_counter() - began,
                    {"ostinato.activity.name": task.name, "ostinato.outcome": observation.outcome},
                )

    # -- metrics --------------------------------------------------------------------------------
    def delivered(self, kind: str, dequeue_count: int) -> None:
        self.attempts.record(dequeue_count, {KIND: kind})

    def step_committed(self, seconds: float) -> None:
        self.step_duration.record(seconds)

    def dead_lettered(self, kind: str, source: str) -> None:
        self.dead_letters.add(1, {KIND: kind, "ostinato.source": source})

    def watch(self, provider: StorageProvider) -> None:
        with self._mutex:
            self._watched.append(provider)

    def unwatch(self, provider: StorageProvider) -> None:
        with self._mutex, contextlib.suppress(ValueError):
            self._watched.remove(provider)

    def _observe_backlog(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._mutex:
            watched = list(dict.fromkeys(self._watched))
        for provider in watched:
            try:
                backlog = provider.backlog()
            except Exception:
                log.debug("Reading the backlog failed", exc_info=True)
                continue
            if backlog is None:
                continue
            hub = str(getattr(provider, "task_hub", "") or "")
            for kind, count in backlog.items():
                yield Observation(count, {KIND: kind, "ostinato.task_hub": hub})


def _scheduling_events(history: Sequence[HistoryEvent]) -> dict[int, HistoryEvent]:
    return {
        event.task_id: event
        for event in history
        if isinstance(event, TimerCreated | SubOrchestrationInstanceCreated)
    }


def _completion_span(
    event: HistoryEvent, scheduled: dict[int, HistoryEvent], base: dict[str, Any]
) -> list[_SpanSpec]:
    if isinstance(event, TimerFired):
        created = scheduled.get(event.timer_id)
        if not isinstance(created, TimerCreated):
            return []
        return [
            _SpanSpec(
                "timer",
                created.timestamp,
                max(event.timestamp, created.timestamp),
                {**base, TASK: event.timer_id, "ostinato.timer.fire_at": event.fire_at.isoformat()},
            )
        ]
    assert isinstance(event, SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed)
    child = scheduled.get(event.task_scheduled_id)
    if not isinstance(child, SubOrchestrationInstanceCreated):
        return []
    error = None
    if isinstance(event, SubOrchestrationInstanceFailed):
        error = f"{event.failure.error_type}: {event.failure.message}"
    return [
        _SpanSpec(
            f"sub_orchestration:{child.name}",
            child.timestamp,
            event.timestamp,
            {**base, TASK: child.task_id, "ostinato.child_instance_id": child.instance_id},
            error,
        )
    ]


__all__ = ["ActivityObservation", "OtelTelemetry"]
