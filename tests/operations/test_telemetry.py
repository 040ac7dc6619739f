"""OpenTelemetry: one trace per instance, one span per activity execution (even after replays
and a worker restart), spans for sub-orchestrations and timers, metrics, correlated logs.
Checked with the OpenTelemetry SDK's in-memory exporters on a SQLite file."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from ostinato.runtime import telemetry
from ostinato.sqlite import SqliteProvider
from ostinato.status import OrchestrationStatus

from .conftest import Factory

otel_sdk = pytest.importorskip("opentelemetry.sdk", reason="the ostinato[otel] extra is needed")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs.export import (  # noqa: E402
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

app = ot.App()
activity_log = logging.getLogger("tests.telemetry.activities")
_attempts: Counter[str] = Counter()
_attempts_guard = threading.Lock()
_trace_ids_seen: list[int] = []


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    activity_log.warning("greeting %s", city)
    _trace_ids_seen.append(trace.get_current_span().get_span_context().trace_id)
    return f"Hello {city}!"


@app.activity
def flaky(ctx: ot.ActivityContext, key: str) -> str:
    with _attempts_guard:
        _attempts[key] += 1
        attempt = _attempts[key]
    if attempt == 1:
        raise RuntimeError(f"{key}: first attempt fails")
    return f"{key} ok after {attempt}"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, list[str]]:
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(say_hello, input=city)))
    return outputs


@app.orchestrator
def tour(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    first = yield ctx.call_sub_orchestrator(hello_cities)
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    retried = yield ctx.call_activity(
        flaky,
        input=ctx.instance_id,
        retry_policy=ot.RetryPolicy(
            first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3
        ),
    )
    yield ctx.create_timer(timedelta(milliseconds=200))
    second = yield ctx.call_sub_orchestrator(hello_cities)
    return [first, retried, second]


@pytest.fixture
def exporters() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    with telemetry.configured(tracer_provider, MeterProvider(metric_readers=[reader])):
        yield spans, reader


def _wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _names(spans: tuple[ReadableSpan, ...]) -> Counter[str]:
    return Counter(span.name for span in spans)


def _metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


# The SDK's own handler (deprecated in favour of opentelemetry-instrumentation-logging, which
# wraps the same thing) is the simplest way to export log records here.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hello_cities_with_sub_orchestrations_retries_replays_and_a_restart(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader], tmp_path: Any
) -> None:
    spans, reader = exporters
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    handler = LoggingHandler(logger_provider=logger_provider)
    activity_log.addHandler(handler)
    provider = SqliteProvider(tmp_path / "hub.db", synchronous="NORMAL")
    client = ot.Client(provider)
    try:
        # cache_size=0: every step replays the whole history.
        with ot.Worker(app, provider, max_poll_interval=0.05, cache_size=0):
            instance_id = client.schedule_new_orchestration(tour, instance_id="tour-1")
            _wait_for(
                lambda: (
                    (s := client.get_orchestration_state(instance_id)) is not None
                    and s.custom_status == "waiting"
                )
            )
        first_worker = _names(spans.get_finished_spans())
        # A new worker (a restart: nothing cached) replays everything and carries on.
        with ot.Worker(app, provider, max_poll_interval=0.05, cache_size=0):
            client.raise_orchestration_event(instance_id, "go")
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    finally:
        activity_log.removeHandler(handler)
        provider.close()
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    finished = spans.get_finished_spans()
    names = _names(finished)
    assert first_worker["activity:say_hello"] == 3
    assert names == {
        "create_orchestration:tour": 1,
        "orchestration:tour": 1,
        "sub_orchestration:hello_cities": 2,
        "orchestration:hello_cities": 2,
        "activity:say_hello": 6,  # one per execution: none from replays or the restart
        "activity:flaky": 2,  # the failed attempt and the retry
        "timer": 2,  # the retry's back-off and the orchestration's own
    }
    # One trace, started by the client's span; everything is its child.
    (root,) = [s for s in finished if s.name == "create_orchestration:tour"]
    assert root.context is not None
    trace_id = root.context.trace_id
    assert {s.context.trace_id for s in finished if s.context} == {trace_id}
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id
        for s in finished
        if s is not root
    )
    flaky_spans = sorted(
        (s for s in finished if s.name == "activity:flaky"), key=lambda s: s.start_time or 0
    )
    assert [s.status.status_code for s in flaky_spans] == [StatusCode.ERROR, StatusCode.UNSET]
    (orchestration,) = [s for s in finished if s.name == "orchestration:tour"]
    assert orchestration.attributes is not None
    assert orchestration.attributes["ostinato.instance_id"] == "tour-1"
    assert orchestration.start_time is not None and orchestration.end_time is not None
    assert orchestration.end_time - orchestration.start_time > 200_000_000  # spans the timer
    # Logs made inside an activity carry its trace and span.
    assert set(_trace_ids_seen[-6:]) == {trace_id}
    records = [r.log_record for r in log_exporter.get_finished_logs()]
    greetings = [r for r in records if "greeting" in str(r.body)]
    assert len(greetings) == 6 and {r.trace_id for r in greetings} == {trace_id}
    # Metrics.
    points = _metric_points(reader)
    started = {
        p.attributes["ostinato.orchestration.name"]: p.value
        for p in points["ostinato.orchestrations.started"]
    }
    completed = {
        p.attributes["ostinato.orchestration.name"]: p.value
        for p in points["ostinato.orchestrations.completed"]
    }
    assert started == completed == {"tour": 1, "hello_cities": 2}
    durations = {
        (p.attributes["ostinato.activity.name"], p.attributes["ostinato.outcome"]): p.count
        for p in points["ostinato.activity.duration"]
    }
    assert durations == {
        ("say_hello", "completed"): 6,
        ("flaky", "failed"): 1,
        ("flaky", "completed"): 1,
    }
    assert sum(p.count for p in points["ostinato.orchestration.step.duration"]) > 0
    attempts = {p.attributes["ostinato.kind"]: p for p in points["ostinato.delivery.attempts"]}
    assert attempts["activity"].count == 8 and attempts["activity"].min == 1


def test_backlog_is_observed_while_a_worker_runs(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    _, reader = exporters
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    for n in range(3):
        client.schedule_new_orchestration(hello_cities, instance_id=f"queued-{n}")
    blocked = ot.App()  # knows nothing: the worker takes no work, the backlog stays
    worker = ot.Worker(blocked, provider, max_poll_interval=0.05)
    telemetry.current().watch(provider)
    try:
        backlog = {
            p.attributes["ostinato.kind"]: p.value
            for p in _metric_points(reader)["ostinato.backlog"]
        }
    finally:
        telemetry.current().unwatch(provider)
    assert backlog == {"orchestrations": 3, "activities": 0}
    del worker


def test_without_opentelemetry_the_hooks_do_nothing() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import ostinato as ot\n"
        "from ostinato.runtime import telemetry\n"
        "t = telemetry.current()\n"
        "assert type(t) is telemetry.Telemetry, t\n"
        "assert 'ostinato.runtime.telemetry.otel' not in sys.modules\n"
        "p = ot.InMemoryProvider(); c = ot.Client(p)\n"
        "iid = c.schedule_new_orchestration('x')\n"
        "assert p.get_instance(iid) is not None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_with_opentelemetry_but_no_sdk_the_hooks_do_nothing_until_one_is_set() -> None:
    """The API alone hands out proxies that record nothing: the hooks stay the empty ones
    (and import nothing) until a global provider is set, then spans are recorded."""
    code = (
        "import sys, time\n"
        "import ostinato as ot\n"
        "from ostinato.runtime import telemetry\n"
        "assert type(telemetry.current()) is telemetry.Telemetry\n"
        "p = ot.InMemoryProvider(); c = ot.Client(p)\n"
        "c.schedule_new_orchestration('x')\n"
        "assert 'ostinato.runtime.telemetry.otel' not in sys.modules\n"
        "assert 'opentelemetry.trace' not in sys.modules\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import (\n"
        "    InMemorySpanExporter)\n"
        "exporter = InMemorySpanExporter(); tp = TracerProvider()\n"
        "tp.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(tp)\n"
        "time.sleep(telemetry.RECHECK_SECONDS)\n"
        "assert type(telemetry.current()).__name__ == 'OtelTelemetry'\n"
        "c.schedule_new_orchestration('x')\n"
        "names = [s.name for s in exporter.get_finished_spans()]\n"
        "assert names == ['create_orchestration:x'], names\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_backlog_counts_ready_work(make: Factory) -> None:
    provider = make()
    assert provider.backlog() == {"orchestrations": 0, "activities": 0}
    client = ot.Client(provider)
    for n in range(3):
        client.schedule_new_orchestration("job", instance_id=f"b-{n}")
    assert provider.backlog() == {"orchestrations": 3, "activities": 0}


def test_the_docs_trace_picture_is_what_the_example_records() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from examples import tracing

    rows = tracing.waterfall_rows(tracing.record_trace(ot.InMemoryProvider()))
    names = Counter(name for _, name, _, _, _ in rows)
    assert names == {
        "create_orchestration:tour": 1,
        "orchestration:tour": 1,
        "sub_orchestration:hello_cities": 2,
        "orchestration:hello_cities": 2,
        "activity:say_hello": 6,
        "activity:book_hotel": 2,
        "timer": 2,
    }
    assert [depth for depth, *_ in rows].count(0) == 1  # one root: the client's span
    svg = tracing.render_svg(rows)
    shipped = (root / "docs" / "trace.svg").read_text(encoding="utf-8")
    label = re.compile(r'<text x="\d+" y="\d+">([a-z_:]+)</text>')
    assert Counter(label.findall(shipped)) == Counter(label.findall(svg)) == names, (
        "regenerate it: python examples/tracing.py docs/trace.svg"
    )
