"""Poison work ends: an activity and an orchestrator step that kill their worker process
(``os._exit``) are failed after ``max_delivery_attempts`` deliveries, while bystanders locked
beside them all complete; terminate and purge work on a poison instance."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest

from .processes import RestartingWorker

MAX_ATTEMPTS = 3
LOCK_TIMEOUT = 2.0


def _marks(directory: Path, name: str) -> int:
    path = directory / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_terminal(client: ot.Client, ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    states: dict[str, Any] = {}
    for instance_id in ids:
        left = max(deadline - time.monotonic(), 0.1)
        states[instance_id] = client.wait_for_orchestration_completion(instance_id, timeout=left)
    return states


@pytest.mark.slow
def test_poison_activity_and_orchestrator_fail_while_bystanders_complete(
    store_spec: dict[str, Any], client: ot.Client, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {
        **store_spec,
        "marks": str(marks),
        "lock_timeout": LOCK_TIMEOUT,
        "max_delivery_attempts": MAX_ATTEMPTS,
    }
    poison_activity = client.schedule_new_orchestration("calls_crash")
    poison_orchestrator = client.schedule_new_orchestration("crashes")
    bystanders = [client.schedule_new_orchestration("bystander", input=n) for n in range(20)]
    with RestartingWorker(spec) as workers:
        states = _wait_terminal(client, [poison_activity, poison_orchestrator, *bystanders], 120)
    for n, instance_id in enumerate(bystanders):
        state = states[instance_id]
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
        assert state.serialized_output == str(2 * n + 1)
    state = states[poison_activity]
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == ["caught", "PoisonMessageError"]
    state = states[poison_orchestrator]
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "PoisonMessageError"
    assert "max_delivery_attempts=3" in state.failure_details.message
    # Each poison item ran at most max_delivery_attempts times, and nothing else crashed.
    assert 1 <= _marks(marks, "crash_activity") <= MAX_ATTEMPTS
    assert 1 <= _marks(marks, "crash_orchestrator") <= MAX_ATTEMPTS
    assert workers.crashes == _marks(marks, "crash_activity") + _marks(marks, "crash_orchestrator")


@pytest.mark.slow
def test_terminate_and_purge_work_on_poison_instances(
    store_spec: dict[str, Any], client: ot.Client, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {
        **store_spec,
        "marks": str(marks),
        "lock_timeout": LOCK_TIMEOUT,
        "max_delivery_attempts": 1000,  # never reached: only terminate can end them
    }
    activity = client.schedule_new_orchestration("calls_crash")
    orchestrator = client.schedule_new_orchestration("crashes")
    with RestartingWorker(spec):
        deadline = time.monotonic() + 60
        while not (_marks(marks, "crash_activity") and _marks(marks, "crash_orchestrator")):
            assert time.monotonic() < deadline, "the poison items never ran"
            time.sleep(0.1)
        client.terminate_orchestration(activity, output="stop")
        client.terminate_orchestration(orchestrator, output="stop")
        states = _wait_terminal(client, [activity, orchestrator], 60)
        ran = (_marks(marks, "crash_activity"), _marks(marks, "crash_orchestrator"))
        # A normal orchestration still runs after them.
        other = client.schedule_new_orchestration("bystander", input=1)
        assert _wait_terminal(client, [other], 60)[other].serialized_output == "3"
        # The terminated poison activity's task is not run again.
        assert (_marks(marks, "crash_activity"), _marks(marks, "crash_orchestrator")) == ran
    for state in states.values():
        assert state.runtime_status is ot.OrchestrationStatus.TERMINATED
        assert state.serialized_output == '"stop"'
    # Purge may force an active instance away.
    active = client.schedule_new_orchestration("crashes")
    assert client.purge_orchestration(active).deleted_instance_count == 0
    assert client.purge_orchestration(active, force=True).deleted_instance_count == 1
    assert client.get_orchestration_state(active) is None
