"""User code cannot stop the worker: ``BaseException`` from an orchestrator or an activity
fails that step or task (type and message kept) and the worker goes on with other work."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest

from .conftest import WorkerFactory


def app_with_hostile_code() -> ot.App:
    app = ot.App()

    @app.activity
    def exits(ctx: ot.ActivityContext, code: int) -> None:
        sys.exit(code)

    @app.activity
    def interrupts(ctx: ot.ActivityContext, _: Any) -> None:
        raise KeyboardInterrupt("from an activity")

    @app.activity
    async def exits_async(ctx: ot.ActivityContext, code: int) -> None:
        raise SystemExit(code)

    @app.activity
    def echo(ctx: ot.ActivityContext, value: int) -> int:
        return value

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, name: str) -> Any:
        try:
            yield ctx.call_activity(name, input=3)
        except ot.TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message]
        return "no failure"

    @app.orchestrator
    def exits_itself(ctx: ot.OrchestrationContext, _: Any) -> Any:
        yield ctx.call_activity(echo, input=1)
        raise SystemExit("orchestrator exit")

    @app.orchestrator
    def interrupts_itself(ctx: ot.OrchestrationContext, _: Any) -> Any:
        raise KeyboardInterrupt("orchestrator interrupt")
        yield

    @app.orchestrator
    def normal(ctx: ot.OrchestrationContext, value: int) -> Any:
        return (yield ctx.call_activity(echo, input=value))

    return app


def test_system_exit_and_keyboard_interrupt_fail_only_their_step(
    client: ot.Client, worker: WorkerFactory
) -> None:
    app = app_with_hostile_code()
    with worker(app):
        # More hostile steps than the worker has threads: none of them may kill one.
        hostile = [client.schedule_new_orchestration("exits_itself") for _ in range(4)]
        hostile += [client.schedule_new_orchestration("interrupts_itself") for _ in range(4)]
        caught = {
            name: client.schedule_new_orchestration("calls", input=name)
            for name in ("exits", "interrupts", "exits_async")
        }
        for instance_id in hostile:
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state.runtime_status is ot.OrchestrationStatus.FAILED
            assert state.failure_details is not None
            assert (state.failure_details.error_type, state.failure_details.message) in {
                ("SystemExit", "orchestrator exit"),
                ("KeyboardInterrupt", "orchestrator interrupt"),
            }
        outputs = {
            name: client.wait_for_orchestration_completion(iid, timeout=30).serialized_output
            for name, iid in caught.items()
        }
        assert outputs == {
            "exits": '["SystemExit","3"]',
            "interrupts": '["KeyboardInterrupt","from an activity"]',
            "exits_async": '["SystemExit","3"]',
        }
        # The worker still runs everything else.
        normal = [client.schedule_new_orchestration("normal", input=n) for n in range(10)]
        for n, instance_id in enumerate(normal):
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
            assert state.serialized_output == str(n)


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_activity_exit_leaves_no_locked_task(
    client: ot.Client, worker: WorkerFactory, store: ot.StorageProvider
) -> None:
    app = app_with_hostile_code()
    with worker(app):
        instance_id = client.schedule_new_orchestration("calls", input="exits")
        client.wait_for_orchestration_completion(instance_id, timeout=30)
    # Nothing is left to lock: the task was completed (failed), not left locked.
    assert store.lock_next_activity_work_item("probe", timedelta(seconds=1)) is None
