"""The chaos harness: orchestrations across worker processes that are killed at random.

    python benchmarks/chaos.py                      # SQLite, PostgreSQL, Azure (Azurite)
    python benchmarks/chaos.py --provider azure     # one provider: its row of RELIABILITY.md
    python benchmarks/chaos.py --provider sqlite --orchestrations 40 --kills 5 --out /tmp/r.md

Per provider: ``--workers`` worker processes (``chaos_app.py``) run sequences, fan-outs,
timers and sub-orchestrations while the harness ``kill -9``s a random one every 0.3-1.5 s
(``--kills`` times, starting a new one each time) and keeps scheduling new work; halfway
through, the back end itself restarts (``chaos_backends.py`` says how, per provider); beside
them run a poison activity and a poison orchestrator (each kills its worker on every
delivery) and an instance whose inbox gets an undecodable message. Then it checks every
instance: the ordinary ones COMPLETED with the right output, the poison ones failed by the
poison policy, the corrupted one FAILED with its message in the dead letters, and no history
with a duplicated event; it counts activity re-executions (at-least-once: a killed worker's
activity runs again), the drain time after the last kill and the machine's load average.
The report (``--out``; rows of providers not run are kept) is generated; never edit it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ostinato as ot
from ostinato.history import (
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerFired,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chaos_app import POISON_EXIT, WORKLOADS, open_store  # noqa: E402
from chaos_backends import start_backend  # noqa: E402


class Workers:
    """``count`` worker processes; :meth:`kill_one` kills one with SIGKILL and starts another."""

    def __init__(self, spec: dict[str, Any], count: int) -> None:
        self.spec = spec
        #: Workers killed by the poison activity or orchestrator (exit code 17).
        self.poison_deaths = 0
        #: Workers that exited by themselves for any other reason (none should).
        self.other_deaths = 0
        self.procs = [self._start() for _ in range(count)]

    def _start(self) -> subprocess.Popen[str]:
        log = Path(self.spec["marks"]) / "workers.err"
        with open(log, "a") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "chaos_app.py"), json.dumps(self.spec)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.wait()
            if proc.returncode == POISON_EXIT:  # poison work killed it while it started
                self.poison_deaths += 1
                return self._start()
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"a chaos worker did not start (exit {proc.returncode}):\n{tail}")
        return proc

    def replace_dead(self) -> None:
        """Start a new worker for each that died by itself (poison work, or a crash)."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                if proc.returncode == POISON_EXIT:
                    self.poison_deaths += 1
                else:
                    self.other_deaths += 1
                self.procs[i] = self._start()

    def kill_one(self, rng: random.Random) -> float:
        """Kill a random worker, start another; returns when it was killed (monotonic)."""
        index = rng.randrange(len(self.procs))
        proc = self.procs[index]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait()
        self.procs[index] = self._start()
        return killed

    def kill_all(self) -> int:
        """Kill every worker at once (SIGKILL); returns how many were alive."""
        alive = [proc for proc in self.procs if proc.poll() is None]
        for proc in alive:
            os.kill(proc.pid, signal.SIGKILL)
        for proc in alive:
            proc.wait()
        return len(alive)

    def restart_all(self) -> None:
        """Start a new worker in place of every one (after :meth:`kill_all`)."""
        for proc in self.procs:
            if proc.poll() is None:
                raise RuntimeError("restart_all() needs every worker stopped")
        self.procs = [self._start() for _ in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


_RESULTS = (
    TaskCompleted,
    TaskFailed,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
)


def _duplicated(events: list[HistoryEvent]) -> bool:
    """Whether a history records something twice (a start, a scheduling, a result)."""
    keys: Counter[tuple[str, int]] = Counter()
    for event in events:
        if isinstance(event, ExecutionStarted):
            keys[("start", 0)] += 1
        elif isinstance(event, TaskScheduled):
            keys[("scheduled", event.task_id)] += 1
        elif isinstance(event, _RESULTS):
            keys[("result", event.task_scheduled_id)] += 1
        elif isinstance(event, TimerFired):
            keys[("timer", event.timer_id)] += 1
    return any(count > 1 for count in keys.values())


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a run goes on."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self._every):
                return

    def stop(self) -> tuple[float, float]:
        """Stop sampling; returns the mean and the maximum of the samples."""
        self._stop.set()
        self._thread.join()
        return sum(self.samples) / len(self.samples), max(self.samples)


#: What the three special instances must end as on every provider.
EXPECTED_SPECIALS = {
    "poison_activity": '["caught","PoisonMessageError"]',
    "poison_orchestrator": "FAILED, PoisonMessageError",
    "corrupt_message": "FAILED, 1 dead letter(s)",
}


def run(
    kind: str,
    *,
    orchestrations: int,
    workers: int,
    kills: int,
    lock_timeout: float,
    max_delivery_attempts: int,
    down_for: float,
    drain_timeout: float,
    lease_duration: float | None,
    seed: int,
    workdir: Path,
) -> dict[str, Any]:
    """One chaos run on one provider; returns its figures."""
    rng = random.Random(seed)
    marks = workdir / f"marks-{kind}"
    marks.mkdir()
    backend = start_backend(kind, workdir, lease_duration=lease_duration)
    spec = backend.spec | {
        "marks": str(marks),
        "lock_timeout": lock_timeout,
        "max_delivery_attempts": max_delivery_attempts,
    }
    provider = open_store(spec)
    client = ot.Client(provider)
    load = LoadSampler()
    started = time.monotonic()
    expected: dict[str, str] = {}
    kinds: dict[str, str] = {}
    names = list(WORKLOADS)

    def schedule(count: int) -> None:
        for _ in range(count):
            name = names[len(expected) % len(names)]
            n = len(expected)
            instance_id = client.schedule_new_orchestration(name, input=n)
            expected[instance_id] = json.dumps(WORKLOADS[name](n))
            kinds[instance_id] = name

    pool = Workers(spec, workers)
    restart_kills = 0
    restart_seconds = 0.0
    last_kill = drained = time.monotonic()
    try:
        victim = client.schedule_new_orchestration("waits")
        poison_activity = client.schedule_new_orchestration("calls_crash")
        poison_orchestrator = client.schedule_new_orchestration("crashes")
        client.wait_for_orchestration_start(victim, timeout=120)
        while not client.get_orchestration_history(victim):
            time.sleep(0.05)
        backend.inject_corrupt_message(victim)
        per_round = max(1, orchestrations // max(kills, 1))
        for round_ in range(kills):
            if len(expected) < orchestrations:
                schedule(min(per_round, orchestrations - len(expected)))
            time.sleep(rng.uniform(0.3, 1.5))
            pool.replace_dead()
            if round_ == kills // 2:  # the back end restarts mid-run, with work in flight
                restart_started = time.monotonic()
                if backend.closes_clients:  # the harness's own connection goes first
                    provider.close()
                restart_kills = backend.restart(down_for, pool.kill_all)
                if restart_kills:
                    pool.restart_all()
                if backend.closes_clients:
                    provider = open_store(spec)
                    client = ot.Client(provider)
                restart_seconds = time.monotonic() - restart_started
            last_kill = pool.kill_one(rng)
        schedule(orchestrations - len(expected))
        deadline = time.monotonic() + drain_timeout
        specials = [victim, poison_activity, poison_orchestrator]
        states: dict[str, ot.OrchestrationState | None] = {}
        for instance_id in [*expected, *specials]:
            while True:
                pool.replace_dead()
                try:
                    states[instance_id] = client.wait_for_orchestration_completion(
                        instance_id, timeout=1
                    )
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        states[instance_id] = client.get_orchestration_state(instance_id)
                        break
            if len(states) == len(expected):
                drained = time.monotonic()
    finally:
        pool.stop()
        load_mean, load_max = load.stop()
    seconds = time.monotonic() - started
    ordinary = [states[i] for i in expected]
    lost = [s for s in ordinary if s is None or not s.runtime_status.is_terminal]
    failed = [
        s
        for s in ordinary
        if s is not None
        and s.runtime_status.is_terminal
        and s.runtime_status is not ot.OrchestrationStatus.COMPLETED
    ]
    wrong = [
        i
        for i in expected
        if (s := states[i]) is not None
        and s.runtime_status is ot.OrchestrationStatus.COMPLETED
        and s.serialized_output != expected[i]
    ]
    ids = [*expected, *specials]
    duplicated = [i for i in ids if _duplicated(client.get_orchestration_history(i))]
    executions = [
        line for path in marks.glob("*.log") for line in path.read_text().splitlines() if line
    ]  # (workers.err is not a .log)
    letters = client.list_dead_letters(instance_id=victim)
    result = {
        "provider": kind,
        "orchestrations": len(expected),
        "workers": workers,
        "kills": kills,
        "restart": backend.restart_kind,
        "restart_down_seconds": down_for,
        "restart_seconds": round(restart_seconds, 1),
        "restart_kills": restart_kills,
        "poison_crashes": pool.poison_deaths,
        "other_worker_exits": pool.other_deaths,
        "lost": len(lost),
        "failed": len(failed),
        "wrong": len(wrong),
        "duplicated": len(duplicated),
        "activity_executions": len(executions),
        "activity_reexecutions": len(executions) - len(set(executions)),
        "poison_activity": _outcome(states[poison_activity], output=True),
        "poison_orchestrator": _outcome(states[poison_orchestrator]),
        "corrupt_message": f"{_status(states[victim])}, {len(letters)} dead letter(s)",
        "drain_seconds": round(drained - last_kill, 1),
        "seconds": round(seconds, 1),
        "load_mean": round(load_mean, 1),
        "load_max": round(load_max, 1),
        "lost_ids": [f"{kinds[i]} {i}" for i in expected if states[i] in lost][:20],
        "failures": sorted(
            {s.failure_details.message[:200] for s in failed if s and s.failure_details}
        )[:10],
    }
    result["specials_ok"] = all(result[k] == v for k, v in EXPECTED_SPECIALS.items())
    provider.close()
    backend.stop()
    return result


def _status(state: ot.OrchestrationState | None) -> str:
    return state.runtime_status.value if state else "MISSING"


def _outcome(state: ot.OrchestrationState | None, *, output: bool = False) -> str:
    """A special instance's end: its output (if COMPLETED and asked), else status and error."""
    if state is None:
        return "MISSING"
    if output and state.runtime_status is ot.OrchestrationStatus.COMPLETED:
        return state.serialized_output or ""
    error = state.failure_details.error_type if state.failure_details else ""
    return f"{state.runtime_status.value}, {error}".rstrip(", ")


_COLUMNS = [
    ("provider", "provider"),
    ("orchestrations", "orchestrations"),
    ("workers", "workers"),
    ("kills", "kill -9s"),
    ("lost", "lost"),
    ("failed", "failed"),
    ("wrong", "wrong output"),
    ("duplicated", "duplicated histories"),
    ("activity_executions", "activity runs"),
    ("activity_reexecutions", "re-executions"),
    ("poison_crashes", "poison crashes"),
    ("other_worker_exits", "other worker exits"),
    ("poison_activity", "poison activity"),
    ("poison_orchestrator", "poison orchestrator"),
    ("corrupt_message", "corrupt message"),
    ("drain_seconds", "drain after last kill (s)"),
    ("seconds", "run (s)"),
    ("load_mean", "load avg (mean)"),
    ("load_max", "load avg (max)"),
]
_MARKER = "<!-- chaos results: "


def write_report(results: list[dict[str, Any]], path: Path) -> None:
    """Write the report, keeping the rows of providers not in ``results`` from ``path``."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith(_MARKER):
                rows = {r["provider"]: r for r in json.loads(line[len(_MARKER) : -len(" -->")])}
    rows.update((r["provider"], r) for r in results)
    ordered = [rows[k] for k in ("sqlite", "postgres", "azure") if k in rows]
    lines = [
        "# Reliability",
        "",
        "Generated by `benchmarks/chaos.py` (one row per provider; each row's command and date",
        "are listed under the table); do not edit.",
        "",
        "Each row is one chaos run: ordinary orchestrations (sequence, fan-out, timer,",
        "sub-orchestration) across worker processes that are `kill -9`ed at random, with a",
        "restart of the back end mid-run, beside a poison activity, a poison orchestrator (each",
        "kills its worker on every delivery) and an instance given an undecodable inbox message.",
        "*lost*: ordinary instances not finished by the end; *failed*: finished but not",
        "COMPLETED; *wrong output*: COMPLETED with another output; *duplicated histories*:",
        "histories (special instances included) recording a start, scheduling, result or timer",
        "twice; *re-executions*: activity runs beyond one per task (at-least-once: a killed",
        "worker's activity runs again); *poison crashes*: workers killed by the poison work;",
        "*other worker exits*: workers that died by themselves otherwise (none should: they",
        "ride through the back end's restart); *drain*: from the last `kill -9` until every",
        "ordinary instance had finished. Expected",
        "for the special instances: poison activity `" + EXPECTED_SPECIALS["poison_activity"] + "`",
        "(the orchestration caught the failure), poison orchestrator `"
        + EXPECTED_SPECIALS["poison_orchestrator"]
        + "`, corrupt message `"
        + EXPECTED_SPECIALS["corrupt_message"]
        + "`.",
        "",
        "| " + " | ".join(title for _, title in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for r in ordered:
        lines.append("| " + " | ".join(str(r.get(key, "n/a")) for key, _ in _COLUMNS) + " |")
    lines += ["", "Back-end restart of each run:", ""]
    for r in ordered:
        lines.append(
            f"- {r['provider']}: {r['restart']}; down {r['restart_down_seconds']} s, "
            f"{r['restart_seconds']} s in all"
            + (f", {r['restart_kills']} workers killed" if r["restart_kills"] else "")
            + "."
        )
    lines += ["", "Commands:", ""]
    for r in ordered:
        lines.append(f"- {r['provider']} ({r['date']}): `{r['command']}`")
    lines += ["", _MARKER + json.dumps(ordered, separators=(",", ":")) + " -->"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", action="append", choices=["sqlite", "postgres", "azure"])
    parser.add_argument("--orchestrations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--lock-timeout", type=float, default=2.0)
    parser.add_argument("--max-delivery-attempts", type=int, default=3)
    parser.add_argument(
        "--down-for", type=float, default=3.0, help="seconds the back end stays down"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds after the last kill before unfinished instances count as lost",
    )
    parser.add_argument(
        "--lease-duration", type=float, help="Azure partition lease seconds (provider default)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE.parent / "RELIABILITY.md")
    parser.add_argument(
        "--keep", type=Path, help="keep the stores and worker logs in this (new) directory"
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/chaos.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    if args.keep is not None:
        args.keep.mkdir(parents=True)
    with (
        contextlib.nullcontext(str(args.keep))
        if args.keep is not None
        else tempfile.TemporaryDirectory(prefix="ostinato-chaos-")
    ) as directory:
        for kind in args.provider or ["sqlite", "postgres", "azure"]:
            result = run(
                kind,
                orchestrations=args.orchestrations,
                workers=args.workers,
                kills=args.kills,
                lock_timeout=args.lock_timeout,
                max_delivery_attempts=args.max_delivery_attempts,
                down_for=args.down_for,
                drain_timeout=args.drain_timeout,
                lease_duration=args.lease_duration,
                seed=args.seed,
                workdir=Path(directory),
            )
            result["command"] = command.strip()
            result["date"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
            print(json.dumps(result), flush=True)
            results.append(result)
            write_report(results, args.out)
    return results


if __name__ == "__main__":
    main()
