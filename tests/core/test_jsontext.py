"""compact_encoder gives exactly what json.JSONEncoder(...).encode gives, errors included."""

from __future__ import annotations

import json
import json.encoder
from typing import Any

import pytest
from ostinato.jsontext import compact_encoder

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


@pytest.mark.parametrize("allow_nan", [True, False])
@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_same_text_and_errors_as_json_encoder(value: Any, allow_nan: bool) -> None:
    reference = json.JSONEncoder(ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"))
    assert outcome(compact_encoder(allow_nan=allow_nan), value) == outcome(reference.encode, value)


def test_an_error_leaves_the_next_call_unaffected() -> None:
    encode = compact_encoder(allow_nan=False)
    shared = [1]
    with pytest.raises(ValueError):
        encode([shared, float("nan")])
    assert encode([shared, shared]) == "[[1],[1]]"


def test_without_the_c_accelerator_it_is_json_encoder_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = compact_encoder(allow_nan=False)
    assert encode({"a": [1, "ü"]}) == '{"a":[1,"ü"]}'
    with pytest.raises(ValueError):
        encode(float("nan"))
