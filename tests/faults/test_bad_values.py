"""Bad values fail their task, never loop: lone surrogates are refused by the data converter
and the instance-id rules, and a value the store itself cannot encode fails that task or step
with ``SerializationError`` (the activity is not run again)."""

from __future__ import annotations

import json
import threading
from typing import Any

import ostinato as ot
import pytest
from ostinato.ids import validate_instance_id

from .conftest import WorkerFactory

BAD = "caf\udce9"  # what os.fsdecode(b"caf\xe9") gives


def test_converter_refuses_lone_surrogates_naming_where() -> None:
    converter = ot.JsonDataConverter()
    with pytest.raises(ot.SerializationError, match=r"\$\.files\[1\].*lone surrogate U\+DCE9"):
        converter.dumps({"files": ["ok", BAD]})
    with pytest.raises(ot.SerializationError, match="lone surrogate"):
        converter.dumps({BAD: 1})
    assert converter.dumps(["café", "日本"]) == '["café","日本"]'


def test_instance_ids_with_lone_surrogates_are_refused() -> None:
    with pytest.raises(ot.InvalidInstanceIdError, match="U\\+DCE9, a lone surrogate"):
        validate_instance_id(BAD)


class _Lenient(ot.JsonDataConverter):
    """A converter that lets lone surrogates through, as a user's own converter might."""

    def dumps(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)


def _app(runs: list[str]) -> ot.App:
    app = ot.App()
    lock = threading.Lock()

    @app.activity
    def bad_result(ctx: ot.ActivityContext, _: Any) -> str:
        with lock:
            runs.append("bad_result")
        return BAD

    @app.activity
    def bad_error(ctx: ot.ActivityContext, _: Any) -> None:
        raise FileNotFoundError(f"No such file: {BAD!s}")

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, name: str) -> Any:
        try:
            return (yield ctx.call_activity(name))
        except ot.TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message]

    @app.orchestrator
    def bad_output(ctx: ot.OrchestrationContext, _: Any) -> str:
        return BAD

    @app.orchestrator
    def bad_status(ctx: ot.OrchestrationContext, _: Any) -> Any:
        ctx.set_custom_status({"file": BAD})
        yield ctx.create_timer(ctx.current_utc_datetime)
        return "unreachable"

    return app


@pytest.mark.parametrize("lenient", [False, True], ids=["converter", "store"])
def test_lone_surrogates_fail_only_their_task(
    client: ot.Client, worker: WorkerFactory, lenient: bool
) -> None:
    """``converter``: the data converter refuses the value; ``store``: a lenient converter
    lets it through and the store's driver refuses it at commit."""
    runs: list[str] = []
    options: dict[str, Any] = {"converter": _Lenient()} if lenient else {}
    with worker(_app(runs), **options):
        result = client.schedule_new_orchestration("calls", input="bad_result")
        error = client.schedule_new_orchestration("calls", input="bad_error")
        output = client.schedule_new_orchestration("bad_output")
        status = client.schedule_new_orchestration("bad_status")
        state = client.wait_for_orchestration_completion(result, timeout=30)
        error_type, message = json.loads(state.serialized_output or "null")
        assert error_type == "SerializationError"
        assert "stor" in message or "serialize" in message
        assert runs == ["bad_result"]  # failed, never run again
        state = client.wait_for_orchestration_completion(error, timeout=30)
        assert json.loads(state.serialized_output or "null") == [
            "FileNotFoundError",
            "No such file: caf\\udce9",
        ]
        for instance_id in (output, status):
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state.runtime_status is ot.OrchestrationStatus.FAILED, instance_id
            assert state.failure_details is not None
            assert state.failure_details.error_type == "SerializationError"
        # The worker goes on.
        assert (
            client.wait_for_orchestration_completion(
                client.schedule_new_orchestration("calls", input="bad_error"), timeout=30
            ).runtime_status
            is ot.OrchestrationStatus.COMPLETED
        )
