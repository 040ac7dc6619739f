"""Crash recovery in seconds: after ``kill -9`` of a worker, its work resumes on another
within 20 s with the default lock timeout (locks are short and renewed while work runs)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest

from .processes import start_worker


@pytest.mark.slow
def test_work_of_a_killed_worker_resumes_within_20_seconds(
    store_spec: dict[str, Any], client: ot.Client, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {**store_spec, "marks": str(marks)}  # default lock timeout
    # The activity outlives a renewal interval (a third of the lock timeout): only renewals
    # keep its lock while it runs.
    instance_id = client.schedule_new_orchestration("sleeps", input=6.0)
    first = start_worker(spec)
    try:
        deadline = time.monotonic() + 60
        while not (marks / "slow_started").exists():
            assert time.monotonic() < deadline, "the activity never started"
            time.sleep(0.05)
        time.sleep(5.5)  # past the first renewal
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(spec)
    try:
        deadline = killed_at + 20
        while len((marks / "slow_started").read_text().splitlines()) < 2:
            assert time.monotonic() < deadline, "the killed worker's activity did not resume"
            time.sleep(0.05)
        resumed_after = time.monotonic() - killed_at
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert resumed_after < 20
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.serialized_output == '"slept"'
