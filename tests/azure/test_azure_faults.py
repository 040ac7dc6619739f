"""The fault cases of issue #15 on Azure (Azurite), found by the chaos run
(``benchmarks/chaos.py --provider azure``): a poison orchestrator must be failed by the core's
poison policy while bystanders in its partition complete, and an undecodable control-queue
message that names its instance must fail only that instance and be listed in the dead
letters (the provider contract's "Dead letters")."""

from __future__ import annotations

import json
import sys
import threading
import uuid
import zlib
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from azure.storage.queue import QueueClient
from azure_helpers import new_hub_name
from ostinato_azure import AzureStorageProvider

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.faults import test_poison as poison_checks  # noqa: E402


@pytest.mark.slow
@pytest.mark.xfail(
    reason="Azure work items report dequeue_count=1, so the core's poison policy never "
    "applies: every worker that receives the poison step or activity dies with every other "
    "message it received in the same batch (up to 32), so bystanders stall and innocent "
    "activities reach the provider's own max_dequeue_count (10) and are failed with "
    "PoisonMessageError; the poison orchestrator's message goes to the poison table after 11 "
    "deliveries but its instance stays RUNNING; the poison activity runs 11 times, not 3 "
    "(#15, #17)",
    strict=True,
)
def test_poison_orchestrator_and_activity_fail_while_bystanders_in_their_partition_complete(
    connection_string: str, tmp_path: Path
) -> None:
    settings = {"partition_count": 1, "lease_duration": 6.0}  # every instance in one partition
    spec = {"kind": "azure", "connection_string": connection_string, "task_hub": new_hub_name()}
    provider = AzureStorageProvider(connection_string, spec["task_hub"], **settings)  # type: ignore[arg-type]
    try:
        poison_checks.test_poison_activity_and_orchestrator_fail_while_bystanders_complete(
            spec | {"azure": settings}, ot.Client(provider), tmp_path
        )
    finally:
        provider.close()


def _inject_into_control_queue(
    connection_string: str, hub: str, partitions: int, instance_id: str, body: str
) -> None:
    """Send ``body`` to the instance's control queue past the provider (as a bug or a
    foreign writer would): the queue is ``crc32(instance id) % partition_count``."""
    index = zlib.crc32(instance_id.encode("utf-8")) % partitions
    with QueueClient.from_connection_string(
        connection_string, f"{hub.lower()}-control-{index:02d}"
    ) as queue:
        queue.send_message(body, time_to_live=-1)


@pytest.mark.xfail(
    reason="an undecodable control-queue message goes to the Azure poison table with no "
    "instance id even when its body names one; the instance is not failed (here it "
    "completes without the message) and list_dead_letters() is empty: the Azure provider "
    "does not implement the dead-letter contract (#15)",
    strict=True,
)
def test_an_undecodable_control_message_fails_only_its_instance(connection_string: str) -> None:
    app = ot.App()

    @app.orchestrator
    def waits(ctx: ot.OrchestrationContext, n: int) -> Any:
        return [n, (yield ctx.wait_for_external_event("go"))]

    hub = new_hub_name()
    provider = AzureStorageProvider(connection_string, hub, partition_count=1, lease_duration=6.0)
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.05):
            victim, *bystanders = [
                client.schedule_new_orchestration(waits, input=n) for n in range(6)
            ]
            for instance_id in (victim, *bystanders):
                while not client.get_orchestration_history(instance_id):
                    threading.Event().wait(0.05)
            body = json.dumps(
                {"id": uuid.uuid4().hex, "instance_id": victim, "event": {"not": "an event"}}
            )
            _inject_into_control_queue(connection_string, hub, 1, victim, body)
            for instance_id in (victim, *bystanders):
                client.raise_orchestration_event(instance_id, "go", data="now")
            outputs = [
                client.wait_for_orchestration_completion(i, timeout=60).serialized_output
                for i in bystanders
            ]
            state = client.wait_for_orchestration_completion(victim, timeout=60)
        assert outputs == [f'[{n + 1},"now"]' for n in range(5)]
        assert state.runtime_status is ot.OrchestrationStatus.FAILED, state.serialized_output
        assert state.failure_details is not None
        assert "could not be decoded" in state.failure_details.message
        (letter,) = client.list_dead_letters(instance_id=victim)
        assert (letter.kind, letter.body) == (ot.DeadLetterKind.MESSAGE, body)
    finally:
        provider.close()
