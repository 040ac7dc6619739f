"""compact_encoder gives exactly what json.JSONEncoder(...).encode gives, errors included."""

from __future__ import annotations

import json
import json.encoder
from typing import Any

import pytest
from ostinato.jsontext import compact_encoder, parse

CIRCULAR: list[Any] = []
CIRCULAR.append(CIRCULAR)

VALUES: list[Any] = [
    "plain",
    'ünïcode "quoted"\n\t\x00',
    "",
    0,
    -12,
    1.5,
    1e300,
    True,
    None,
    [],
    {},
    [1, "a", None, [2.25, {"k": False}]],
    {"é": {"nested": [1, 2, 3]}, "b": (4, 5)},
    {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
    float("nan"),
    [float("inf")],
    {"x": float("-inf")},
    [object()],
    {(1, 2): "tuple key"},
    CIRCULAR,
    [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],
]


def outcome(encode: Any, value: Any) -> tuple[str, str]:
    try:
        return ("text", encode(value))
    except (TypeError, ValueError) as exc:
        return (type(exc).__name__, str(exc))
    except RecursionError as exc:  # a circular value, not checked for
        return (type(exc).__name__, str(exc).split(" while ")[0])


@pytest.mark.parametrize("check_circular", [True, False])
@pytest.mark.parametrize("allow_nan", [True, False])
@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_same_text_and_errors_as_json_encoder(
    value: Any, allow_nan: bool, check_circular: bool
) -> None:
    reference = json.JSONEncoder(
        ensure_ascii=False,
        allow_nan=allow_nan,
        check_circular=check_circular,
        separators=(",", ":"),
    )
    encode = compact_encoder(allow_nan=allow_nan, check_circular=check_circular)
    assert outcome(encode, value) == outcome(reference.encode, value)


@pytest.mark.parametrize("check_circular", [True, False])
def test_an_error_leaves_the_next_call_unaffected(check_circular: bool) -> None:
    encode = compact_encoder(allow_nan=False, check_circular=check_circular)
    shared = [1]
    with pytest.raises(ValueError):
        encode([shared, float("nan")])
    assert encode([shared, shared]) == "[[1],[1]]"
    with pytest.raises(TypeError):
        encode({"a": [shared, object()]})
    assert encode({"a": [shared, shared]}) == '{"a":[[1],[1]]}'


def test_without_the_c_accelerator_it_is_json_encoder_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = compact_encoder(allow_nan=False)
    assert encode({"a": [1, "ü"]}) == '{"a":[1,"ü"]}'
    with pytest.raises(ValueError):
        encode(float("nan"))


TEXTS: list[Any] = [
    '"plain"',
    '{"a":[1,2.5,null,true,false],"é":"\\u00e9\\n"}',
    "[]",
    "0",
    "-1.5e3",
    "NaN",
    " [1] ",
    "[1]\n",
    "\n{}",
    "\ufeff[1]",
    "",
    "   ",
    "[1] [2]",
    "[1,]",
    '{"a":1',
    '"\\ud800"',
    '"\\x"',
    "nul",
    b'{"bytes":1}',
    "[" * 100 + "]" * 100,
]


def parsed(value: Any) -> tuple[str, Any]:
    try:
        return ("value", parse(value))
    except json.JSONDecodeError as exc:
        return ("error", (exc.msg, exc.pos))


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_parse_gives_what_json_loads_gives(text: Any) -> None:
    try:
        expected: tuple[str, Any] = ("value", json.loads(text))
    except json.JSONDecodeError as exc:
        expected = ("error", (exc.msg, exc.pos))
    assert parsed(text) == expected
