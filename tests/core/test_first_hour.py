"""Bad input at the client's door: rejected at the call, with a clear error, nothing stored."""

from __future__ import annotations

from typing import Any

import ostinato as ot
import pytest
from ostinato.converter import default_converter


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("policy", ["replace_any", 3, True])
def test_reuse_id_policy_is_checked_at_the_call(policy: Any) -> None:
    client = ot.Client(ot.InMemoryProvider())
    with pytest.raises(TypeError, match="reuse_id_policy must be one of ReuseIdPolicy"):
        client.schedule_new_orchestration("job", instance_id="first", reuse_id_policy=policy)
    assert client.get_orchestration_state("first") is None
    client.schedule_new_orchestration("job", instance_id="second")
    with pytest.raises(TypeError, match="reuse_id_policy"):  # also when the id exists
        client.schedule_new_orchestration("job", instance_id="second", reuse_id_policy=policy)


def test_a_reuse_id_policy_given_by_value_names_the_member() -> None:
    client = ot.Client(ot.InMemoryProvider())
    with pytest.raises(TypeError, match=r"use ot\.ReuseIdPolicy\.REPLACE_ANY"):
        client.schedule_new_orchestration("job", reuse_id_policy="replace_any")  # type: ignore[arg-type]


def test_a_payload_nested_too_deeply_is_a_serialization_error() -> None:
    client = ot.Client(ot.InMemoryProvider())
    with pytest.raises(ot.SerializationError, match="nested too deeply"):
        client.schedule_new_orchestration("job", input=nested(100_000), instance_id="deep")
    assert client.get_orchestration_state("deep") is None
    with pytest.raises(ot.SerializationError, match="nested too deeply"):
        default_converter.loads("[" * 100_000 + "]" * 100_000)
    assert default_converter.loads(default_converter.dumps(nested(100))) == nested(100)


def test_an_instance_id_with_a_lone_surrogate_is_invalid() -> None:
    client = ot.Client(ot.InMemoryProvider())
    with pytest.raises(ot.InvalidInstanceIdError, match="U\\+DCFF, a lone surrogate"):
        client.schedule_new_orchestration("job", instance_id="job-\udcff")
