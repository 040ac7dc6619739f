"""The ostinato benchmark harness: one command, one table, the numbers written into the docs.

    uv run python benchmarks/run.py                      # ostinato, every available provider
    uv run python benchmarks/run.py --providers sqlite   # just one
    uv run python benchmarks/run.py --peers              # ... and DBOS, durabletask, Temporal
    uv run python benchmarks/run.py --peers --write      # ... and write BENCHMARKS.md + plot
    uv run python benchmarks/run.py --quick              # small sizes (smoke test)

Workloads (the same for every provider and peer; ``peers/protocol.py`` has the definitions):

* ``hello_cities``: N HelloCities orchestrations (3 sequential activities) started at once,
  orchestrations/s from the first start to the last completion;
* ``latency``: one HelloCities at a time, start-to-completion latency p50/p99;
* ``fan_out``: one orchestration fanning out to N activities and fanning in;
* ``replay``: the round trip of one more external event on a fresh instance and on one whose
  history holds 10,000 events (and, for ostinato, the engine's cost of replaying that history
  from scratch, which is what a worker pays when the instance is not cached);
* ``idle``: N instances waiting on an event: memory and storage per instance;
* ``sweep``: HelloCities throughput with 1/10/100/1000 instances in flight (the plot).
* ``processes`` (SQLite, PostgreSQL): HelloCities/s with 1, 2 and 4 worker processes;
* ``overheads`` (SQLite): paired, alternated HelloCities runs that price lock renewals
  (HelloCities whose activities outlast the renewal interval of a short lock, so every
  activity is renewed, against the same with a lock so long nothing renews; the renewals
  made are counted) and background retention (a worker purging expired instances while it
  works, against none).

Peers run in their own virtual environments (``benchmarks/.venvs/<peer>``, created on first
use from ``benchmarks/peers/<peer>/requirements.txt``), each in a subprocess, in this same
invocation; where a peer would take too long at full size, it runs scaled down and the table
says so. ``--write`` writes ``BENCHMARKS.md`` with the table, the ratios, the settings, a
profile of the SQLite HelloCities run (py-spy) and the throughput plot (``docs/throughput.png``,
drawn with matplotlib); those two tools live in ``benchmarks/.venvs/tools``.

Machines here are shared and noisy: compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import ostinato as ot  # noqa: E402
from ostinato.clock import utcnow  # noqa: E402
from ostinato.history import ExecutionStarted, TaskCompleted  # noqa: E402
from ostinato.orchestration.engine import OrchestrationRun  # noqa: E402
from ostinato.runtime.retention import RetentionPolicy  # noqa: E402
from peers.protocol import (  # noqa: E402
    ROUND_TRIPS,
    latency_result,
    median_run,
    rate_result,
    rss_bytes,
    start_at_once,
    sweep_waves,
    tree_bytes,
)

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
async def slow_hello(ctx: ot.ActivityContext, city: str) -> str:
    """``say_hello`` taking ``RENEWED_ACTIVITY_SECONDS``: longer than the renewal interval of
    ``RENEWED_LOCK``, so its lock is renewed while it runs (``async``: all of the worker's
    100 activity slots run at once, not only its few activity threads)."""
    await asyncio.sleep(RENEWED_ACTIVITY_SECONDS)
    return f"Hello {city}!"


@app.orchestrator
def slow_hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(slow_hello, input=city)))
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


@app.orchestrator
def counter(ctx: ot.OrchestrationContext, _: Any) -> Any:
    count = 0
    while True:
        yield ctx.wait_for_external_event("event")
        count += 1
        ctx.set_custom_status(count)


@app.orchestrator
def idle(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("never")


@app.orchestrator
def fails(ctx: ot.OrchestrationContext, _: Any) -> Any:
    raise ValueError("a finished instance for retention to purge")


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
    """The providers of :data:`PROVIDERS` that can be created here."""
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
def running(
    name: str, directory: Path | None = None
) -> Iterator[tuple[ot.Client, ot.StorageProvider]]:
    """A provider with one worker (defaults) and a client, in a fresh temporary directory."""
    factory, _ = PROVIDERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        provider = factory(directory or Path(tmp))
        try:
            with ot.Worker(app, provider):
                yield ot.Client(provider), provider
        finally:
            provider.close()


# -- workloads (results as in peers/protocol.py) ---------------------------------------------
def _start(client: ot.Client, k: int, orchestrator: Any = hello_cities) -> list[str]:
    """Start ``k`` HelloCities at once (``start_at_once``: from several client threads)."""
    return start_at_once(lambda: client.schedule_new_orchestration(orchestrator), k)


def _wave(client: ot.Client, k: int, orchestrator: Any = hello_cities) -> None:
    _await_all(client, _start(client, k, orchestrator))


def bench_hello_cities(name: str, n: int) -> dict[str, Any]:
    """``n`` HelloCities started at once, in a fresh store each time: the median of
    ``peers.protocol.HELLO_REPEATS`` runs, orchestrations/s, and how long its starts took.
    Also, once each, the same with the ``n`` starts made one by one from one thread, and the
    worker alone (``n`` instances created first, timed from its start)."""
    result = median_run(lambda: _hello_cities_at_once(name, n))
    result["one_thread_per_s"] = _hello_cities_one_thread(name, n)
    result["worker_only_per_s"] = _hello_cities_worker_only(name, n)
    result["bulk_per_s"] = _hello_cities_bulk(name, n)
    return result


def _hello_cities_at_once(name: str, n: int) -> dict[str, Any]:
    """The workload itself: ``n`` started at once, orchestrations/s and the starts' time."""
    with running(name) as (client, _):
        _wave(client, 1)
        started = time.perf_counter()
        ids = _start(client, n)
        starts = time.perf_counter() - started
        _await_all(client, ids)
        result = rate_result(n, time.perf_counter() - started)
    result["starts_seconds"] = starts
    return result


