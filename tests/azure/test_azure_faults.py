"""A fault case of issue #15 on Azure (Azurite), found by the chaos run
(``benchmarks/chaos.py --provider azure``): an undecodable control-queue message that names
its instance must fail only that instance and be listed in the dead letters, as on every other
provider (the provider contract's "Dead letters"; ``tests/faults`` corrupts SQL stores only).
Poison work on Azure is covered by ``tests/faults/test_poison.py``, which runs on Azurite."""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from azure.storage.queue import QueueClient
from azure_helpers import new_hub_name
from ostinato.provider import OrchestrationCheckpoint, OrchestrationWorkItem
from ostinato_azure import AzureStorageProvider, testing


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


def _lock_item(provider: AzureStorageProvider, lock_timeout: float) -> OrchestrationWorkItem:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = provider.lock_next_orchestration_work_items(
            "worker", timedelta(seconds=lock_timeout), 10
        )
        if items:
            (item,) = items
            return item
        threading.Event().wait(0.1)
    raise AssertionError("no work item within 60 s")


def test_an_undecodable_message_moves_aside_when_its_item_completes_and_a_crash_loses_nothing(
    connection_string: str,
) -> None:
    """The message is named in its instance's work item and stays on the queue until that
    item completes; the dead-letter row is written before the message is deleted, so a worker
    dying in between leaves the row and the message, which the next worker's item names again
    (one row in the end). A message naming no instance is moved aside at once."""
    hub = new_hub_name()
    body = json.dumps({"id": uuid.uuid4().hex, "instance_id": "victim", "event": None})
    nameless = json.dumps({"not": "a message"})
    crashed = AzureStorageProvider(
        connection_string, hub, partition_count=1, partition_leases=False
    )
    crashed.setup()  # the queues
    _inject_into_control_queue(connection_string, hub, 1, "victim", body)
    _inject_into_control_queue(connection_string, hub, 1, "victim", nameless)
    try:
        item = _lock_item(crashed, lock_timeout=1)
        (nameless_letter,) = crashed.list_dead_letters(instance_id="")
        assert nameless_letter.body == nameless
        assert (item.instance_id, item.messages) == ("victim", [])
        (named,) = item.dead_letters
        assert (named.kind, named.instance_id, named.body) == (
            ot.DeadLetterKind.MESSAGE,
            "victim",
            body,
        )
        assert "undecodable message" in named.reason
        assert crashed.list_dead_letters(instance_id="victim") == [], "moved before completion"

        def dies(received: Any) -> bool:
            raise RuntimeError("the worker died before deleting the message")

        crashed._delete_received = dies  # type: ignore[method-assign]
        try:
            crashed.complete_orchestration_work_item(item, OrchestrationCheckpoint(None))
        except RuntimeError:
            pass
        else:
            raise AssertionError("the delete was not attempted")
        (letter,) = crashed.list_dead_letters(instance_id="victim")
        assert letter.body == body, "the row must be written before the message is deleted"
    finally:
        crashed.close()
    survivor = AzureStorageProvider(
        connection_string, hub, partition_count=1, partition_leases=False
    )
    try:
        again = _lock_item(survivor, lock_timeout=30)  # the message came back after its lock
        assert [d.body for d in again.dead_letters] == [body]
        survivor.complete_orchestration_work_item(again, OrchestrationCheckpoint(None))
        (letter,) = survivor.list_dead_letters(instance_id="victim")
        assert letter.body == body
        assert survivor.lock_next_orchestration_work_items("w", timedelta(seconds=5), 10) == []
    finally:
        survivor.close()


