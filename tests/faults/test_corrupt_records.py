"""Corrupt records fail only their instance: an undecodable inbox message or history is moved
aside into the dead letters, its instance goes FAILED with a message naming them, and every
other instance of the batch proceeds; so does an activity task whose input cannot be decoded
at all (an input of the wrong type only fails its task). Dead letters can be listed, shown,
retried and deleted; purging an instance deletes its dead letters, and retention those older
than its ``failed`` age."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import ostinato as ot
import pytest
from click.testing import CliRunner
from ostinato.cli.commands import cli

from .conftest import WorkerFactory
from .stores import corrupt_activity_input, corrupt_history, raw_execute


@dataclass
class Point:
    x: int
    y: int


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

    @app.activity
    def takes_a_point(ctx: ot.ActivityContext, point: Point) -> int:
        return point.x

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, name: str) -> Any:
        return (yield ctx.call_activity(name, input="payload"))

    @app.orchestrator
    def calls_and_catches(ctx: ot.OrchestrationContext, name: str) -> Any:
        try:
            return (yield ctx.call_activity(name, input="payload"))
        except ot.TaskFailedError as exc:
            return f"caught {exc.details.error_type}"

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


def _failed_by_a_corrupt_message(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any], count: int
) -> list[str]:
    """``count`` instances, each FAILED by an undecodable message (one dead letter each; on
    Azure, which has no SQL inbox, by an undecodable history)."""
    ids = _start_waiting(client, worker, count)
    for instance_id in ids:
        client.raise_orchestration_event(instance_id, "go", data=1)
        if store_spec["kind"] == "azure":
            corrupt_history(store_spec, instance_id, "{x")
            continue
        raw_execute(
            store_spec,
            "UPDATE ostinato_inbox SET body = ? WHERE instance_id = ?",
            "{x",
            instance_id,
        )
    with worker(_app()):
        for instance_id in ids:
            client.wait_for_orchestration_completion(instance_id, timeout=30)
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
    changed = corrupt_history(store_spec, victim, "garbage")
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


def test_an_undecodable_activity_task_is_moved_aside_and_fails_only_its_instance(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    gate, started = threading.Event(), threading.Event()
    with worker(_app(gate, started), max_concurrent_activities=1):
        blocker = client.schedule_new_orchestration("calls", input="wait_for_gate")
        assert started.wait(30)  # the only activity slot is taken from now on
        victim = client.schedule_new_orchestration("calls_and_catches", input="echo")
        bystanders = [client.schedule_new_orchestration("calls", input="echo") for _ in range(5)]
        try:
            changed = 0
            for _ in range(600):  # until the victim's task is queued (behind the gate)
                changed = corrupt_activity_input(store_spec, victim, "{oops")
                if changed:
                    break
                gate.wait(0.05)
            assert changed == 1
        finally:
            gate.set()
        state = client.wait_for_orchestration_completion(victim, timeout=30)
        outputs = [
            client.wait_for_orchestration_completion(b, timeout=30).serialized_output
            for b in bystanders
        ]
        assert outputs == ['"payload"'] * 5
        assert client.wait_for_orchestration_completion(blocker, timeout=30).runtime_status is (
            ot.OrchestrationStatus.COMPLETED
        )
    # The instance fails although its code catches task failures: the record is corrupt.
    assert state.runtime_status is ot.OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "SerializationError"
    message = state.failure_details.message
    assert "activity 'echo'" in message and "cannot be decoded" in message
    assert f"dead-letters list --instance {victim}" in message
    (letter,) = client.list_dead_letters()
    assert (letter.kind, letter.instance_id) == (ot.DeadLetterKind.ACTIVITY_TASK, victim)
    assert json.loads(letter.body)["input"] == "{oops" and json.loads(letter.body)["name"] == "echo"
    assert "undecodable activity input" in letter.reason
    # Put back, it is still undecodable: moved aside again (its instance has ended).
    assert client.retry_dead_letter(letter.id)
    assert client.list_dead_letters() == []
    with worker(_app()):
        for _ in range(600):
            if client.list_dead_letters():
                break
            threading.Event().wait(0.05)
    (again,) = client.list_dead_letters()
    assert again.kind is ot.DeadLetterKind.ACTIVITY_TASK and again.body == letter.body
    assert client.get_orchestration_state(victim).runtime_status is ot.OrchestrationStatus.FAILED  # type: ignore[union-attr]


def test_an_activity_input_of_the_wrong_type_fails_only_its_task(
    client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(_app()):
        iid = client.schedule_new_orchestration("calls_and_catches", input="takes_a_point")
        state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert state.output == "caught SerializationError"
    assert client.list_dead_letters() == []


def test_purging_an_instance_deletes_its_dead_letters(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    victim, other = _failed_by_a_corrupt_message(client, worker, store_spec, 2)
    assert {d.instance_id for d in client.list_dead_letters()} == {victim, other}
    assert client.purge_orchestration(victim)
    assert [d.instance_id for d in client.list_dead_letters()] == [other]


def test_retention_deletes_dead_letters_older_than_the_failed_age(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any], store: ot.StorageProvider
) -> None:
    from datetime import timedelta

    from ostinato.runtime.retention import RetentionPolicy, RetentionSweeper

    (victim,) = _failed_by_a_corrupt_message(client, worker, store_spec, 1)
    (letter,) = client.list_dead_letters()
    # Restarted, the instance lives on; its old dead letter stays until it is old enough.
    client.schedule_new_orchestration("waits", input=0, instance_id=victim)
    kept = RetentionSweeper(store, RetentionPolicy(failed=timedelta(days=1)), "sweeper")
    kept.sweep()
    assert client.list_dead_letters() == [letter] and kept.dead_letters_purged == 0
    swept = RetentionSweeper(store, RetentionPolicy(failed=timedelta(0)), "sweeper")
    swept.sweep()
    assert client.list_dead_letters() == [] and swept.dead_letters_purged == 1
    assert client.get_orchestration_state(victim) is not None  # the instance itself stays


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_dead_letters_from_the_command_line(
    client: ot.Client, worker: WorkerFactory, store_spec: dict[str, Any]
) -> None:
    (victim,) = _failed_by_a_corrupt_message(client, worker, store_spec, 1)
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

    (victim,) = _failed_by_a_corrupt_message(client, worker, store_spec, 1)
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
