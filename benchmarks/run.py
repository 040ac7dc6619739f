"""The ostinato benchmark harness: one command, one table, numbers written into the docs.

    uv run python benchmarks/run.py                      # every available provider, default sizes
    uv run python benchmarks/run.py --providers memory   # just one
    uv run python benchmarks/run.py --quick              # small sizes (smoke test)
    uv run python benchmarks/run.py --write docs/benchmarks.md

Workloads (per provider, all in this one process and run):

* ``hello_cities``: N HelloCities orchestrations (3 sequential activities) started at once,
  throughput in orchestrations/s from the first start to the last completion;
* ``latency``: one HelloCities at a time, end-to-end start-to-completion latency p50/p99;
* ``fan_out_1k`` / ``fan_out_10k``: one orchestration fanning out to 1,000 / 10,000 activities;
* ``replay_10k``: replaying a 10,000-event history from scratch, vs. applying one more event
  to a cached run (what a worker does for a busy instance), which must not depend on history
  length.

Machines here are shared and noisy: compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ostinato as ot
from ostinato.engine import OrchestrationRun
from ostinato.history import ExecutionStarted, TaskCompleted, utcnow

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity(say_hello, input="London")))
    return outputs


@app.activity
def square(ctx: ot.ActivityContext, n: int) -> int:
    return n * n


@app.orchestrator
def fan_out(ctx: ot.OrchestrationContext, n: int) -> Any:
    results = yield ot.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    return sum(results)


@app.orchestrator
def long_lived(ctx: ot.OrchestrationContext, _: Any) -> Any:
    total = 0
    while True:
        total += yield ctx.call_activity(square, input=1)


# -- providers --------------------------------------------------------------------------------
ProviderFactory = Callable[[Path], ot.StorageProvider]


def _memory(_: Path) -> ot.StorageProvider:
    return ot.InMemoryProvider()


def _sqlite(directory: Path) -> ot.StorageProvider:
    from ostinato.sqlite import SqliteProvider  # type: ignore[import-not-found,unused-ignore]

    provider: ot.StorageProvider = SqliteProvider(str(directory / "bench.db"))
    return provider


PROVIDERS: dict[str, tuple[ProviderFactory, str]] = {
    "memory": (_memory, "in-process, not durable"),
    "sqlite": (_sqlite, "file, WAL, synchronous=FULL (durable commits)"),
    "postgres": (
        lambda tmp: __import__("ostinato_postgres.testing").testing.benchmark_provider(tmp),
        "PostgreSQL: OSTINATO_POSTGRES_DSN, else a local throwaway cluster, fsync on",
    ),
    "mssql": (
        lambda tmp: __import__("ostinato_mssql.testing").testing.benchmark_provider(tmp),
        "SQL Server at OSTINATO_MSSQL_CONNECTION_STRING (only when set)",
    ),
}


def available_providers() -> list[str]:
    names = []
    for name, (factory, _) in PROVIDERS.items():
        try:
            with tempfile.TemporaryDirectory() as tmp:
                factory(Path(tmp)).close()
        except ImportError:
            continue
        names.append(name)
    return names


@contextmanager
def running(name: str) -> Iterator[tuple[ot.Client, ot.StorageProvider]]:
    factory, _ = PROVIDERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        provider = factory(Path(tmp))
        try:
            with ot.Worker(app, provider):
                yield ot.Client(provider), provider
        finally:
            provider.close()


# -- workloads --------------------------------------------------------------------------------
@dataclass
class Row:
    provider: str
    workload: str
    result: str
    detail: str = ""


def bench_hello_cities(name: str, n: int) -> Row:
    with running(name) as (client, _):
        client.wait_for_orchestration_completion(client.schedule_new_orchestration(hello_cities))
        started = time.perf_counter()
        ids = [client.schedule_new_orchestration(hello_cities) for _ in range(n)]
        for instance_id in ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=600)
            assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
        elapsed = time.perf_counter() - started
    return Row(name, f"hello_cities x{n}", f"{n / elapsed:,.0f} orch/s", f"{elapsed:.2f} s total")


def bench_latency(name: str, runs: int) -> Row:
    samples = []
    with running(name) as (client, _):
        for i in range(runs + 5):
            started = time.perf_counter()
            instance_id = client.schedule_new_orchestration(hello_cities)
            client.wait_for_orchestration_completion(instance_id, timeout=60)
            if i >= 5:  # warm-up
                samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Row(name, f"latency x{runs}", f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms")


def bench_fan_out(name: str, n: int) -> Row:
    with running(name) as (client, _):
        started = time.perf_counter()
        instance_id = client.schedule_new_orchestration(fan_out, input=n)
        state = client.wait_for_orchestration_completion(instance_id, timeout=1800)
        elapsed = time.perf_counter() - started
    assert state.output == sum(i * i for i in range(n)), state.failure_details
    return Row(name, f"fan_out x{n:,}", f"{elapsed:.2f} s", f"{n / elapsed:,.0f} activities/s")


def bench_replay(events: int) -> Row:
    """Replay cost of a long history vs. one more event on a cached run (engine only)."""
    converter = ot.JsonDataConverter()
    run = OrchestrationRun(app, "long", converter)
    run.step([ExecutionStarted(name="long_lived", execution_id="e")], utcnow())
    task_id = 0
    while len(run.history) < events:
        run.step([TaskCompleted(task_scheduled_id=task_id, result="1")], utcnow())
        task_id += 1
    history = list(run.history)
    started = time.perf_counter()
    replayed = OrchestrationRun(app, "long", converter)
    replayed.replay(history)
    replay_ms = (time.perf_counter() - started) * 1000

    def one_more(r: OrchestrationRun, tid: int) -> float:
        t0 = time.perf_counter()
        r.step([TaskCompleted(task_scheduled_id=tid, result="1")], utcnow())
        return (time.perf_counter() - t0) * 1e6

    cached_us = statistics.median(one_more(replayed, task_id + k) for k in range(200))
    short = OrchestrationRun(app, "short", converter)
    short.step([ExecutionStarted(name="long_lived", execution_id="e")], utcnow())
    short_us = statistics.median(one_more(short, k) for k in range(200))
    return Row(
        "engine",
        f"replay {len(history):,} events",
        f"{replay_ms:.0f} ms",
        f"one more event, cached: {cached_us:.0f} µs at {len(history):,} events vs "
        f"{short_us:.0f} µs at a short history",
    )


# -- output -----------------------------------------------------------------------------------
def render(rows: list[Row], args: argparse.Namespace, providers: list[str]) -> str:
    lines = [
        "<!-- Generated by `uv run python benchmarks/run.py --write docs/benchmarks.md`; "
        "do not edit by hand. -->",
        "# Benchmarks",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
        f"{_cpu_count()} CPUs, Python {platform.python_version()}, ostinato {ot.__version__}.",
        "",
        "Providers: "
        + "; ".join(f"`{p}` ({PROVIDERS[p][1]})" for p in providers)
        + ". Worker defaults, one worker process. The machine is shared and noisy: compare",
        "rows of one run with each other; absolute numbers drift between runs.",
        "",
        "| provider | workload | result | detail |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.provider} | {r.workload} | {r.result} | {r.detail} |" for r in rows]
    lines.append("")
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--providers", nargs="*", help="providers to run (default: all available)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--write", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    providers = args.providers or available_providers()
    n_hello, n_latency, fan_sizes, events = (
        (100, 20, [100, 1000], 1000) if args.quick else (1000, 200, [1000, 10000], 10000)
    )
    rows: list[Row] = []

    def record(row: Row) -> None:
        rows.append(row)
        print(f"{row.provider:>8}  {row.workload:<22} {row.result:>18}   {row.detail}", flush=True)

    for name in providers:
        record(bench_hello_cities(name, n_hello))
        record(bench_latency(name, n_latency))
        for size in fan_sizes:
            record(bench_fan_out(name, size))
    record(bench_replay(events))
    table = render(rows, args, providers)
    print()
    print(table)
    if args.write:
        args.write.write_text(table, encoding="utf-8")
        print(f"Wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
