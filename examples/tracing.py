"""OpenTelemetry tracing: HelloCities twice as sub-orchestrations, a retried activity and a
timer, recorded with the OpenTelemetry SDK and drawn as a trace waterfall.

    python examples/tracing.py docs/trace.svg     # writes the picture docs/observability.md shows

Needs ``pip install 'ostinato[otel]' opentelemetry-sdk``. In an application you would give
the SDK an exporter to Jaeger, Tempo or any OTLP collector instead of the in-memory one.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Generator, Sequence
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

import ostinato as ot

app = ot.App()
_attempts: dict[str, int] = {}
_guard = threading.Lock()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.activity
def book_hotel(ctx: ot.ActivityContext, city: str) -> str:
    with _guard:
        _attempts[ctx.instance_id] = _attempts.get(ctx.instance_id, 0) + 1
        attempt = _attempts[ctx.instance_id]
    if attempt == 1:
        raise ConnectionError("the booking service timed out")
    return f"booked in {city}"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, list[str]]:
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(say_hello, input=city)))
    return outputs


@app.orchestrator
def tour(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    first = yield ctx.call_sub_orchestrator(hello_cities)
    hotel = yield ctx.call_activity(
        book_hotel,
        input="Tokyo",
        retry_policy=ot.RetryPolicy(
            first_retry_interval=timedelta(milliseconds=200), max_number_of_attempts=3
        ),
    )
    yield ctx.create_timer(timedelta(milliseconds=300))
    second = yield ctx.call_sub_orchestrator(hello_cities)
    return [first, hotel, second]


def record_trace(provider: ot.StorageProvider) -> list[Any]:
    """Run one tour with the OpenTelemetry SDK recording; return its finished spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from ostinato.runtime import telemetry

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.configured(tracer_provider):
        client = ot.Client(provider)
        with ot.Worker(app, provider, max_poll_interval=0.05):
            instance_id = client.schedule_new_orchestration(tour)
            client.wait_for_orchestration_completion(instance_id, timeout=60)
    return list(exporter.get_finished_spans())


def waterfall_rows(spans: Sequence[Any]) -> list[tuple[int, str, float, float, bool]]:
    """(depth, label, start ms, duration ms, error) per span, in start order, as a trace
    viewer lays them out: children under their parent."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[Any]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    origin = min(s.start_time for s in spans)
    rows: list[tuple[int, str, float, float, bool]] = []

    def visit(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_time, s.name)):
            error = span.status.status_code.name == "ERROR"
            rows.append(
                (
                    depth,
                    span.name,
                    (span.start_time - origin) / 1e6,
                    (span.end_time - span.start_time) / 1e6,
                    error,
                )
            )
            visit(span.context.span_id, depth + 1)

    visit(None, 0)
    return rows


def render_svg(rows: Sequence[tuple[int, str, float, float, bool]]) -> str:
    """The rows as a Jaeger-style waterfall (SVG)."""
    total = max(start + duration for _, _, start, duration, _ in rows) or 1.0
    label_width, bar_width, row_height = 300, 560, 22
    height = row_height * (len(rows) + 1) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 90}" '
        f'height="{height}" font-family="monospace" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="6" y="15" font-weight="bold">span</text>',
        f'<text x="{label_width}" y="15" font-weight="bold">0 ms</text>',
        f'<text x="{label_width + bar_width - 60}" y="15" font-weight="bold">{total:.0f} ms</text>',
    ]
    for index, (depth, name, start, duration, error) in enumerate(rows):
        y = row_height * (index + 1) + 4
        x = label_width + start / total * bar_width
        width = max(duration / total * bar_width, 2)
        color = "#d9534f" if error else ("#5b8def" if depth == 0 else "#58b368")
        if index % 2:
            parts.append(f'<rect x="0" y="{y}" width="100%" height="{row_height}" fill="#f4f4f4"/>')
        parts.append(f'<text x="{6 + depth * 14}" y="{y + 15}">{escape(name)}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{row_height - 8}" '
            f'fill="{color}" rx="2"/>'
        )
        parts.append(f'<text x="{x + width + 4:.1f}" y="{y + 15}">{duration:.1f} ms</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str]) -> None:
    from ostinato.sqlite import SqliteProvider

    with tempfile.TemporaryDirectory() as directory:
        provider = SqliteProvider(Path(directory) / "trace.db", synchronous="NORMAL")
        try:
            rows = waterfall_rows(record_trace(provider))
        finally:
            provider.close()
    for depth, name, start, duration, error in rows:
        flag = "  ERROR" if error else ""
        print(f"{'  ' * depth}{name:<{44 - 2 * depth}} +{start:8.1f} ms {duration:8.1f} ms{flag}")
    if argv:
        Path(argv[0]).write_text(render_svg(rows), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