def _hello_cities_one_thread(name: str, n: int) -> float:
    """HelloCities/s when the ``n`` starts are made one by one from one thread."""
    with running(name) as (client, _):
        _wave(client, 1)
        started = time.perf_counter()
        _await_all(client, [client.schedule_new_orchestration(hello_cities) for _ in range(n)])
        return n / (time.perf_counter() - started)


def _await_all(client: ot.Client, ids: list[str]) -> None:
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=600)
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details


def _hello_cities_worker_only(name: str, n: int) -> float:
    """HelloCities/s of a worker that finds ``n`` instances already created."""
    factory, _ = PROVIDERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        provider = factory(Path(tmp))
        try:
            client = ot.Client(provider)
            ids = [client.schedule_new_orchestration(hello_cities) for _ in range(n)]
            started = time.perf_counter()
            with ot.Worker(app, provider):
                _await_all(client, ids)
                return n / (time.perf_counter() - started)
        finally:
            provider.close()


def _hello_cities_bulk(name: str, n: int) -> float:
    """HelloCities/s when one thread starts the ``n`` in one ``schedule_new_orchestrations``."""
    with running(name) as (client, _):
        _wave(client, 1)
        started = time.perf_counter()
        results = client.schedule_new_orchestrations(
            [ot.NewOrchestration(hello_cities) for _ in range(n)]
        )
        _await_all(client, [r.instance_id for r in results if r.instance_id is not None])
        return n / (time.perf_counter() - started)


# -- what lock renewals and retention cost (#15, #21) ------------------------------------------
#: A lock no run holds anything long enough to renew (renewals every third of it).
LONG_LOCK = timedelta(hours=1)
#: The lock of the renewing side: the worker renews work held for a sixth of it (checked
#: every sixth), so each ``slow_hello`` (2.4 sixths) is renewed once or twice. (With a 1.5 s
#: lock on a loaded 2-core machine the renewer fell behind and locks were lost.)
RENEWED_LOCK = timedelta(seconds=3)
RENEWED_ACTIVITY_SECONDS = 1.2
#: Paired runs of each comparison, alternated so the machine's load falls on both sides.
OVERHEAD_PAIRS = 3