def test_an_undecodable_activity_message_fails_its_task_and_stalls_no_other(
    connection_string: str,
) -> None:
    """An activity message that is no task at all (here: its name is gone) is moved to the
    dead letters as it is received; its text still names the task, so the task fails with a
    ``PoisonMessageError`` the orchestration can catch, and the other activities run."""
    gate, started = threading.Event(), threading.Event()
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: Any) -> Any:
        return value

    @app.activity
    def wait_for_gate(ctx: ot.ActivityContext, _: Any) -> None:
        started.set()
        gate.wait(60)

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, name: str) -> Any:
        try:
            return (yield ctx.call_activity(name, input="payload"))
        except ot.TaskFailedError as exc:
            return f"caught {exc.details.error_type}"

    hub = new_hub_name()
    provider = AzureStorageProvider(connection_string, hub, partition_count=1, lease_duration=6.0)
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.05, max_concurrent_activities=1):
            blocker = client.schedule_new_orchestration(calls, input="wait_for_gate")
            assert started.wait(30)  # the only activity slot is taken from now on
            victim = client.schedule_new_orchestration(calls, input="echo")
            bystanders = [client.schedule_new_orchestration(calls, input="echo") for _ in range(5)]
            try:
                changed = 0
                for _ in range(600):  # until the victim's task is queued (behind the gate)
                    changed = testing.rewrite_activity_tasks(
                        connection_string,
                        hub,
                        victim,
                        lambda task: json.dumps({k: v for k, v in task.items() if k != "name"}),
                    )
                    if changed:
                        break
                    gate.wait(0.05)
                assert changed == 1
            finally:
                gate.set()
            state = client.wait_for_orchestration_completion(victim, timeout=60)
            outputs = [
                client.wait_for_orchestration_completion(b, timeout=60).serialized_output
                for b in (blocker, *bystanders)
            ]
        assert outputs == [None] + ['"payload"'] * 5
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
        assert state.output == "caught PoisonMessageError"
        (letter,) = client.list_dead_letters()
        assert (letter.kind, letter.instance_id) == (ot.DeadLetterKind.ACTIVITY_TASK, victim)
        assert "name" not in json.loads(letter.body) and "undecodable" in letter.reason
    finally:
        provider.close()


def test_an_undecodable_history_is_a_dead_letter_for_the_command_line_and_http(
    connection_string: str,
) -> None:
    """On Azure as elsewhere: two instances whose histories were corrupted fail when they
    next run; their histories are dead letters listed, shown and retried (the history put
    back, as it was) from the command line, listed and deleted over HTTP."""
    from click.testing import CliRunner
    from ostinato.cli.commands import cli
    from ostinato.errors import SerializationError
    from ostinato.http import create_app
    from starlette.testclient import TestClient

    app = ot.App()

    @app.orchestrator
    def waits(ctx: ot.OrchestrationContext, n: int) -> Any:
        return [n, (yield ctx.wait_for_external_event("go"))]

    hub = new_hub_name()
    provider = AzureStorageProvider(connection_string, hub, partition_count=1, lease_duration=6.0)
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.05):
            ids = [client.schedule_new_orchestration(waits, input=n) for n in range(3)]
            for instance_id in ids:
                while not client.get_orchestration_history(instance_id):
                    threading.Event().wait(0.05)
        first, second = ids[:2]
        for victim in (first, second):
            assert testing.corrupt_history(connection_string, hub, victim, "garbage") >= 1
        with ot.Worker(app, provider, max_poll_interval=0.05):  # nothing cached
            for instance_id in ids:
                client.raise_orchestration_event(instance_id, "go", data=1)
            states = [client.wait_for_orchestration_completion(i, timeout=60) for i in ids]
        assert [s.runtime_status for s in states] == [
            ot.OrchestrationStatus.FAILED,
            ot.OrchestrationStatus.FAILED,
            ot.OrchestrationStatus.COMPLETED,
        ]
        assert states[0].failure_details is not None
        assert "cannot be decoded" in states[0].failure_details.message

        base = ["--provider", "azure", "--set", f"connection_string={connection_string}"]
        base += ["--set", f"task_hub={hub}", "dead-letters"]
        runner = CliRunner()

        def run(*args: str) -> Any:
            result = runner.invoke(cli, [*base, *args, "--json"])
            assert result.exit_code == 0, result.output
            return json.loads(result.output)

        listed = run("list")["dead_letters"]
        assert sorted((d["instance_id"], d["kind"]) for d in listed) == sorted(
            [(first, "history"), (second, "history")]
        )
        letter = next(d for d in listed if d["instance_id"] == first)
        assert json.loads(run("show", letter["id"])["body"])[0] == "garbage"
        assert run("retry", letter["id"])["ok"]
        with pytest.raises(SerializationError):  # back as it was: still garbage
            provider.get_history(first)
        with TestClient(create_app(provider), base_url="http://localhost") as http:
            (other,) = http.get("/deadLetters").json()["deadLetters"]
            assert other["instanceId"] == second
            assert http.delete(f"/deadLetters/{other['id']}").status_code == 204
            assert http.get("/deadLetters").json()["deadLetters"] == []
    finally:
        provider.close()
