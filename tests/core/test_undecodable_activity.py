"""An activity task whose input cannot be decoded at all is moved to the dead letters and
fails its instance (sync and ``async def`` activities alike); other work goes on."""

from __future__ import annotations

from typing import Any

import ostinato as ot
import pytest
from ostinato.converter import JsonDataConverter
from ostinato.provider import ActivityTask

from .conftest import WorkerFactory

CORRUPT = '"corrupt"'


class _CorruptingConverter(JsonDataConverter):
    """Reads the stored text ``"corrupt"`` as a store would read a damaged record: not at all."""

    def loads(self, data: str | None, type_hint: Any = None) -> Any:
        if data == CORRUPT:
            raise ot.SerializationError("Payload is not valid JSON: damaged")
        return super().loads(data, type_hint)


def _app() -> ot.App:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: Any) -> Any:
        return value

    @app.activity
    async def echo_async(ctx: ot.ActivityContext, value: Any) -> Any:
        return value

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, args: list[str]) -> Any:
        name, value = args
        try:
            return (yield ctx.call_activity(name, input=value))
        except ot.TaskFailedError:
            return "caught"

    return app


@pytest.mark.parametrize("activity", ["echo", "echo_async"])
def test_an_undecodable_task_is_dead_lettered_and_fails_its_instance(
    activity: str, client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(_app(), converter=_CorruptingConverter()):
        victim = client.schedule_new_orchestration("calls", input=[activity, "corrupt"])
        bystander = client.schedule_new_orchestration("calls", input=[activity, "fine"])
        state = client.wait_for_orchestration_completion(victim, timeout=20)
        assert client.wait_for_orchestration_completion(bystander, timeout=20).output == "fine"
    assert state.runtime_status is ot.OrchestrationStatus.FAILED  # not caught by its code
    assert state.failure_details is not None
    assert f"activity {activity!r}" in state.failure_details.message
    assert "damaged" in state.failure_details.message
    (letter,) = client.list_dead_letters()
    assert letter.kind is ot.DeadLetterKind.ACTIVITY_TASK and letter.instance_id == victim
    assert ActivityTask.from_json(letter.body).input == CORRUPT
