"""Corrupt records fail only their instance: an undecodable inbox message or history is moved
aside into the dead letters, its instance goes FAILED with a message naming them, and every
other instance of the batch proceeds; an undecodable activity input fails its task. Dead
letters can be listed, shown, retried and deleted."""

from __future__ import annotations

import json
import threading
from typing import Any

import ostinato as ot
import pytest
from click.testing import CliRunner
from ostinato.cli.commands import cli

from .conftest import WorkerFactory
from .stores import raw_execute


def _app(gate: threading.Event | None = None, started: threading.Event | None = None) -> ot.App:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: Any) -> Any:
        return value

    @app.activity
    def wait_for_gate(ctx: ot.ActivityContext, _: Any) -> None:
        assert gate is not None and started is not None
        started.set()
        gate.wait(60)

    @app.orchestrator
    def waits(ctx: ot.OrchestrationContext, n: int) -> Any:
        value = yield ctx.wait_for_external_event("go")
        return [n, value]

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, name: str) -> Any:
        return (yield ctx.call_activity(name, input="payload"))

    return app


def _start_waiting(client: ot.Client, worker: WorkerFactory, count: int) -> list[str]:
    ids = [client.schedule_new_orchestration("waits", input=n) for n in range(count)]
    with worker(_app()):
        for instance_id in ids:
            client.wait_for_orchestration_start(instance_id, timeout=30)
        # Started is not enough: wait until each has recorded its first step.
        for instance_id in ids:
            while not client.get_orchestration_history(instance_id):
                threading.Event().wait(0.02)
    return ids