def _counted(provider: ot.StorageProvider, names: tuple[str, ...]) -> list[int]:
    """Count calls of ``provider``'s methods ``names`` (one counter, on this instance only)."""
    calls = [0]
    for name in names:
        method = getattr(provider, name)

        def counting(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            calls[0] += 1
            return _method(*args, **kwargs)

        setattr(provider, name, counting)
    return calls


def _overhead_run(
    name: str, n: int, finished: int, orchestrator: Any = hello_cities, **options: Any
) -> dict[str, Any]:
    """``n`` ``orchestrator`` instances at once on a worker with ``options``, on a store that
    already holds ``finished`` FAILED instances (what a retention policy of ``failed=0``
    purges): the rate, the renewals made, the instances purged and this process's CPU
    seconds per instance."""
    factory, _ = PROVIDERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        provider = factory(Path(tmp))
        try:
            client = ot.Client(provider)
            if finished:
                client.schedule_new_orchestrations(
                    [ot.NewOrchestration(fails) for _ in range(finished)]
                )
                with ot.Worker(app, provider):
                    _wait_all_finished(client, finished, status=ot.OrchestrationStatus.FAILED)
            renewals = _counted(
                provider, ("renew_orchestration_work_item_lock", "renew_activity_work_item_lock")
            )
            with ot.Worker(app, provider, **options):
                _wave(client, 1, orchestrator)
                renewals[0] = 0  # the warm-up's are not the run's
                started, cpu = time.perf_counter(), time.process_time()
                _wave(client, n, orchestrator)
                per_s = n / (time.perf_counter() - started)
                cpu_per = (time.process_time() - cpu) / n
                made = renewals[0]
            left = client.query_instances(
                runtime_status={ot.OrchestrationStatus.FAILED},
                page_size=finished + 1,
                fetch_payloads=False,
            ).items
            return {
                "per_s": per_s,
                "renewals": made,
                "purged": finished - len(left),
                "cpu_s": cpu_per,
            }
        finally:
            provider.close()


def _paired(runs: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Run each of ``runs`` ``OVERHEAD_PAIRS`` times, alternating; per run name the median
    rate and CPU time per instance, and the sums of the counters."""
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key in runs}
    for _ in range(OVERHEAD_PAIRS):
        for key, run in runs.items():
            samples[key].append(run())
    out: dict[str, dict[str, Any]] = {}
    for key, results in samples.items():
        out[key] = {
            "per_s": statistics.median(r["per_s"] for r in results),
            "runs_per_s": [r["per_s"] for r in results],
            "cpu_ms": statistics.median(r["cpu_s"] for r in results) * 1000,
            "renewals": sum(r["renewals"] for r in results),
            "purged": sum(r["purged"] for r in results),
        }
    return out


def bench_overheads(name: str, n: int) -> dict[str, Any]:
    """What lock renewals and background retention cost, each as paired runs in one
    invocation:

    * renewals: ``n // 10`` HelloCities whose activities take ``RENEWED_ACTIVITY_SECONDS``
      (the throughput is bounded by them and the worker's 100 activity slots) with
      ``RENEWED_LOCK``, so every activity is renewed while it runs, against the same with a
      lock so long that nothing is renewed; the renewals made and the CPU time per
      instance are reported with the rates;
    * retention: a worker that sweeps ``n`` expired FAILED instances in the background
      (``RetentionPolicy(failed=0)``, default batches and pauses) while it runs ``n``
      HelloCities, against the same store with no retention policy.
    """
    slow = max(n // 10, 10)
    renewals = _paired(
        {
            "renewed_lock": lambda: _overhead_run(
                name, slow, 0, slow_hello_cities, lock_timeout=RENEWED_LOCK
            ),
            "long_lock": lambda: _overhead_run(
                name, slow, 0, slow_hello_cities, lock_timeout=LONG_LOCK
            ),
        }
    )
    policy = RetentionPolicy(failed=timedelta(0))
    retention = _paired(
        {
            "no_retention": lambda: _overhead_run(name, n, n),
            "retention": lambda: _overhead_run(name, n, n, retention=policy),
        }
    )
    both = {**renewals, **retention}
    return {
        "n": n,
        "renewal_n": slow,
        "pairs": OVERHEAD_PAIRS,
        "renewed_lock_seconds": RENEWED_LOCK.total_seconds(),
        "renewed_activity_seconds": RENEWED_ACTIVITY_SECONDS,
        "long_lock_seconds": LONG_LOCK.total_seconds(),
        **{f"{key}_per_s": value["per_s"] for key, value in both.items()},
        **{f"{key}_runs_per_s": value["runs_per_s"] for key, value in both.items()},
        **{f"{key}_cpu_ms": value["cpu_ms"] for key, value in renewals.items()},
        "renewals_renewed_lock": renewals["renewed_lock"]["renewals"],
        "renewals_long_lock": renewals["long_lock"]["renewals"],
        "purged_during_runs": retention["retention"]["purged"],
        "purged_without_retention": retention["no_retention"]["purged"],
    }


# -- scale-out: worker processes ----------------------------------------------------------------
def the_app() -> ot.App:
    """The benchmark app, for worker processes (they import this module)."""
    return app


def shared_factory(name: str, provider: ot.StorageProvider) -> Callable[[], ot.StorageProvider]:
    """A picklable factory for more providers on ``provider``'s store and task hub."""
    if name == "sqlite":
        from ostinato.sqlite import SqliteProvider

        return functools.partial(SqliteProvider, provider.path)
    if name == "postgres":
        from ostinato_postgres import PostgresProvider  # type: ignore[import-not-found,unused-ignore]

        dsn, hub = provider.dsn, provider.task_hub
        return functools.partial(PostgresProvider, dsn, task_hub=hub)
    raise ValueError(f"{name} cannot be shared between processes")


def _wait_all_finished(
    client: ot.Client,
    n: int,
    timeout: float = 600,
    status: ot.OrchestrationStatus = ot.OrchestrationStatus.COMPLETED,
) -> None:
    """Poll (not every provider signals other processes' writes) until ``n`` have ended in
    ``status``."""
    deadline = time.monotonic() + timeout
    active = {
        ot.OrchestrationStatus.PENDING,
        ot.OrchestrationStatus.RUNNING,
    }
    while time.monotonic() < deadline:
        if not client.query_instances(
            runtime_status=active, page_size=1, fetch_payloads=False
        ).items:
            done = client.query_instances(
                runtime_status={status}, page_size=n + 1, fetch_payloads=False
            ).items
            assert len(done) == n, f"{len(done)} of {n} {status.value}"
            return
        time.sleep(0.005)
    raise TimeoutError(f"{n} HelloCities did not finish in {timeout} s")


def bench_processes(name: str, n: int, counts: list[int]) -> dict[str, Any]:
    """HelloCities/s with 1, 2, 4... worker processes (``WorkerSupervisor``) on one store:
    ``n`` started in bulk from this process, timed to the last completion; a fresh task hub
    per count."""
    results: dict[str, Any] = {}
    for count in counts:
        factory, _ = PROVIDERS[name]
        with tempfile.TemporaryDirectory() as tmp:
            provider = factory(Path(tmp))
            try:
                client = ot.Client(provider)
                provider.setup()
                with ot.WorkerSupervisor(the_app, shared_factory(name, provider), processes=count):
                    client.schedule_new_orchestration(hello_cities)  # warm-up
                    _wait_all_finished(client, 1)
                    started = time.perf_counter()
                    client.schedule_new_orchestrations(
                        [ot.NewOrchestration(hello_cities) for _ in range(n)]
                    )
                    _wait_all_finished(client, n + 1)
                    results[str(count)] = n / (time.perf_counter() - started)
            finally:
                provider.close()
    return results


def bench_latency(name: str, runs: int) -> dict[str, Any]:
    """One HelloCities at a time; p50/p99 in ms."""
    samples = []
    with running(name) as (client, _):
        for i in range(runs + 5):
            started = time.perf_counter()
            _wave(client, 1)
            if i >= 5:  # warm-up
                samples.append((time.perf_counter() - started) * 1000)
    return latency_result(samples)


def bench_fan_out(name: str, n: int) -> dict[str, Any]:
    """One orchestration fanning out to ``n`` activities."""
    with running(name) as (client, _):
        started = time.perf_counter()
        instance_id = client.schedule_new_orchestration(fan_out, input=n)
        state = client.wait_for_orchestration_completion(instance_id, timeout=1800)
        elapsed = time.perf_counter() - started
    assert state.output == sum(i * i for i in range(n)), state.failure_details
    return rate_result(n, elapsed)


def _count(client: ot.Client, instance_id: str) -> int:
    return int(client.get_orchestration_state(instance_id).custom_status or 0)


def _round_trip(client: ot.Client, provider: ot.StorageProvider, instance_id: str) -> float:
    """Raise one event and wait until the orchestration has counted it; ms."""
    target = _count(client, instance_id) + 1
    started = time.perf_counter()
    client.raise_orchestration_event(instance_id, "event", data=target)
    while True:
        version = provider.changes.version
        if _count(client, instance_id) >= target:
            return (time.perf_counter() - started) * 1000
        provider.changes.wait(version, 0.05)


def bench_replay(name: str, events: int) -> dict[str, Any]:
    """One more event's round trip at a short history and at ``events`` history events."""
    with running(name) as (client, provider):
        instance_id = client.schedule_new_orchestration(counter)
        client.wait_for_orchestration_start(instance_id)
        short = [_round_trip(client, provider, instance_id) for _ in range(ROUND_TRIPS)]
        while len(client.get_orchestration_history(instance_id)) < events:
            target = _count(client, instance_id) + 500
            for _ in range(500):
                client.raise_orchestration_event(instance_id, "event")
            while _count(client, instance_id) < target:
                time.sleep(0.01)
        history = len(client.get_orchestration_history(instance_id))
        long = [_round_trip(client, provider, instance_id) for _ in range(ROUND_TRIPS)]
        client.terminate_orchestration(instance_id)
    return {
        "history_events": history,
        "short_ms": statistics.median(short),
        "long_ms": statistics.median(long),
    }


def bench_engine_replay(events: int) -> dict[str, Any]:
    """Replay of a long history from scratch vs. one more event on a cached run (engine only)."""
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
    return {
        "history_events": len(history),
        "replay_ms": replay_ms,
        "cached_long_us": cached_us,
        "cached_short_us": short_us,
    }


def bench_idle(name: str, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """``n`` instances left waiting on an event: RSS and storage per instance.

    Runs in a fresh process (``--idle-child``) so that the memory other workloads left behind
    does not blur the resident-size difference.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--idle-child", name]
    done = subprocess.run(
        [*command, "--idle", str(n)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the idle workload's process exited {done.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _idle_child(name: str, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The body of :func:`bench_idle`, in its own process."""
    pending = {ot.OrchestrationStatus.PENDING}

    def settle(client: ot.Client) -> None:
        while client.query_instances(
            runtime_status=pending, page_size=1, fetch_payloads=False
        ).items:
            time.sleep(0.25)

    with tempfile.TemporaryDirectory() as tmp:
        with running(name, Path(tmp)) as (client, _):
            for _ in range(10):  # warm-up: code paths, caches, connections
                client.schedule_new_orchestration(idle)
            settle(client)
            gc.collect()
            rss_before = rss_bytes()
            started = time.perf_counter()
            for i in range(n):
                client.schedule_new_orchestration(idle)
                if i and i % 20000 == 0:
                    log(f"    idle: {i:,} started")
            settle(client)
            elapsed = time.perf_counter() - started
            running_page = client.query_instances(
                runtime_status={ot.OrchestrationStatus.RUNNING}, page_size=1
            )
            assert running_page.items, "the idle instances are not running"
            gc.collect()
            rss = rss_bytes() - rss_before
        storage = tree_bytes(tmp)  # after close: the WAL is checkpointed into the file
    result: dict[str, Any] = {"n": n, "seconds": elapsed, "rss_bytes_per_instance": rss / n}
    if storage:
        result["storage_bytes_per_instance"] = storage / n
    else:  # the memory provider, or a server's storage outside this directory
        result["storage_note"] = "in memory" if name == "memory" else "on the server, not measured"
    return result


def bench_sweep(name: str, levels: list[int], total: int) -> dict[str, Any]:
    """HelloCities/s with at most ``level`` instances in flight, per level."""
    with running(name) as (client, _):
        _wave(client, 1)
        return {
            str(level): sweep_waves(level, total, lambda k: _wave(client, k)) for level in levels
        }


def bench_provider_calls(name: str, runs: int, at_once: bool = False) -> dict[str, Any]:
    """Provider calls and their wall time per HelloCities.

    One at a time (``at_once=False``: the critical path of one instance), or ``runs`` started
    at once (how well the worker batches work into fewer, larger transactions).
    """
    from profiling import CountingProvider

    factory, _ = PROVIDERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        inner = factory(Path(tmp))
        counting: Any = CountingProvider(inner)
        try:
            with ot.Worker(app, counting):
                client = ot.Client(counting)
                for _ in range(5):
                    _wave(client, 1)
                counting.reset()
                started = time.perf_counter()
                if at_once:
                    _wave(client, runs)
                else:
                    for _ in range(runs):
                        _wave(client, 1)
                elapsed = time.perf_counter() - started
        finally:
            inner.close()
    calls = {
        method: {
            "per_orchestration": count / runs,
            "ms_per_call": counting.seconds[method] * 1000 / count,
            "ms_per_orchestration": counting.seconds[method] * 1000 / runs,
        }
        for method, count in counting.calls.items()
    }
    return {
        "provider": name,
        "runs": runs,
        "at_once": at_once,
        "ms_per_orchestration": elapsed * 1000 / runs,
        "calls": calls,
    }


# -- sizes and the command --------------------------------------------------------------------
FULL = {
    "hello": 1000,
    "latency": 200,
    "fan_out": 10000,
    "history": 10000,
    "idle": 100000,
    "sweep": [1, 10, 100, 1000],
    "sweep_total": 200,
    "processes": [1, 2, 4],
}
QUICK = {
    "hello": 100,
    "latency": 20,
    "fan_out": 1000,
    "history": 1000,
    "idle": 1000,
    "sweep": [1, 10, 100],
    "sweep_total": 50,
    "processes": [1, 2],
}
PEER_LIMITS: dict[str, dict[str, int]] = {
    # Idle instances cost a thread (DBOS), a Python object tree in the test sidecar
    # (durabletask) or a workflow per instance in the dev server (Temporal); 100,000 would
    # take many minutes each. Fan-out is bounded by per-peer start rates.
    "dbos": {"idle": 1000, "fan_out": 1000},
    "durabletask": {"idle": 1000},
    "temporal": {"idle": 1000, "fan_out": 2000},
    "dbos-postgres": {"idle": 1000, "fan_out": 1000},
}
PEERS = ["dbos", "dbos-postgres", "durabletask", "temporal"]
#: Peer columns that run another peer's script on another store: (script, column name).
PEER_VARIANTS = {"dbos-postgres": ("dbos", "dbos/postgres")}
#: HelloCities runs recorded by the profile: one lasts about a second, and py-spy's --gil
#: samples only while a thread holds the GIL, so one run gives too few samples.
PROFILED_RUNS = 3
PEER_WORKLOADS = ["hello_cities", "latency", "fan_out", "replay", "idle", "sweep"]
#: Workloads only ostinato runs, and the providers they run on.
OSTINATO_WORKLOADS = {"processes": ("sqlite", "postgres"), "overheads": ("sqlite",)}
#: Sizes of those workloads (not passed to the peers).
OSTINATO_SIZES = {"processes"}


def run_ostinato(
    name: str, sizes: dict[str, Any], workloads: list[str], log: Callable[[str], None]
) -> dict[str, Any]:
    """Every workload on one ostinato provider; ``{"results": ..., "errors": ...}``."""
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "hello_cities": lambda: bench_hello_cities(name, sizes["hello"]),
        "latency": lambda: bench_latency(name, sizes["latency"]),
        "fan_out": lambda: bench_fan_out(name, sizes["fan_out"]),
        "replay": lambda: bench_replay(name, sizes["history"]),
        "idle": lambda: bench_idle(name, sizes["idle"], log),
        "sweep": lambda: bench_sweep(name, sizes["sweep"], sizes["sweep_total"]),
        "processes": lambda: bench_processes(name, sizes["hello"], sizes["processes"]),
        "overheads": lambda: bench_overheads(name, sizes["hello"]),
    }
    out: dict[str, Any] = {"results": {}, "errors": {}}
    for workload in workloads:
        if name not in OSTINATO_WORKLOADS.get(workload, (name,)):
            continue
        started = time.perf_counter()
        try:
            out["results"][workload] = calls[workload]()
        except Exception as exc:  # noqa: BLE001 - a failed workload is reported, not fatal
            out["errors"][workload] = f"{type(exc).__name__}: {exc}"
        log(
            f"  ostinato/{name} {workload}: {time.perf_counter() - started:.1f} s "
            + json.dumps(out["results"].get(workload) or out["errors"].get(workload))
        )
    return out


def _revision() -> str:
    """The checkout's commit, and whether ostinato's own code differed from it at the start."""
    root = str(HERE.parent)
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "core/src", "providers"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes to core/providers" if dirty else "")


def _peer_environment(peer: str) -> dict[str, str]:
    """Environment variables for a peer's script: DBOS on PostgreSQL gets a fresh database
    on the cluster ostinato/postgres uses (raises ``ImportError`` without PostgreSQL)."""
    if peer != "dbos-postgres":
        return {}
    testing = __import__("ostinato_postgres.testing").testing
    return {"BENCH_DBOS_DATABASE_URL": testing.benchmark_database_url("bench_dbos")}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table, optionally write BENCHMARKS.md and the plot."""
    import report

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", nargs="*", help="ostinato providers (default: available)")
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        help="also run these peers (no names: all of them; dbos-postgres only where"
        " ostinato/postgres can run)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--workloads",
        nargs="*",
        choices=[*PEER_WORKLOADS, *OSTINATO_WORKLOADS],
        help="only these workloads",
    )
    parser.add_argument("--idle", type=int, help="idle instances for ostinato (default 100,000)")
    parser.add_argument(
        "--peer-full", action="store_true", help="run the peers at full size too (slow)"
    )
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds per peer")
    parser.add_argument(
        "--write",
        nargs="?",
        type=Path,
        const=HERE.parent / "BENCHMARKS.md",
        help="write the report (default BENCHMARKS.md) and docs/throughput.png",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument(
        "--plot",
        type=Path,
        default=HERE.parent / "docs" / "throughput.png",
        help="where --write puts the plot (default docs/throughput.png)",
    )
    parser.add_argument("--json", type=Path, help="also dump all raw results to this file")
    parser.add_argument(
        "--render",
        type=Path,
        help="no benchmarks: re-render the table/report from a file written by --json",
    )
    parser.add_argument("--profile-target", help=argparse.SUPPRESS)
    parser.add_argument("--idle-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    if args.idle is not None:
        sizes["idle"] = args.idle
    if args.idle_child:  # the process of one idle workload (see bench_idle)
        result = _idle_child(args.idle_child, sizes["idle"], lambda m: print(m, file=sys.stderr))
        print(json.dumps(result), flush=True)
        return 0
    if args.profile_target:  # the process py-spy records (see profiling.py)
        for _ in range(PROFILED_RUNS):
            _hello_cities_at_once(args.profile_target, sizes["hello"])
        return 0

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.render:
        data = json.loads(args.render.read_text(encoding="utf-8"))
        data["rendered_from"] = str(args.render)
        print(report.table(data))
        if args.write:
            if not args.no_plot:
                data["plot"] = report.plot(data, args.plot, log)
            args.write.write_text(report.markdown(data, args.write, args.plot), encoding="utf-8")
            log(f"Wrote {args.write}")
        return 0
    workloads = args.workloads or [*PEER_WORKLOADS, *OSTINATO_WORKLOADS]
    providers = args.providers or available_providers()
    data: dict[str, Any] = {
        "sizes": sizes,
        "systems": {},
        "started": time.time(),
        "command": "uv run python benchmarks/run.py " + " ".join(argv or sys.argv[1:]),
        "revision": _revision(),
    }
    for name in providers:
        log(f"ostinato/{name} ...")
        load = os.getloadavg()[0]
        data["systems"][f"ostinato/{name}"] = {
            "kind": "ostinato",
            "version": ot.__version__,
            "settings": PROVIDERS[name][1],
            "sizes": {k: v for k, v in sizes.items() if isinstance(v, int)},
            **run_ostinato(name, sizes, workloads, log),
            "load": [load, os.getloadavg()[0]],
        }
    if "replay" in workloads:
        data["engine_replay"] = bench_engine_replay(sizes["history"])
    if args.peers is not None:
        from peers.runner import run_peer

        chosen = args.peers or [p for p in PEERS if p != "dbos-postgres" or "postgres" in providers]
        for peer in chosen:
            peer_sizes = {k: v for k, v in sizes.items() if k not in OSTINATO_SIZES}
            peer_sizes["idle"] = min(sizes["idle"], FULL["idle"])
            if not args.peer_full:
                for key, limit in PEER_LIMITS.get(peer, {}).items():
                    peer_sizes[key] = min(peer_sizes[key], limit)
            load = os.getloadavg()[0]
            peer_workloads = [w for w in workloads if w in PEER_WORKLOADS]
            script, column = PEER_VARIANTS.get(peer, (peer, peer))
            try:
                env = _peer_environment(peer)
            except ImportError as exc:
                data["systems"][column] = {
                    "kind": "peer",
                    "results": {},
                    "errors": {"setup": str(exc)},
                }
                continue
            run = run_peer(script, peer_sizes, peer_workloads, args.peer_timeout, log, env, peer)
            data["systems"][column] = {
                "kind": "peer",
                **run.__dict__,
                "load": [load, os.getloadavg()[0]],
            }
            log(f"  {peer}: {json.dumps(run.results)} {json.dumps(run.errors)}")
    data["finished"] = time.time()
    if args.write and not args.no_profile and "sqlite" in providers:
        import profiling

        data["profile"] = profiling.profile_hello_cities(
            "sqlite", sizes["hello"], PROFILED_RUNS, log
        )
        data["provider_calls"] = bench_provider_calls("sqlite", 100 if not args.quick else 20)
        data["provider_calls_at_once"] = bench_provider_calls("sqlite", sizes["hello"], True)
        with tempfile.TemporaryDirectory() as tmp:
            data["commit_cost"] = profiling.commit_cost(tmp)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(report.table(data))
    if args.write:
        if args.no_plot:
            data["plot"] = "skipped (--no-plot)"
        else:
            data["plot"] = report.plot(data, args.plot, log)
        args.write.write_text(report.markdown(data, args.write, args.plot), encoding="utf-8")
        log(f"Wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
