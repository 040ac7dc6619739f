"""The data converter's rules and the instance-id rules."""

from __future__ import annotations

import enum
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import ostinato as ot
import pytest
from ostinato.converter import input_type_of, return_type_of
from ostinato.ids import new_instance_id, unique_id, validate_instance_id


class Color(enum.Enum):
    RED = "red"


@dataclass
class Inner:
    when: datetime
    tags: tuple[str, ...]


@dataclass
class Outer:
    name: str
    inner: Inner
    color: Color
    maybe: int | None = None


CONVERTER = ot.JsonDataConverter()


def test_plain_json_without_hints() -> None:
    text = CONVERTER.dumps({"a": (1, 2), "b": {3}, "c": None})
    assert CONVERTER.loads(text) == {"a": [1, 2], "b": [3], "c": None}
    assert CONVERTER.dumps(None) is None and CONVERTER.loads(None) is None
    assert CONVERTER.loads(CONVERTER.dumps("ünïcode ✓")) == "ünïcode ✓"


def test_dataclasses_datetimes_enums_rebuilt_by_hint() -> None:
    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    value = Outer("x", Inner(when, ("a", "b")), Color.RED)
    text = CONVERTER.dumps(value)
    assert CONVERTER.loads(text) == {
        "name": "x",
        "inner": {"when": when.isoformat(), "tags": ["a", "b"]},
        "color": "red",
        "maybe": None,
    }
    assert CONVERTER.loads(text, Outer) == value
    assert CONVERTER.loads(CONVERTER.dumps((1, "a")), tuple[int, str]) == (1, "a")
    assert CONVERTER.loads(CONVERTER.dumps([value]), list[Outer]) == [value]
    assert CONVERTER.loads(CONVERTER.dumps(date(2026, 1, 2)), date) == date(2026, 1, 2)
    u = uuid.uuid4()
    assert CONVERTER.loads(CONVERTER.dumps(u), uuid.UUID) == u
    assert CONVERTER.loads(CONVERTER.dumps(Decimal("1.10")), Decimal) == Decimal("1.10")
    assert CONVERTER.loads(CONVERTER.dumps(b"\x00\xff"), bytes) == b"\x00\xff"


def test_unserializable_values_raise_clear_errors() -> None:
    with pytest.raises(ot.SerializationError, match=r"type object at \$\.k\[1\]"):
        CONVERTER.dumps({"k": [1, object()]})
    with pytest.raises(ot.SerializationError, match="keys must be str"):
        CONVERTER.dumps({1: "x"})
    with pytest.raises(ot.SerializationError, match="not a finite number"):
        CONVERTER.dumps(float("nan"))
    with pytest.raises(ot.SerializationError, match="as int"):
        CONVERTER.loads('"text"', int)
    with pytest.raises(ot.SerializationError, match="not valid JSON"):
        CONVERTER.loads("{broken")


def test_registered_encoders_and_decoders_for_user_types() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

    converter = ot.JsonDataConverter(
        encoders={Money: lambda m: {"cents": m.cents}},
        decoders={Money: lambda d: Money(d["cents"])},
    )
    back = converter.loads(converter.dumps(Money(250)), Money)
    assert isinstance(back, Money) and back.cents == 250


def test_type_hints_are_read_from_functions() -> None:
    def activity(ctx: Any, value: tuple[int, int]) -> list[Outer]:
        return []

    assert input_type_of(activity) == tuple[int, int]
    assert return_type_of(activity) == list[Outer]
    assert input_type_of(lambda ctx: None) is None


def test_unserializable_client_input_raises_and_schedules_nothing() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    with pytest.raises(ot.SerializationError):
        client.schedule_new_orchestration("x", input={"bad": object()}, instance_id="never")
    assert client.get_orchestration_state("never") is None
    assert (
        provider.lock_next_orchestration_work_item("w", __import__("datetime").timedelta(1)) is None
    )


@pytest.mark.parametrize(
    "instance_id",
    [
        "a",
        "x" * 100,
        "with space",
        "ünïcödé-✓-日本",
        "a:b|c.d",
        "emoji-🎉",
        "@in-the-middle-ok"[1:],
    ],
)
def test_valid_instance_ids(instance_id: str) -> None:
    assert validate_instance_id(instance_id) == instance_id


@pytest.mark.parametrize(
    ("instance_id", "rule"),
    [
        ("", "must not be empty"),
        ("x" * 101, "the limit is 100"),
        ("@entity", "must not start with '@'"),
        ("a/b", "'/'"),
        ("a\\b", "not allowed"),
        ("a#b", "not allowed"),
        ("a?b", "not allowed"),
        ("tab\there", "control character U+0009"),
        ("nul\x00", "control character U+0000"),
        ("del\x7fhere", "control character U+007F"),  # ASCII, yet not printable
        ("half\ud83c", "U+D83C, a lone surrogate"),
        (42, "must be a str"),
    ],
)
def test_invalid_instance_ids_name_the_rule(instance_id: Any, rule: str) -> None:
    with pytest.raises(ot.InvalidInstanceIdError, match=re.escape(rule)):
        validate_instance_id(instance_id)
    client = ot.Client(ot.InMemoryProvider())
    with pytest.raises(ot.InvalidInstanceIdError):
        client.schedule_new_orchestration("x", instance_id=instance_id)


def test_default_instance_ids_are_uuid7_unique_and_time_ordered() -> None:
    first = [new_instance_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_instance_id()
    assert len(set(first)) == 1000
    for value in first:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value  # the UUID's own hex form: 32 lowercase digits
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert validate_instance_id(value) == value
    # The first 48 bits are the creation time in milliseconds: a later id sorts after.
    assert all(value < later for value in first)
    millis = int(later[:12], 16)
    assert abs(millis - time.time() * 1000) < 60_000


def test_unique_ids_differ_across_threads_and_forked_processes() -> None:
    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [unique_id() for _ in range(2000)], range(8)))
    ids = [value for batch in batches for value in batch]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    # A forked child draws a new prefix: its ids never repeat the parent's.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, " ".join(unique_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    parent = [unique_id() for _ in range(100)]
    assert len(child) == 100 and not set(child) & set(parent) and not set(child) & set(ids)


class Name(str):
    """A str subclass: encoded through the general path, as a str."""


@pytest.mark.parametrize(
    "value", ["Tokyo", "", 'ünï "quoted"\n\t\x00\u2028', "😀", Name("Seattle"), ["Tokyo"]]
)
def test_a_str_payload_is_its_json_text(value: str) -> None:
    import json

    assert ot.JsonDataConverter().dumps(value) == json.dumps(
        value, ensure_ascii=False, separators=(",", ":")
    )


@pytest.mark.parametrize(("value", "where"), [("caf\udce9", "$"), (["ok", "caf\udce9"], "$[1]")])
def test_a_str_with_a_lone_surrogate_is_refused_naming_where(value: Any, where: str) -> None:
    with pytest.raises(ot.SerializationError) as caught:
        ot.JsonDataConverter().dumps(value)
    assert f"string at {where}: it contains the lone surrogate U+DCE9" in str(caught.value)
