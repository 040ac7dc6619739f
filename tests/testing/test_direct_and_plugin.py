"""Running one activity or entity operation directly; the pytest plugin's fixture."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import ostinato as ot
import pytest
from ostinato.testing import run_activity, run_entity_operation

app = ot.App()


@dataclass
class Course:
    major: str
    year: int


@app.activity
def recommend(ctx: ot.ActivityContext, course: Course) -> list[str]:
    assert isinstance(course, Course)  # the input arrives as the declared type
    return [f"{course.major} {course.year}01", f"{ctx.name} for {ctx.instance_id}"]


@app.activity
async def shout(ctx: ot.ActivityContext, text: str) -> str:
    return text.upper()


@app.activity
def broken(ctx: ot.ActivityContext, _: Any) -> None:
    raise KeyError("nope")


@app.entity
def counter(ctx: ot.EntityContext, amount: Any) -> int:
    if ctx.operation_name == "add":
        ctx.set_state(ctx.get_state(0) + amount)
        if ctx.get_state() > 10:
            ctx.signal_entity(ot.EntityId("alarm", "x"), "ring", ctx.get_state())
    elif ctx.operation_name == "reset":
        ctx.delete_state()
    return int(ctx.get_state(0))


def test_run_activity_goes_through_the_converter() -> None:
    result = run_activity(app, recommend, Course("math", 2), instance_id="i1")
    assert result == ["math 201", "recommend for i1"]
    assert run_activity(app, "shout", "hi") == "HI"
    with pytest.raises(KeyError, match="nope"):
        run_activity(app, broken)
    with pytest.raises(LookupError, match="missing"):
        run_activity(app, "missing")


def test_run_entity_operation_returns_result_state_and_signals() -> None:
    entity = ot.EntityId("counter", "a")
    first = run_entity_operation(app, entity, "add", 4)
    assert (first.result, first.state, first.signals) == (4, 4, [])
    second = run_entity_operation(app, entity, "add", 9, state=first.state)
    assert (second.result, second.state) == (13, 13)
    assert second.signals == [(ot.EntityId("alarm", "x"), "ring", 13)]
    assert run_entity_operation(app, entity, "reset", state=13).state is None


def test_the_plugin_module_imports_no_ostinato() -> None:
    code = (
        "import _ostinato_pytestplugin, sys; "
        "print(sorted(m for m in sys.modules if 'ostinato' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['_ostinato_pytestplugin']"


def test_the_ostinato_env_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import UTC, datetime, timedelta

        import ostinato as ot
        import pytest

        app = ot.App()

        @app.orchestrator
        def nap(ctx, days):
            yield ctx.create_timer(timedelta(days=days))
            return ctx.current_utc_datetime.isoformat()

        @pytest.fixture
        def ostinato_app():
            return app

        def test_memory(ostinato_env):
            iid = ostinato_env.client.schedule_new_orchestration(nap, input=7)
            state = ostinato_env.client.wait_for_orchestration_completion(iid)
            assert state.output == (ostinato_env.start_time + timedelta(days=7)).isoformat()

        @pytest.mark.ostinato_env(sqlite=True, start=datetime(2031, 5, 1, tzinfo=UTC))
        def test_sqlite(ostinato_env, tmp_path):
            iid = ostinato_env.client.schedule_new_orchestration(nap, input=2)
            state = ostinato_env.client.wait_for_orchestration_completion(iid)
            assert state.output == "2031-05-03T00:00:00+00:00"
            assert (tmp_path / "ostinato.db").exists()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_fixture_without_an_app_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(ostinato_env):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*needs an `ostinato_app` fixture*"])
