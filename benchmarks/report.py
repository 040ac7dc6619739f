"""Turning benchmark results into the table, BENCHMARKS.md and the throughput plot.

Everything here formats numbers measured by ``run.py``; nothing is typed in. The baseline of
every ratio is ostinato on SQLite (``ostinato/sqlite``), or the first ostinato provider run.
A ratio is how many times better the baseline is than that column (> 1: ostinato ahead),
whichever direction "better" points for the metric (more per second, fewer milliseconds,
fewer bytes).
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peers.protocol import HELLO_REPEATS, START_THREADS

HERE = Path(__file__).resolve().parent
TIMES = "\N{MULTIPLICATION SIGN}"
ROOT = HERE.parent

TARGETS = {
    "hello_cities": 2500.0,  # orchestrations/s, at least (started from many threads)
    "hello_cities_bulk": 1500.0,  # orchestrations/s from one thread through the bulk API
    "postgres_hello_cities": 1000.0,  # orchestrations/s on PostgreSQL, at least
    "postgres_over_dbos": 5.0,  # ostinato/postgres over dbos/postgres, at least
    "p50_ms": 2.5,  # at most
    "fan_out_s": 10.0,  # seconds for 10,000 activities, at most
    "replay_ratio": 1.5,  # one more event at 10k events vs. fresh: at most (independent)
}


@dataclass
class Metric:
    """One row of the table: how to read a value from a system's results."""

    label: str
    workload: str
    key: str
    higher_is_better: bool
    fmt: Callable[[float], str]
    size_key: str | None = None
    compare: bool = True


def _bytes(value: float) -> str:
    return f"{value / 1024:,.1f} KiB" if value >= 1024 else f"{value:,.0f} B"


