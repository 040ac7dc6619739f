"""What a peer benchmark script and the harness agree on (standard library only).

Each peer script (``benchmarks/peers/<peer>/bench.py``) runs inside the peer's own virtual
environment, so it cannot import ostinato or the harness: it imports only this module. It
subclasses :class:`PeerBench`, implements the workloads, and calls :func:`main`, which reads the
sizes from the command line, runs every workload it was asked for (one failure does not stop the
others), and prints one JSON document on the last line of stdout::

    {"peer": "dbos", "version": "3.4.0", "settings": "...",
     "results": {"hello_cities": {...}, ...}, "errors": {"fan_out": "TimeoutError: ..."}}

Workloads and the keys of their results (identical for ostinato, see ``benchmarks/run.py``):

* ``hello_cities(n)``: ``n`` HelloCities orchestrations (3 sequential activities) started at
  once (:func:`start_at_once`), then all awaited -> ``{"n", "seconds", "per_s"}``;
* ``latency(runs)``: one HelloCities at a time, start to result -> ``{"runs", "p50_ms",
  "p99_ms"}``;
* ``fan_out(n)``: one orchestration fanning out to ``n`` activities and summing the results ->
  ``{"n", "seconds", "per_s"}``;
* ``replay(events)``: an orchestration that counts external events, acknowledging each in a
  way the client can read (custom status, query, event); the round trip of one more event,
  median of :data:`ROUND_TRIPS`, on a fresh instance and again once its history holds at least
  ``events`` events -> ``{"history_events", "short_ms", "long_ms"}``;
* ``idle(n)``: ``n`` instances started and left waiting for an event that never comes ->
  ``{"n", "seconds", "rss_bytes_per_instance", "storage_bytes_per_instance"}``;
* ``sweep(levels, total)``: HelloCities throughput with at most ``level`` instances in flight
  (waves of ``level`` instances until ``max(level, total)`` have completed) ->
  ``{"<level>": per_s, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

ROUND_TRIPS = 20
"""Round trips measured per history length in the ``replay`` workload."""

START_THREADS = 16
"""Client threads that start a wave's instances "at once" (a peer whose client is asyncio
native starts them with ``asyncio.gather`` instead)."""

WORKLOADS = ("hello_cities", "latency", "fan_out", "replay", "idle", "sweep")


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def latency_result(samples_ms: list[float]) -> dict[str, Any]:
    """The ``latency`` result of a list of round trips in milliseconds."""
    return {
        "runs": len(samples_ms),
        "p50_ms": statistics.median(samples_ms),
        "p99_ms": percentile(samples_ms, 0.99),
    }


def rate_result(n: int, seconds: float) -> dict[str, Any]:
    """The result of ``n`` things done in ``seconds``."""
    return {"n": n, "seconds": seconds, "per_s": n / seconds}


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from ``/proc``."""
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_bytes(path: str) -> int:
    """Total size of the files under ``path`` (or of the file ``path``)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                continue
    return total


def start_at_once(start: Callable[[], T], k: int) -> list[T]:
    """``k`` calls of ``start`` made concurrently from :data:`START_THREADS` client threads,
    each making its share one after another (a single call is made inline)."""
    if k == 1:
        return [start()]
    threads = min(START_THREADS, k)
    shares = [k // threads + (1 if n < k % threads else 0) for n in range(threads)]
    with ThreadPoolExecutor(threads, thread_name_prefix="bench-start") as pool:
        chunks = list(pool.map(lambda share: [start() for _ in range(share)], shares))
    return [result for chunk in chunks for result in chunk]


#: How many times the HelloCities workload runs; the median run is reported (the machines
#: are shared: one unlucky run should not decide a row), for every system alike.
HELLO_REPEATS = 3


def median_run(run: Callable[[], dict[str, Any]], repeats: int = HELLO_REPEATS) -> dict[str, Any]:
    """Run a rate workload ``repeats`` times; the result of the median run (by ``per_s``),
    with every run's rate under ``runs_per_s``."""
    results = [run() for _ in range(repeats)]
    ranked = sorted(results, key=lambda r: float(r["per_s"]))
    median = dict(ranked[len(ranked) // 2])
    median["runs_per_s"] = [float(r["per_s"]) for r in results]
    return median


def sweep_waves(level: int, total: int, wave: Callable[[int], None]) -> float:
    """Run waves of ``level`` instances until ``max(level, total)`` are done; returns per second.

    ``wave(k)`` starts ``k`` instances at once and returns when all are complete.
    """
    count = max(level, total)
    done = 0
    started = time.perf_counter()
    while done < count:
        k = min(level, count - done)
        wave(k)
        done += k
    return count / (time.perf_counter() - started)


class PeerBench:
    """A peer's workloads; subclasses implement those they support (others raise)."""

    name = "peer"

    def version(self) -> str:
        """The peer's version string."""
        raise NotImplementedError

    def settings(self) -> str:
        """How the peer is set up (storage, durability, workers), one line."""
        raise NotImplementedError

    def setup(self) -> None:
        """Start whatever the workloads need (called once, before them)."""

    def teardown(self) -> None:
        """Stop what :meth:`setup` started."""

    def hello_cities(self, n: int) -> dict[str, Any]:
        """``n`` HelloCities started at once, then all awaited."""
        raise NotImplementedError

    def latency(self, runs: int) -> dict[str, Any]:
        """``runs`` HelloCities one at a time (after a warm-up): p50/p99."""
        raise NotImplementedError

    def fan_out(self, n: int) -> dict[str, Any]:
        """One orchestration fanning out to ``n`` activities and in again."""
        raise NotImplementedError

    def replay(self, events: int) -> dict[str, Any]:
        """One more event's round trip, fresh and at ``events`` history."""
        raise NotImplementedError

    def idle(self, n: int) -> dict[str, Any]:
        """``n`` instances waiting on an event: memory and storage each."""
        raise NotImplementedError

    def sweep(self, levels: list[int], total: int) -> dict[str, Any]:
        """HelloCities/s per in-flight level."""
        raise NotImplementedError


def log(message: str) -> None:
    """Progress on stderr (stdout carries the JSON result)."""
    print(message, file=sys.stderr, flush=True)


def main(bench: PeerBench, argv: list[str] | None = None) -> int:
    """Run the workloads named on the command line and print the JSON result."""
    parser = argparse.ArgumentParser(description=f"{bench.name} benchmark (see protocol.py)")
    parser.add_argument("--hello", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--fan-out", type=int, default=10000)
    parser.add_argument("--history", type=int, default=10000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--sweep", type=int, nargs="*", default=[1, 10, 100, 1000])
    parser.add_argument("--sweep-total", type=int, default=200)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    args = parser.parse_args(argv)
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "hello_cities": lambda: median_run(lambda: bench.hello_cities(args.hello)),
        "latency": lambda: bench.latency(args.latency),
        "fan_out": lambda: bench.fan_out(args.fan_out),
        "replay": lambda: bench.replay(args.history),
        "idle": lambda: bench.idle(args.idle),
        "sweep": lambda: bench.sweep(args.sweep, args.sweep_total),
    }
    output: dict[str, Any] = {"peer": bench.name, "results": {}, "errors": {}}
    try:
        output["version"] = bench.version()
        output["settings"] = bench.settings()
        bench.setup()
    except Exception as exc:  # noqa: BLE001 - reported in the table, not hidden
        traceback.print_exc()
        output["errors"]["setup"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(output), flush=True)
        return 1
    try:
        for workload in args.workloads:
            log(f"[{bench.name}] {workload} ...")
            started = time.perf_counter()
            try:
                output["results"][workload] = calls[workload]()
            except Exception as exc:  # noqa: BLE001 - reported in the table, not hidden
                traceback.print_exc()
                output["errors"][workload] = f"{type(exc).__name__}: {exc}"
            log(f"[{bench.name}] {workload} done in {time.perf_counter() - started:.1f} s")
    finally:
        try:
            bench.teardown()
        except Exception:  # noqa: BLE001 - the results are still worth printing
            traceback.print_exc()
    print(json.dumps(output), flush=True)
    sys.stderr.flush()
    # Some peers leave non-daemon threads behind (workflows blocked on events): do not wait.
    os._exit(0)
