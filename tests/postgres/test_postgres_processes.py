"""Across processes: LISTEN/NOTIFY wake-ups, and several worker processes with one killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.status import OrchestrationStatus

from .conftest import ProviderFactory, new_hub

WORKER = Path(__file__).with_name("worker_process.py")


def test_idle_worker_wakes_on_notify_well_under_its_poll_interval(
    make_provider: ProviderFactory,
) -> None:
    hub = new_hub()
    worker_side = make_provider(task_hub=hub)
    # A separate provider object: its writes reach the worker only through NOTIFY.
    client_side = make_provider(task_hub=hub, listen=False)
    app = ot.App()

    @app.orchestrator
    def noop(ctx: ot.OrchestrationContext, _: object) -> str:
        return "done"

    client = ot.Client(client_side)
    poll = 3.0
    with ot.Worker(app, worker_side, max_poll_interval=poll):
        assert worker_side.wait_listening()
        latencies = []
        for _ in range(2):
            time.sleep(poll + 0.5)  # the worker's poll back-off is at its maximum now
            started = time.monotonic()
            iid = client.schedule_new_orchestration(noop)
            while client.get_orchestration_state(iid).runtime_status is not (  # type: ignore[union-attr]
                OrchestrationStatus.COMPLETED
            ):
                time.sleep(0.005)
            latencies.append(time.monotonic() - started)
    assert max(latencies) < 1.0, latencies


def _spawn(dsn: str, hub: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, str(WORKER), dsn, hub],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line
    return process


@pytest.mark.slow
def test_worker_processes_with_one_killed_lose_nothing_and_apply_nothing_twice(
    make_provider: ProviderFactory, postgres_dsn: str
) -> None:
    hub = new_hub()
    provider = make_provider(task_hub=hub)
    provider.setup()
    client = ot.Client(provider)
    steps = 8
    processes = [_spawn(postgres_dsn, hub) for _ in range(3)]
    try:
        ids = [
            client.schedule_new_orchestration("chain", input=steps, instance_id=f"job-{i:02d}")
            for i in range(60)
        ]
        time.sleep(1.5)
        done_before_kill = sum(
            client.get_orchestration_state(i).runtime_status is OrchestrationStatus.COMPLETED  # type: ignore[union-attr]
            for i in ids
        )
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        assert done_before_kill < len(ids), "the kill came too late to hit work in flight"
        expected = sum(n * n for n in range(steps))
        for iid in ids:
            state = client.wait_for_orchestration_completion(iid, timeout=60)
            assert state.runtime_status is OrchestrationStatus.COMPLETED, (iid, state)
            assert state.output == expected
            history = client.get_orchestration_history(iid)
            kinds = Counter(type(e).__name__ for e in history)
            # Every state change applied exactly once despite the crash.
            assert kinds["TaskScheduled"] == steps, (iid, kinds)
            assert kinds["TaskCompleted"] == steps, (iid, kinds)
            assert kinds["ExecutionCompleted"] == 1, (iid, kinds)
            completed_ids = [
                e.task_scheduled_id for e in history if type(e).__name__ == "TaskCompleted"
            ]  # type: ignore[attr-defined]
            assert len(set(completed_ids)) == steps
        # Nothing is left behind: no work item, no activity task.
        assert provider.lock_next_orchestration_work_item("check", timedelta(seconds=1)) is None
        assert provider.lock_next_activity_work_item("check", timedelta(seconds=1)) is None
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
