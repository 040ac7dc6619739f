"""Task.result, OrchestrationState.raise_if_failed/get_output, return_type=, tags, and
rewind/restart on SQLite (the same checks run on PostgreSQL and Azure in their folders)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.sqlite import SqliteProvider

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.rewind_and_restart import wait_after  # noqa: E402

from .rewind_checks import check_rewind_and_restart  # noqa: E402

WORKER = {"max_poll_interval": 0.05}


@dataclass
class Quote:
    item: str
    price: float


app = ot.App()


@app.activity(name="quote")
def quote(ctx: ot.ActivityContext, item: str):  # no annotation: results arrive as dicts
    return Quote(item, 9.5)


@app.orchestrator
def typed(ctx: ot.OrchestrationContext, item: str) -> Any:
    plain = yield ctx.call_activity("quote", input=item)
    task = ctx.call_activity("quote", input=item, return_type=Quote)
    typed_quote = yield task
    assert task.result is typed_quote and task.result == task.get_result()
    return {"plain": type(plain).__name__, "typed": type(typed_quote).__name__, "tags": ctx.tags}


@app.orchestrator
def fails(ctx: ot.OrchestrationContext, _: Any) -> None:
    raise ValueError("bad input")


@app.orchestrator
def tagged(ctx: ot.OrchestrationContext, rounds: int) -> Any:
    if rounds:
        ctx.continue_as_new(rounds - 1)
        return None
    return ctx.tags


def test_typed_results_task_result_and_tags() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(app, provider, **WORKER):
        iid = client.schedule_new_orchestration(typed, input="pen", tags={"team": "shop"})
        state = client.wait_for_orchestration_completion(iid, timeout=30).raise_if_failed()
        tagged_id = client.schedule_new_orchestration(tagged, input=2, tags={"a": "b"})
        tagged_state = client.wait_for_orchestration_completion(tagged_id, timeout=30)
        failed_id = client.schedule_new_orchestration(fails)
        failed = client.wait_for_orchestration_completion(failed_id, timeout=30)
    assert state.output == {"plain": "dict", "typed": "Quote", "tags": {"team": "shop"}}
    assert tagged_state.output == {"a": "b"}  # kept across continue_as_new
    with pytest.raises(ot.OrchestrationFailedError, match="bad input"):
        failed.raise_if_failed()
    with pytest.raises(TypeError, match="tags"):
        client.schedule_new_orchestration(typed, tags={"n": 1})  # type: ignore[dict-item]


def test_get_output_decodes_dataclasses_and_pydantic_models() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    converter_app = ot.App()

    @converter_app.orchestrator
    def make_quote(ctx: ot.OrchestrationContext, item: str) -> Any:
        return {"item": item, "price": 3.0}

    with ot.Worker(converter_app, provider, **WORKER):
        iid = client.schedule_new_orchestration(make_quote, input="cup")
        state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state.get_output(Quote) == Quote("cup", 3.0)
    assert state.get_input(str) == "cup"
    assert state.get_output() == {"item": "cup", "price": 3.0}
    pydantic = pytest.importorskip("pydantic")

    class QuoteModel(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        item: str
        price: float

    model = state.get_output(QuoteModel)
    assert isinstance(model, QuoteModel) and model.price == 3.0


def test_rewind_and_restart_on_sqlite(tmp_path: Path) -> None:
    provider = SqliteProvider(tmp_path / "rewind.db")
    try:
        check_rewind_and_restart(provider, "sqlite-1")
    finally:
        provider.close()


def test_rewind_and_restart_refuse_what_they_cannot_do() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with pytest.raises(ot.InstanceNotFoundError):
        client.rewind_orchestration("nope")
    with pytest.raises(ot.InstanceNotFoundError):
        client.restart_orchestration("nope")
    iid = client.schedule_new_orchestration(typed, input="x")
    with pytest.raises(ValueError, match="Only a FAILED instance can be rewound"):
        client.rewind_orchestration(iid)
    with pytest.raises(ot.InstanceAlreadyExistsError):
        client.restart_orchestration(iid, restart_with_new_instance_id=False)


def test_rewind_reruns_a_failed_sub_orchestration_and_a_failed_first_step() -> None:
    flaky = ot.App()
    broken = {"child": True, "start": True}

    @flaky.activity(name="work")
    def work(ctx: ot.ActivityContext, n: int) -> int:
        if broken["child"]:
            raise RuntimeError("child work failed")
        return n * 2

    @flaky.orchestrator(name="child")
    def child(ctx: ot.OrchestrationContext, n: int) -> Any:
        return (yield ctx.call_activity("work", input=n))

    @flaky.orchestrator(name="parent")
    def parent(ctx: ot.OrchestrationContext, n: int) -> Any:
        return (yield ctx.call_sub_orchestrator("child", input=n, instance_id=f"child-{n}"))

    @flaky.orchestrator(name="starter")
    def starter(ctx: ot.OrchestrationContext, _: Any) -> str:
        if broken["start"]:
            raise RuntimeError("fails at once")
        return "fixed"

    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with ot.Worker(flaky, provider, **WORKER):
        pid = client.schedule_new_orchestration("parent", input=21)
        sid = client.schedule_new_orchestration("starter")
        failed = [client.wait_for_orchestration_completion(i, timeout=30) for i in (pid, sid)]
        assert [s.runtime_status.name for s in failed] == ["FAILED", "FAILED"]
        broken.update(child=False, start=False)
        client.rewind_orchestration(pid)
        client.rewind_orchestration(sid)
        assert wait_after(client, pid, failed[0].last_updated_at, 30).output == 42
        assert wait_after(client, sid, failed[1].last_updated_at, 30).output == "fixed"
    child_state = client.get_orchestration_state("child-21")
    assert child_state is not None and child_state.output == 42


def test_the_cli_rewinds_and_restarts(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner
    from ostinato.cli.commands import cli

    from examples import rewind_and_restart as example

    path = tmp_path / "cli.db"

    def run(*args: str) -> Any:
        options = ["--provider", "sqlite", "--set", f"path={path}"]
        return CliRunner().invoke(cli, [*options, *args], catch_exceptions=False)

    provider = SqliteProvider(path)
    client = ot.Client(provider)
    example.payment_service_up.clear()
    try:
        with ot.Worker(example.app, provider, **WORKER):
            iid = client.schedule_new_orchestration(example.place_order, input="cli-1")
            failed = client.wait_for_orchestration_completion(iid, timeout=30)
            assert failed.runtime_status is ot.OrchestrationStatus.FAILED
            example.payment_service_up.set()
            result = run("rewind", iid, "--reason", "fixed", "--json")
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout) == {"instance_id": iid, "action": "rewind", "ok": True}
            rewound = wait_after(client, iid, failed.last_updated_at, 30)
            assert rewound.output == ["reserved cli-1", "charged cli-1"]
            result = run("restart", iid, "--json")
            assert result.exit_code == 0, result.output
            new_id = json.loads(result.stdout)["instance_id"]
            assert new_id != iid
            assert client.wait_for_orchestration_completion(new_id, timeout=30).output == (
                rewound.output
            )
        result = run("rewind", iid)
        assert result.exit_code == 1
        assert "Only a FAILED instance can be rewound" in result.stderr
    finally:
        provider.close()
