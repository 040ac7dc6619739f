"""A fault case of issue #15 on Azure (Azurite), found by the chaos run
(``benchmarks/chaos.py --provider azure``): an undecodable control-queue message that names
its instance must fail only that instance and be listed in the dead letters, as on every other
provider (the provider contract's "Dead letters"; ``tests/faults`` corrupts SQL stores only).
Poison work on Azure is covered by ``tests/faults/test_poison.py``, which runs on Azurite."""

from __future__ import annotations

import json
import threading
import uuid
import zlib
from typing import Any

import ostinato as ot
from azure.storage.queue import QueueClient
from azure_helpers import new_hub_name
from ostinato_azure import AzureStorageProvider


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