def test_an_undecodable_inbox_message_fails_only_its_instance(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    victim, *bystanders = _start_waiting(client, worker, 11)
    for instance_id in (victim, *bystanders):
        client.raise_orchestration_event(instance_id, "go", data="now")
    changed = raw_execute(
        store_spec, "UPDATE ostinato_inbox SET body = ? WHERE instance_id = ?", "{oops", victim
    )
    assert changed == 1
    with worker(_app()):  # the 11 instances are locked in one batch
        state = client.wait_for_orchestration_completion(victim, timeout=30)
        outputs = [
            client.wait_for_orchestration_completion(i, timeout=30).serialized_output
            for i in bystanders
        ]
    assert outputs == [f'[{n + 1},"now"]' for n in range(10)]
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "could not be decoded" in state.failure_details.message
    (letter,) = client.list_dead_letters()
    assert (letter.kind, letter.instance_id, letter.body) == (
        ot.DeadLetterKind.MESSAGE,
        victim,
        "{oops",
    )
    assert f"dead-letters list --instance {victim}" in state.failure_details.message
    assert "JSONDecodeError" in letter.reason
    assert client.get_dead_letter(letter.id) == letter
    # Retry puts it back as it was; a worker moves it aside again (still undecodable), and
    # the failed instance stays as it is.
    assert client.retry_dead_letter(letter.id)
    assert client.get_dead_letter(letter.id) is None
    with worker(_app()):
        deadline = threading.Event()
        for _ in range(300):
            letters = client.list_dead_letters(instance_id=victim)
            if letters:
                break
            deadline.wait(0.05)
    (again,) = client.list_dead_letters()
    assert again.body == "{oops" and again.created_at > letter.created_at
    assert client.get_orchestration_state(victim).runtime_status is ot.OrchestrationStatus.FAILED  # type: ignore[union-attr]
    assert client.delete_dead_letter(again.id)
    assert not client.delete_dead_letter(again.id)
    assert client.list_dead_letters() == []


def test_an_undecodable_history_fails_only_its_instance(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    victim, *bystanders = _start_waiting(client, worker, 6)
    changed = raw_execute(
        store_spec, "UPDATE ostinato_history SET event = ? WHERE instance_id = ?", "garbage", victim
    )
    assert changed >= 1
    for instance_id in (victim, *bystanders):
        client.raise_orchestration_event(instance_id, "go", data=1)
    with worker(_app()):  # a new worker: nothing cached, every history is read
        state = client.wait_for_orchestration_completion(victim, timeout=30)
        for instance_id in bystanders:
            done = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert done.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "history" in state.failure_details.message
    (letter,) = client.list_dead_letters(instance_id=victim)
    assert letter.kind is ot.DeadLetterKind.HISTORY and "garbage" in letter.body
    # The instance's history now reads (it holds the failure); the old one is the letter.
    events = client.get_orchestration_history(victim)
    assert events and events[-1].event_type.name == "EXECUTION_COMPLETED"


def test_an_undecodable_activity_input_fails_only_its_task(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    gate, started = threading.Event(), threading.Event()
    with worker(_app(gate, started), max_concurrent_activities=1):
        blocker = client.schedule_new_orchestration("calls", input="wait_for_gate")
        assert started.wait(30)  # the only activity slot is taken from now on
        victim = client.schedule_new_orchestration("calls", input="echo")
        bystander = client.schedule_new_orchestration("calls", input="echo")
        try:
            changed = 0
            for _ in range(600):  # until the victim's task is queued (behind the gate)
                changed = raw_execute(
                    store_spec,
                    "UPDATE ostinato_activities SET input = ? WHERE instance_id = ?",
                    "{oops",
                    victim,
                )
                if changed:
                    break
                gate.wait(0.05)
            assert changed == 1
        finally:
            gate.set()
        state = client.wait_for_orchestration_completion(victim, timeout=30)
        assert (
            client.wait_for_orchestration_completion(bystander, timeout=30).serialized_output
            == '"payload"'
        )
        assert client.wait_for_orchestration_completion(blocker, timeout=30).runtime_status is (
            ot.OrchestrationStatus.COMPLETED
        )
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.is_caused_by("SerializationError")


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_dead_letters_from_the_command_line(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    (victim,) = _start_waiting(client, worker, 1)
    client.raise_orchestration_event(victim, "go", data=1)
    raw_execute(
        store_spec, "UPDATE ostinato_inbox SET body = ? WHERE instance_id = ?", "{x", victim
    )
    with worker(_app()):
        client.wait_for_orchestration_completion(victim, timeout=30)
    base = ["--provider", "sqlite", "--set", f"path={store_spec['path']}", "dead-letters"]
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, [*base, *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    (listed,) = run("list")["dead_letters"]
    assert listed["instance_id"] == victim and listed["kind"] == "message"
    assert run("show", listed["id"])["body"] == "{x"
    assert run("retry", listed["id"])["ok"]
    assert client.list_dead_letters() == []  # back in the inbox
    with worker(_app()):  # moved aside again: still undecodable
        for _ in range(300):
            if client.list_dead_letters():
                break
            threading.Event().wait(0.05)
    (again,) = run("list")["dead_letters"]
    assert run("delete", again["id"])["ok"]
    assert run("list")["dead_letters"] == []
    missing = runner.invoke(cli, [*base, "show", "12345"])
    assert missing.exit_code == 1 and "No dead letter" in missing.output


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_dead_letters_over_http(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any], store: ot.StorageProvider
) -> None:
    from ostinato.http import create_app
    from starlette.testclient import TestClient

    (victim,) = _start_waiting(client, worker, 1)
    client.raise_orchestration_event(victim, "go", data=1)
    raw_execute(
        store_spec, "UPDATE ostinato_inbox SET body = ? WHERE instance_id = ?", "{x", victim
    )
    with worker(_app()):
        client.wait_for_orchestration_completion(victim, timeout=30)
    with TestClient(create_app(store), base_url="http://localhost") as http:
        listed = http.get("/deadLetters", params={"instanceId": victim}).json()["deadLetters"]
        assert [(d["instanceId"], d["kind"], d["body"]) for d in listed] == [
            (victim, "message", "{x")
        ]
        letter_id = listed[0]["id"]
        assert listed[0]["createdAt"].endswith("Z")  # times as in the rest of the API
        assert http.get(f"/deadLetters/{letter_id}").json()["reason"] == listed[0]["reason"]
        assert http.get("/deadLetters", params={"limit": "0"}).status_code == 400
        assert http.post(f"/deadLetters/{letter_id}/retry").status_code == 200
        assert http.get(f"/deadLetters/{letter_id}").status_code == 404
        assert client.list_dead_letters() == []
        with worker(_app()):  # moved aside again
            for _ in range(300):
                if client.list_dead_letters():
                    break
                threading.Event().wait(0.05)
        (again,) = http.get("/deadLetters").json()["deadLetters"]
        assert http.delete(f"/deadLetters/{again['id']}").status_code == 204
        assert http.delete(f"/deadLetters/{again['id']}").status_code == 404
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/deadLetters", "/deadLetters/{id}", "/deadLetters/{id}/retry"} <= set(paths)
        assert paths["/deadLetters/{id}/retry"]["post"]["x-ostinato-scope"] == "manage"
        assert paths["/deadLetters"]["get"]["x-ostinato-scope"] == "read"
