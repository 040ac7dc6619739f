"""ostinato.frozen: the fast __init__ of frozen dataclasses keeps everything of the one it
replaced (signature, defaults, values, frozenness, equality, hashing, replace, pickling)."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import pickle
from datetime import UTC, datetime
from typing import Any

import ostinato  # noqa: F401 - imports every module whose classes get a fast __init__
import pytest
from ostinato.frozen import fast_init


def _fast_classes() -> list[type[Any]]:
    """Every class given a fast __init__ in the modules imported so far."""
    found = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, type)
        and getattr(obj.__dict__.get("__init__"), "dataclass_init", None) is not None
    ]
    return sorted(found, key=lambda c: c.__qualname__)


FAST = _fast_classes()


def test_the_hot_classes_have_a_fast_init() -> None:
    names = {cls.__qualname__ for cls in FAST}
    assert {
        "InstanceRecord",
        "OrchestrationMessage",
        "ActivityTask",
        "ResultStep",
        "OrchestrationState",
        "NewOrchestration",
        "ExecutionStarted",
        "TaskScheduled",
        "TaskCompleted",
        "OrchestratorStarted",
        "OrchestratorCompleted",
        "ExecutionCompleted",
    } <= names


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__qualname__)
def test_signature_is_the_dataclass_one(cls: type[Any]) -> None:
    fast = inspect.signature(cls.__init__)
    original = inspect.signature(cls.__init__.dataclass_init)
    assert list(fast.parameters) == list(original.parameters)
    for name, parameter in fast.parameters.items():
        before = original.parameters[name]
        assert (parameter.kind, parameter.annotation) == (before.kind, before.annotation), name
        assert repr(parameter.default) == repr(before.default), name
        if parameter.default is not inspect.Parameter.empty and repr(before.default) != (
            "<factory>"
        ):
            assert parameter.default is before.default, name


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__qualname__)
def test_an_instance_built_by_either_init_is_the_same(cls: type[Any]) -> None:
    arguments = _arguments(cls)
    fast = cls(**arguments)
    original = object.__new__(cls)
    cls.__init__.dataclass_init(original, **arguments)
    assert vars(fast) == vars(original)
    assert fast == original
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, dataclasses.fields(cls)[0].name, None)
    assert pickle.loads(pickle.dumps(fast)) == fast
    if cls.__hash__ is not None:
        hashable = all(_hashable(v) for v in vars(fast).values())
        if hashable:
            assert hash(fast) == hash(original)


def test_defaults_and_factories_apply_per_instance() -> None:
    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Sample:
        name: str
        size: int = 3
        items: list[int] = dataclasses.field(default_factory=list)
        stamp: datetime = dataclasses.field(default=datetime(2026, 1, 1, tzinfo=UTC))

    first, second = Sample("a"), Sample("b", 4, [1])
    assert (first.size, first.items, first.stamp.year) == (3, [], 2026)
    assert (second.size, second.items) == (4, [1])
    assert Sample("c").items is not first.items  # a fresh list each time
    assert dataclasses.replace(second, name="c") == Sample("c", 4, [1])
    with pytest.raises(TypeError):
        Sample()  # type: ignore[call-arg]


def test_post_init_still_runs() -> None:
    seen = []

    @fast_init
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            seen.append(self.value)
            if self.value < 0:
                raise ValueError("negative")

    Checked(value=1)
    with pytest.raises(ValueError, match="negative"):
        Checked(value=-1)
    assert seen == [1, -1]


def test_only_frozen_dataclasses_without_slots() -> None:
    @dataclasses.dataclass
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    class Plain:
        pass

    for cls in (Mutable, Slotted, Plain):
        with pytest.raises(TypeError, match="frozen dataclass without slots"):
            fast_init(cls)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _arguments(cls: type[Any]) -> dict[str, Any]:
    """A value for every field, distinct from its default where there is one."""
    values: dict[str, Any] = {}
    for index, field in enumerate(dataclasses.fields(cls)):
        values[field.name] = f"value-{index}"
    return values
