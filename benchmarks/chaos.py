"""The chaos harness: orchestrations across worker processes that are killed at random.

    python benchmarks/chaos.py                      # SQLite and PostgreSQL, writes RELIABILITY.md
    python benchmarks/chaos.py --provider sqlite --orchestrations 40 --kills 5 --out /tmp/r.md

Per provider: ``--workers`` worker processes (``chaos_app.py``) run sequences, fan-outs,
timers and sub-orchestrations while the harness ``kill -9``s a random one every 0.3-1.5 s
(``--kills`` times, starting a new one each time) and keeps scheduling new work; beside them
run a poison activity and a poison orchestrator (each kills its worker on every delivery) and
an instance whose inbox gets an undecodable message. Then it checks every instance: the
ordinary ones COMPLETED with the right output, the poison ones failed by the poison policy,
the corrupted one FAILED with its message in the dead letters, and no history with a
duplicated event; it counts activity re-executions (at-least-once: a killed worker's activity
runs again). The report (``--out``) is generated; never edit it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
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


class Workers:
    """``count`` worker processes; :meth:`kill_one` kills one with SIGKILL and starts another."""

    def __init__(self, spec: dict[str, Any], count: int) -> None:
        self.spec = spec
        #: Workers killed by the poison activity or orchestrator (exit code 17).
        self.poison_deaths = 0
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
        """Start a new worker for each that died by itself (poison work)."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.poison_deaths += 1
                self.procs[i] = self._start()

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.procs))
        proc = self.procs[index]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs[index] = self._start()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _store_spec(kind: str, workdir: Path) -> tuple[dict[str, Any], Any]:
    if kind == "postgres":
        from ostinato_postgres.testing import start_server

        server = start_server()
        return {
            "kind": "postgres",
            "dsn": server.dsn,
            "task_hub": f"chaos{uuid.uuid4().hex[:8]}",
        }, server
    return {"kind": "sqlite", "path": str(workdir / "chaos.db")}, None