def metrics(sizes: dict[str, Any]) -> list[Metric]:
    """The rows of the table, labelled with the baseline sizes."""
    rows = [
        Metric(
            f"HelloCities \N{MULTIPLICATION SIGN}{sizes['hello']:,} at once "
            f"(median of {HELLO_REPEATS} runs)",
            "hello_cities",
            "per_s",
            True,
            lambda v: f"{v:,.0f} orch/s",
            "hello",
        ),
        Metric(
            f"HelloCities \N{MULTIPLICATION SIGN}{sizes['hello']:,}, started one by one from"
            " one thread",
            "hello_cities",
            "one_thread_per_s",
            True,
            lambda v: f"{v:,.0f} orch/s",
            "hello",
        ),
        Metric(
            f"HelloCities \N{MULTIPLICATION SIGN}{sizes['hello']:,}, started from one thread"
            " in bulk (one schedule_new_orchestrations call)",
            "hello_cities",
            "bulk_per_s",
            True,
            lambda v: f"{v:,.0f} orch/s",
            "hello",
        ),
    ]
    rows += [
        Metric(
            f"HelloCities \N{MULTIPLICATION SIGN}{sizes['hello']:,}, {count} worker"
            f" process{'es' if count > 1 else ''} (started in bulk)",
            "processes",
            str(count),
            True,
            lambda v: f"{v:,.0f} orch/s",
            compare=False,
        )
        for count in sizes.get("processes", [])
    ]
    hello = f"HelloCities \N{MULTIPLICATION SIGN}{sizes['hello']:,}"
    slow_n = max(sizes["hello"] // 10, 10)  # bench_overheads' renewal_n
    slow = f"HelloCities \N{MULTIPLICATION SIGN}{slow_n:,} of slow activities"
    rows += [
        Metric(label, "overheads", key, True, lambda v: f"{v:,.1f} orch/s", compare=False)
        for label, key in (
            (f"{slow}, a short lock renewed while each runs", "renewed_lock_per_s"),
            (f"{slow}, a lock so long nothing is renewed (same run)", "long_lock_per_s"),
        )
    ]
    rows += [
        Metric(label, "overheads", key, True, lambda v: f"{v:,.0f} orch/s", compare=False)
        for label, key in (
            (
                f"{hello}, no retention, {sizes['hello']:,} expired instances stored",
                "no_retention_per_s",
            ),
            (f"{hello}, retention purging those in the background (same run)", "retention_per_s"),
        )
    ]
    rows += [
        Metric(
            f"latency p50 ({sizes['latency']} runs, one at a time)",
            "latency",
            "p50_ms",
            False,
            lambda v: f"{v:,.1f} ms",
        ),
        Metric("latency p99", "latency", "p99_ms", False, lambda v: f"{v:,.1f} ms"),
        Metric(
            f"fan-out/fan-in \N{MULTIPLICATION SIGN}{sizes['fan_out']:,} (activities/s)",
            "fan_out",
            "per_s",
            True,
            lambda v: f"{v:,.0f} act/s",
            "fan_out",
        ),
        Metric(
            f"fan-out/fan-in \N{MULTIPLICATION SIGN}{sizes['fan_out']:,}: total time",
            "fan_out",
            "seconds",
            False,
            lambda v: f"{v:,.2f} s",
            "fan_out",
        ),
        Metric(
            "one more event, fresh instance", "replay", "short_ms", False, lambda v: f"{v:,.1f} ms"
        ),
        Metric(
            f"one more event, ≥{sizes['history']:,}-event history",
            "replay",
            "long_ms",
            False,
            lambda v: f"{v:,.1f} ms",
        ),
        Metric(
            "long history \N{DIVISION SIGN} fresh (1.0: independent of history length)",
            "replay",
            "long_over_short",
            False,
            lambda v: f"{v:,.2f}",
            compare=False,
        ),
        Metric(
            f"idle instances \N{MULTIPLICATION SIGN}{sizes['idle']:,}: memory per instance",
            "idle",
            "rss_bytes_per_instance",
            False,
            _bytes,
            "idle",
        ),
        Metric(
            "idle instances: storage per instance",
            "idle",
            "storage_bytes_per_instance",
            False,
            _bytes,
            "idle",
        ),
    ]
    rows += [
        Metric(
            f"throughput, {level:,} in flight",
            "sweep",
            str(level),
            True,
            lambda v: f"{v:,.0f} orch/s",
        )
        for level in sizes["sweep"]
    ]
    return rows


def baseline(data: dict[str, Any]) -> str | None:
    """The system ratios are computed against."""
    systems = data["systems"]
    if "ostinato/sqlite" in systems:
        return "ostinato/sqlite"
    return next((s for s, v in systems.items() if v["kind"] == "ostinato"), None)


def value(system: dict[str, Any], metric: Metric) -> float | None:
    """A metric's value in a system's results (None if missing)."""
    result = system.get("results", {}).get(metric.workload)
    if not isinstance(result, dict):
        return None
    if metric.key == "long_over_short" and result.get("short_ms"):
        return float(result["long_ms"]) / float(result["short_ms"])
    raw = result.get(metric.key)
    return float(raw) if isinstance(raw, int | float) else None


def ratio(base: float | None, other: float | None, higher_is_better: bool) -> float | None:
    """How many times better ``base`` is than ``other``."""
    if base is None or other is None or base <= 0 or other <= 0:
        return None
    return base / other if higher_is_better else other / base


def _reason(system: dict[str, Any], workload: str) -> str | None:
    errors = system.get("errors", {})
    return errors.get("setup") or errors.get(workload)


def table(data: dict[str, Any]) -> str:
    """The Markdown table: one row per metric, one column per system, ratios to the baseline."""
    systems = data["systems"]
    base_name = baseline(data)
    names = list(systems)
    header = ["workload", *(f"`{n}`" for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []

    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    for metric in metrics(data["sizes"]):
        cells = [metric.label]
        base_value = value(systems[base_name], metric) if base_name else None
        for name in names:
            system = systems[name]
            v = value(system, metric)
            if v is None:
                reason = _reason(system, metric.workload)
                if reason:
                    cells.append(f"n/a {note(f'`{name}` {metric.workload}: {reason}')}")
                elif metric.key == "storage_bytes_per_instance" and isinstance(
                    system.get("results", {}).get(metric.workload), dict
                ):
                    cells.append(
                        system["results"][metric.workload].get("storage_note", "in memory")
                    )
                else:
                    cells.append("—")
                continue
            if metric.key == "rss_bytes_per_instance" and v < 0:
                cells.append(
                    "not measurable "
                    + note(
                        f"`{name}`: resident memory fell while the idle instances were started "
                        "(the process freed more than the instances took: allocator noise)"
                    )
                )
                continue
            cell = metric.fmt(v)
            comparable = metric.compare
            if metric.size_key:
                size = system.get("sizes", {}).get(metric.size_key)
                if size is not None and size != data["sizes"][metric.size_key]:
                    cell += f" (\N{MULTIPLICATION SIGN}{size:,}, scaled down)"
                    # Totals of different sizes do not compare; rates and per-instance do.
                    comparable = comparable and metric.key != "seconds"
            if system["kind"] == "peer" and comparable:
                r = ratio(base_value, v, metric.higher_is_better)
                if r is not None:
                    cell += f" · **{r:,.1f}\N{MULTIPLICATION SIGN}**"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    history = [
        f"`{name}` {system['results']['replay']['history_events']:,}"
        for name, system in systems.items()
        if isinstance(system.get("results", {}).get("replay"), dict)
    ]
    if history:
        notes.append("history events reached in the long-history replay: " + ", ".join(history))
    notes += [
        overheads_note(name, system["results"]["overheads"])
        for name, system in systems.items()
        if isinstance(system.get("results", {}).get("overheads"), dict)
    ]
    lines.append("")
    lines += [f"[{i}] {text}  " for i, text in enumerate(notes, 1)]
    return "\n".join(lines)


def overheads_note(name: str, o: dict[str, Any]) -> str:
    """What the paired renewal and retention runs show (``bench_overheads``)."""

    def change(key: str, base: str) -> str:
        return f"{o[key] / o[base] - 1:+.0%}"

    times = f"{o['pairs']}{TIMES}"
    long = o["long_lock_seconds"] / 3600
    return (
        f"`{name}`, lock renewals and retention (each side run {times}, alternating with its "
        f"pair; medians). Renewals: {o['renewal_n']:,} HelloCities whose activities take "
        f"{o['renewed_activity_seconds']:g} s each, with a {o['renewed_lock_seconds']:g} s lock "
        f"(the worker renews work held for a sixth of it): "
        f"{o['renewals_renewed_lock']:,} renewals made in the {times} runs, against a {long:.0f} h "
        f"lock ({o['renewals_long_lock']:,} renewals): throughput "
        f"{change('renewed_lock_per_s', 'long_lock_per_s')}, CPU time per instance "
        f"{o['renewed_lock_cpu_ms']:,.2f} ms against {o['long_lock_cpu_ms']:,.2f} ms (the "
        "activities' duration bounds the rate; the difference in CPU time is what the renewals "
        "take). "
        f"Retention purging {o['purged_during_runs']:,} expired instances in the background "
        f"during the runs: {change('retention_per_s', 'no_retention_per_s')} against none. "
        "Differences within the spread of the runs "
        f"(renewed lock {_spread(o['renewed_lock_runs_per_s'], '.1f')}, "
        f"no retention {_spread(o['no_retention_runs_per_s'])}) are noise."
    )


def _spread(runs: list[float], fmt: str = ".0f") -> str:
    return f"{min(runs):,{fmt}} to {max(runs):,{fmt}}/s"


# -- targets ----------------------------------------------------------------------------------
def targets(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, holds) for the issue's targets, on the baseline."""
    base_name = baseline(data)
    results = data["systems"][base_name]["results"] if base_name else {}
    out: list[tuple[str, str, bool | None]] = []

    def get(workload: str, key: str) -> float | None:
        r = results.get(workload)
        return float(r[key]) if isinstance(r, dict) and r.get(key) is not None else None

    hello = get("hello_cities", "per_s")
    measured = f"{hello:,.0f} orch/s" if hello is not None else "not measured"
    runs = results.get("hello_cities", {}).get("runs_per_s") if hello is not None else None
    if runs:
        measured += " (median of " + ", ".join(f"{r:,.0f}" for r in runs) + ")"
    starts, alone = get("hello_cities", "starts_seconds"), get("hello_cities", "worker_only_per_s")
    one_thread = get("hello_cities", "one_thread_per_s")
    if hello is not None and starts is not None and alone is not None:
        measured += (
            f" (the {data['sizes']['hello']:,} starts, from {START_THREADS} client threads, "
            f"took {starts:.2f} s of it; the worker alone, with the instances created first: "
            f"{alone:,.0f} orch/s"
        )
        if one_thread is not None:
            measured += f"; with the starts one by one from one thread: {one_thread:,.0f} orch/s"
        measured += ")"
    out.append(
        (
            f"HelloCities ≥ {TARGETS['hello_cities']:,.0f} orchestrations/s",
            measured,
            hello >= TARGETS["hello_cities"] if hello is not None else None,
        )
    )
    bulk = get("hello_cities", "bulk_per_s")
    out.append(
        (
            f"HelloCities ≥ {TARGETS['hello_cities_bulk']:,.0f}/s started from one thread"
            " through the bulk API",
            f"{bulk:,.0f} orch/s" if bulk is not None else "not measured",
            bulk >= TARGETS["hello_cities_bulk"] if bulk is not None else None,
        )
    )
    out += _postgres_targets(data)
    p50 = get("latency", "p50_ms")
    out.append(
        (
            f"single-instance p50 ≤ {TARGETS['p50_ms']:g} ms",
            f"{p50:.1f} ms" if p50 is not None else "not measured",
            p50 <= TARGETS["p50_ms"] if p50 is not None else None,
        )
    )
    fan = get("fan_out", "seconds")
    n = data["sizes"]["fan_out"]
    out.append(
        (
            f"{n:,}-activity fan-out ≤ {TARGETS['fan_out_s']:g} s",
            f"{fan:.2f} s" if fan is not None else "not measured",
            fan <= TARGETS["fan_out_s"] if fan is not None else None,
        )
    )
    short, long = get("replay", "short_ms"), get("replay", "long_ms")
    engine = data.get("engine_replay")
    if short is not None and long is not None:
        events = results["replay"]["history_events"]
        measured = f"{long:.1f} ms at {events:,} events vs {short:.1f} ms fresh"
        holds = long / short <= TARGETS["replay_ratio"]
        if engine:
            measured += (
                f"; engine: {engine['cached_long_us']:.0f} µs vs {engine['cached_short_us']:.0f} µs"
            )
            holds = holds and engine["cached_long_us"] <= 1.5 * engine["cached_short_us"]
        out.append(
            (
                "one more event independent of history length while cached "
                f"(≤ {TARGETS['replay_ratio']:g}\N{MULTIPLICATION SIGN} a fresh instance)",
                measured,
                holds,
            )
        )
    return out


def _postgres_targets(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """PostgreSQL's HelloCities rate, alone and against DBOS on the same server."""
    systems = data["systems"]
    if "ostinato/postgres" not in systems:
        return []
    metric = metrics(data["sizes"])[0]  # HelloCities at once
    ours = value(systems["ostinato/postgres"], metric)
    dbos = value(systems["dbos/postgres"], metric) if "dbos/postgres" in systems else None
    floor = TARGETS["postgres_hello_cities"]
    out: list[tuple[str, str, bool | None]] = [
        (
            f"PostgreSQL: HelloCities ≥ {floor:,.0f}/s",
            f"{ours:,.0f} orch/s" if ours is not None else "not measured",
            ours >= floor if ours is not None else None,
        )
    ]
    times = ratio(ours, dbos, True)
    out.append(
        (
            f"PostgreSQL: ≥ {TARGETS['postgres_over_dbos']:g}\N{MULTIPLICATION SIGN} DBOS on"
            " the same server",
            f"{times:,.1f}\N{MULTIPLICATION SIGN} ({ours:,.0f} vs {dbos:,.0f} orch/s)"
            if times is not None and ours is not None and dbos is not None
            else "not measured",
            times >= TARGETS["postgres_over_dbos"] if times is not None else None,
        )
    )
    return out


# -- the plot ---------------------------------------------------------------------------------
def plot(data: dict[str, Any], path: Path, log: Callable[[str], None]) -> str | None:
    """Draw throughput vs. in-flight instances with matplotlib (tools venv); None if it failed."""
    from peers.runner import ensure_environment

    series = {
        workload: {
            name: system["results"][workload]
            for name, system in data["systems"].items()
            if isinstance(system.get("results", {}).get(workload), dict)
        }
        for workload in ("sweep", "processes")
    }
    try:
        python = ensure_environment("tools", log, HERE / "tools" / "requirements.txt")
    except (RuntimeError, OSError) as exc:
        return f"matplotlib not installed: {exc}"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), str(HERE / "plot.py"), str(path)],
        input=json.dumps(series),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"plot failed: {done.stderr.strip().splitlines()[-1:]}"
    log(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return None


# -- BENCHMARKS.md ----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> str:
    """One line describing this machine and interpreter."""
    return (
        f"{_cpu_model()}, {_cpus()} CPUs, {_memory_total()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}"
    )


def _profile_section(data: dict[str, Any]) -> list[str]:
    profile = data.get("profile")
    if not profile:
        return ["Not profiled in this run (`--write` without `--no-profile` profiles it)."]
    if "error" in profile:
        return [f"No profile: {profile['error']}."]
    lines = [
        f"{profile.get('runs', 1)} runs of {profile['n']:,} HelloCities on "
        f"`{profile['provider']}` recorded with "
        f"{profile['tool']} ({profile['samples']:,} samples). Each sample counts for the "
        "innermost frame that belongs to a known part; "
        + ", ".join(f"{n:,} samples of {k}" for k, n in profile.get("excluded", {}).items())
        + " are left out:",
        "",
        "| part | share of samples |",
        "|---|---|",
    ]
    lines += [f"| {name} | {share:.0%} |" for name, share in profile["categories"]]
    lines += [
        "",
        "Top functions by self time (innermost frame):",
        "",
        "| function | share |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in profile["top_functions"][:10]]
    return lines


def _calls_table(calls: dict[str, Any]) -> list[str]:
    per = calls["ms_per_orchestration"]
    how = (
        f"{calls['runs']:,} started at once ({per:.2f} ms of wall time per orchestration)"
        if calls.get("at_once")
        else f"{calls['runs']} run one at a time ({per:.1f} ms each end to end)"
    )
    lines = [
        "",
        f"Provider calls per HelloCities on `{calls['provider']}`, {how}. Calls overlap across "
        "the worker's threads and the client, so their times can add up to more than the wall "
        "time; lock calls include empty polls:",
        "",
        "| provider method | calls per orchestration | ms per call | ms per orchestration |",
        "|---|---|---|---|",
    ]
    ordered = sorted(calls["calls"].items(), key=lambda kv: -kv[1]["ms_per_orchestration"])
    lines += [
        f"| `{method}` | {c['per_orchestration']:.2f} | {c['ms_per_call']:.2f} | "
        f"{c['ms_per_orchestration']:.2f} |"
        for method, c in ordered
    ]
    return lines


#: The provider calls that wait for the disk (activity results, claims and abandons don't;
#: a result committed with the step it brings does).
DURABLE_WRITES = (
    "create_",
    "complete_orchestration_",
    "complete_and_claim_",
    "complete_activities_and_steps",
    "send_",
)


def _writes(calls: dict[str, Any]) -> float:
    """Durable writes per orchestration (creates, checkpoints, messages)."""
    return float(
        sum(
            c["per_orchestration"]
            for method, c in calls["calls"].items()
            if method.startswith(DURABLE_WRITES)
        )
    )


def _write_ms(calls: dict[str, Any]) -> float:
    """Milliseconds per orchestration spent in durable-write calls."""
    return float(
        sum(
            c["ms_per_orchestration"]
            for method, c in calls["calls"].items()
            if method.startswith(DURABLE_WRITES)
        )
    )


def _locks(calls: dict[str, Any]) -> float:
    """Lock calls (polls) per orchestration."""
    return float(
        sum(
            c["per_orchestration"]
            for method, c in calls["calls"].items()
            if method.startswith("lock_next_")
        )
    )


def _calls_section(data: dict[str, Any]) -> list[str]:
    calls, batched = data.get("provider_calls"), data.get("provider_calls_at_once")
    cost = data.get("commit_cost")
    lines: list[str] = []
    if calls:
        lines += _calls_table(calls)
    if batched:
        lines += _calls_table(batched)
    if cost:
        lines += [
            "",
            f"A one-row SQLite commit (WAL) costs {cost['FULL']:.2f} ms with `synchronous=FULL` "
            f"and {cost['NORMAL']:.3f} ms with `NORMAL` on this machine "
            f"({1000 / cost['FULL']:,.0f} vs {1000 / cost['NORMAL']:,.0f} commits/s).",
        ]
    if cost and calls:
        writes = _writes(calls)
        in_writes = _write_ms(calls)
        lines += [
            "",
            f"**Latency.** One HelloCities makes {writes:.0f} durable writes one after another "
            "(the create and each orchestration step, the steps an activity result brings "
            "committed with that result: eager steps, see docs/architecture.md; activity "
            "results committed alone and claims don't wait for the disk). At the "
            f"micro-benchmark's {cost['FULL']:.2f} ms per commit, waiting for each would take "
            f"{writes * cost['FULL']:.1f} ms. Only the create's sync is waited for on the "
            "critical path: each later commit wakes the worker as soon as it is visible, and "
            "its sync overlaps the next step. Inside this run those write calls took "
            f"{in_writes:.1f} ms (their syncs included) of the "
            f"{calls['ms_per_orchestration']:.1f} ms per orchestration. What remains on the "
            "critical path is the transactions themselves, the lock calls above "
            f"({_locks(calls):.1f} per orchestration, empty polls included: a commit that "
            "makes work for this worker locks it itself, see eager activities and "
            "orchestrations in docs/architecture.md), and the hand-offs between the worker's "
            "threads.",
        ]
    if cost and batched:
        writes = _writes(batched)
        ceiling = 1000 / (writes * cost["FULL"]) if writes else float("inf")
        per_call = [
            c["ms_per_call"]
            for method, c in batched["calls"].items()
            if method.startswith(DURABLE_WRITES)
        ]
        profile = data.get("profile") or {}
        storage = sum(
            share
            for name, share in profile.get("categories", [])
            if name.startswith(("SQLite", "relational"))
        )
        top = (profile.get("top_functions") or [("?", 0.0)])[0]
        text = (
            f"**Throughput.** Started at once, the worker's batching brings that to "
            f"{writes:.2f} durable writes per orchestration; at the micro-benchmark's "
            f"{cost['FULL']:.2f} ms per commit, committing alone would allow about "
            f"{ceiling:,.0f} orchestrations/s. "
        )
        if per_call:
            text += (
                f"Inside the run, the batched write calls took {min(per_call):.1f} to "
                f"{max(per_call):.1f} ms each. "
            )
        if storage >= 0.5:
            text += (
                f"The profile puts {storage:.0%} of the interpreter's time in the storage "
                f"layer, `{top[0]}` alone {top[1]:.0%}: the Python side of the storage calls "
                "bounds the throughput in this run."
            )
        elif profile:
            text += (
                f"The profile puts {storage:.0%} of the interpreter's time in the storage "
                "layer: the rest is the core's Python work per message, broken down above."
            )
        lines += ["", text]
    return lines


def _explanations(data: dict[str, Any], checks: list[tuple[str, str, bool | None]]) -> list[str]:
    """For each missed target, what the profile says dominates."""
    profile = data.get("profile") or {}
    missed = [target for target, _, holds in checks if holds is False]
    if not missed:
        return []
    if not profile.get("categories"):
        return ["Targets missed; no profile in this run to explain them."]
    top = profile["categories"][:3]
    parts = ", ".join(f"{name} {share:.0%}" for name, share in top)
    function, share = profile["top_functions"][0] if profile["top_functions"] else ("?", 0.0)
    storage = sum(
        share for name, share in profile["categories"] if name.startswith(("SQLite", "relational"))
    )
    return [
        f'**Missed:** {"; ".join(missed)}. Why, from the measurements below ("Where time '
        f'goes"): in the HelloCities profile the largest parts are {parts}; the single '
        f"hottest frame is `{function}` ({share:.0%}). Storage (the SQLite driver calls and "
        f"the relational toolkit) takes {storage:.0%} of the interpreter's time (samples of "
        "the thread holding the GIL). The latency floor and throughput paragraphs turn the "
        "provider call counts and this disk's commit cost into the bound each target runs "
        "into.",
    ]


def markdown(data: dict[str, Any], path: Path, plot_path: Path) -> str:
    """The whole BENCHMARKS.md."""
    systems = data["systems"]
    started = datetime.fromtimestamp(data["started"], UTC)
    minutes = (data["finished"] - data["started"]) / 60
    command = data.get("command") or "uv run python benchmarks/run.py"
    lines = [
        "<!-- Generated by benchmarks/run.py --write; do not edit by hand. -->",
        "# Benchmarks",
        "",
        f"Generated by `{command.strip()}` on {started:%Y-%m-%d %H:%M} UTC "
        f"({minutes:.0f} minutes). The machine is shared with other work and noisy: compare "
        "the columns of this one run with each other, not with other runs."
        + (
            " This text was re-rendered (`--render`) from that run's saved results; "
            "the numbers are the run's."
            if data.get("rendered_from")
            else ""
        ),
        "",
        "## Machine and versions",
        "",
        f"- Machine: {machine()}.",
        f"- ostinato at commit {data.get('revision', 'unknown')} (code is loaded when each "
        "process starts).",
    ]
    for name, system in systems.items():
        version = system.get("version") or "not installed"
        settings = system.get("settings") or _reason(system, "") or ""
        lines.append(f"- `{name}` {version}: {settings}.")
    loads = [
        f"`{name}` {system['load'][0]:.1f} → {system['load'][1]:.1f}"
        for name, system in systems.items()
        if system.get("load")
    ]
    if loads:
        lines.append(
            f"- Load average (1 min) on these {_cpus()} CPUs when each column started → "
            "finished (other work shares the machine): " + ", ".join(loads) + "."
        )
    lines += [
        "- ostinato runs one in-process worker with its defaults (`ot.Worker(app, provider)`); "
        "each peer runs in its own virtual environment (`benchmarks/.venvs/<peer>`, pinned in "
        "`benchmarks/peers/<peer>/requirements.txt`), in a subprocess of the same invocation.",
        "- Sizes: HelloCities {x}{hello:,}; latency over {latency} runs; fan-out {x}{fan_out:,}; "
        "history ≥ {history:,} events; idle {x}{idle:,}; sweep {sweep} in flight, at least "
        "{sweep_total} instances per level.".format(
            x=TIMES, **{**data["sizes"], "sweep": "/".join(map(str, data["sizes"]["sweep"]))}
        ),
        "",
        "## Results",
        "",
        f"Ratios (**bold**) are how many times better `{baseline(data)}` is than that "
        "column (> 1: ostinato ahead): more per second, fewer milliseconds, fewer bytes. "
        "A peer scaled down for time says so in its cell; its ratio is then on the rate.",
        "",
        table(data),
        "",
        "## Targets (ostinato on SQLite, `synchronous=FULL`)",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
    ]
    checks = targets(data)
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    lines += [f"| {t} | {m} | {verdict[h]} |" for t, m, h in checks]
    engine = data.get("engine_replay")
    if engine:
        lines += [
            "",
            f"Replaying a {engine['history_events']:,}-event history from scratch (what a "
            f"worker pays for an instance that is not cached) takes {engine['replay_ms']:,.0f} ms "
            f"in the engine; one more event on the cached run takes "
            f"{engine['cached_long_us']:,.0f} µs, against {engine['cached_short_us']:,.0f} µs "
            "on a short history.",
        ]
    explanations = _explanations(data, checks)
    if explanations:
        lines += ["", *explanations]
    lines += ["", "## Throughput vs. concurrency", ""]
    if data.get("plot") is None and plot_path.exists():
        rel = os.path.relpath(plot_path, path.parent)
        lines.append(
            f"![HelloCities throughput vs. instances in flight]({rel})  \n"
            f"HelloCities/s with at most N instances in flight (waves of N), per system "
            f"([{rel}]({rel}))."
        )
    else:
        lines.append(f"No plot: {data.get('plot') or 'not drawn in this run'}.")
    lines += ["", "## Where time goes", "", *_profile_section(data), *_calls_section(data)]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        "uv run python benchmarks/run.py --peers --write   # ostinato + peers, this file",
        "uv run python benchmarks/run.py --quick           # a quick look, ostinato only",
        "```",
        "",
        "See [docs/benchmarks.md](docs/benchmarks.md) for how the workloads are defined.",
        "",
    ]
    return "\n".join(lines)