def _inject_corrupt_message(spec: dict[str, Any], instance_id: str) -> None:
    """Put an undecodable message in the instance's inbox, past the provider."""
    now = int(time.time() * 1_000_000)
    if spec["kind"] == "postgres":
        import psycopg
        from psycopg import sql

        schema = f"ostinato_{spec['task_hub']}".lower()
        with psycopg.connect(spec["dsn"], autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            _corrupt(conn.execute, "%s", spec.get("task_hub", "default"), instance_id, now)
        return
    import sqlite3

    with sqlite3.connect(spec["path"], timeout=30) as conn:
        _corrupt(conn.execute, "?", "default", instance_id, now)


def _corrupt(execute: Any, p: str, hub: str, instance_id: str, now: int) -> None:
    execute(
        f"INSERT INTO ostinato_inbox (task_hub, instance_id, visible_at, body) "
        f"VALUES ({p}, {p}, {p}, {p})",
        (hub, instance_id, now, "{not json"),
    )
    execute(
        f"UPDATE ostinato_orchestration_queue SET visible_at = {p} "
        f"WHERE task_hub = {p} AND instance_id = {p} AND lock_token IS NULL",
        (now, hub, instance_id),
    )


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


def run(
    kind: str,
    *,
    orchestrations: int,
    workers: int,
    kills: int,
    lock_timeout: float,
    max_delivery_attempts: int,
    seed: int,
    workdir: Path,
) -> dict[str, Any]:
    """One chaos run on one provider; returns its figures."""
    rng = random.Random(seed)
    marks = workdir / f"marks-{kind}"
    marks.mkdir()
    spec, server = _store_spec(kind, workdir)
    spec |= {
        "marks": str(marks),
        "lock_timeout": lock_timeout,
        "max_delivery_attempts": max_delivery_attempts,
    }
    provider = open_store(spec)
    client = ot.Client(provider)
    started = time.monotonic()
    expected: dict[str, str] = {}
    names = list(WORKLOADS)

    def schedule(count: int) -> None:
        for _ in range(count):
            name = names[len(expected) % len(names)]
            n = len(expected)
            instance_id = client.schedule_new_orchestration(name, input=n)
            expected[instance_id] = json.dumps(WORKLOADS[name](n))

    pool = Workers(spec, workers)
    try:
        victim = client.schedule_new_orchestration("waits")
        poison_activity = client.schedule_new_orchestration("calls_crash")
        poison_orchestrator = client.schedule_new_orchestration("crashes")
        client.wait_for_orchestration_start(victim, timeout=120)
        while not client.get_orchestration_history(victim):
            time.sleep(0.05)
        _inject_corrupt_message(spec, victim)
        per_round = max(1, orchestrations // max(kills, 1))
        for _ in range(kills):
            if len(expected) < orchestrations:
                schedule(min(per_round, orchestrations - len(expected)))
            time.sleep(rng.uniform(0.3, 1.5))
            pool.replace_dead()
            pool.kill_one(rng)
        schedule(orchestrations - len(expected))
        deadline = time.monotonic() + 120 + 20 * lock_timeout
        ids = [*expected, victim, poison_activity, poison_orchestrator]
        states: dict[str, ot.OrchestrationState | None] = {}
        for instance_id in ids:
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
    finally:
        pool.stop()
    seconds = time.monotonic() - started
    lost = [i for i, s in states.items() if s is None or not s.runtime_status.is_terminal]
    wrong = [
        i
        for i in expected
        if (s := states[i]) is not None
        and s.runtime_status.is_terminal
        and (
            s.runtime_status is not ot.OrchestrationStatus.COMPLETED
            or s.serialized_output != expected[i]
        )
    ]
    duplicated = [i for i in ids if _duplicated(client.get_orchestration_history(i))]
    executions = [
        line for path in marks.glob("*.log") for line in path.read_text().splitlines() if line
    ]  # (workers.err is not a .log)
    activity_state = states[poison_activity]
    orchestrator_state = states[poison_orchestrator]
    victim_state = states[victim]
    letters = client.list_dead_letters(instance_id=victim)
    result = {
        "provider": kind,
        "orchestrations": len(expected),
        "workers": workers,
        "kills": kills,
        "poison_crashes": pool.poison_deaths,
        "lost": len(lost),
        "lost_ids": {i: (s.runtime_status.value if s else None) for i in lost for s in [states[i]]},
        "wrong": len(wrong),
        "duplicated": len(duplicated),
        "activity_executions": len(executions),
        "activity_reexecutions": len(executions) - len(set(executions)),
        "poison_activity": activity_state.serialized_output if activity_state else None,
        "poison_orchestrator": (
            orchestrator_state.failure_details.error_type
            if orchestrator_state and orchestrator_state.failure_details
            else None
        ),
        "corrupt_message": (
            f"{victim_state.runtime_status.value}, {len(letters)} dead letter(s)"
            if victim_state
            else None
        ),
        "seconds": round(seconds, 1),
    }
    provider.close()
    if server is not None:
        server.stop()
    return result


def write_report(results: list[dict[str, Any]], path: Path, command: str) -> None:
    lines = [
        "# Reliability",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; do not edit.",
        "",
        "Each row is one chaos run (`benchmarks/chaos.py`): ordinary orchestrations (sequence,",
        "fan-out, timer, sub-orchestration) across worker processes that are `kill -9`ed at",
        "random, beside a poison activity, a poison orchestrator (each kills its worker on every",
        "delivery) and an instance given an undecodable inbox message.",
        "",
        "| provider | orchestrations | workers | kill -9s | poison crashes | lost | wrong output |"
        " duplicated events | activity runs | re-executions | poison activity |"
        " poison orchestrator | corrupt message | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['provider']} | {r['orchestrations']} | {r['workers']} | {r['kills']} |"
            f" {r['poison_crashes']} | {r['lost']} | {r['wrong']} | {r['duplicated']} |"
            f" {r['activity_executions']} | {r['activity_reexecutions']} |"
            f" {r['poison_activity']} | {r['poison_orchestrator']} | {r['corrupt_message']} |"
            f" {r['seconds']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--orchestrations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--lock-timeout", type=float, default=2.0)
    parser.add_argument("--max-delivery-attempts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE.parent / "RELIABILITY.md")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="ostinato-chaos-") as directory:
        for kind in args.provider or ["sqlite", "postgres"]:
            result = run(
                kind,
                orchestrations=args.orchestrations,
                workers=args.workers,
                kills=args.kills,
                lock_timeout=args.lock_timeout,
                max_delivery_attempts=args.max_delivery_attempts,
                seed=args.seed,
                workdir=Path(directory),
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    command = "python benchmarks/chaos.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(results, args.out, command.strip())
    return results


if __name__ == "__main__":
    main()
