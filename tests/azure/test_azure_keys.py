"""Instance ids as table keys and in queue messages (pure functions, no Azurite needed)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ostinato_azure._keys import (
    instance_id_of,
    key_upper_bound,
    queue_text,
    table_key,
    utf16_order,
)

#: Characters that stress the encoding: its escapes, noncharacters, surrogate neighbours.
TRICKY = st.sampled_from(["~", "%", "p", "'", "\ufffe", "\uffff", "\U0010ffff", "\ud7ff", "\ue000"])
#: Any character an id may hold (the client refuses lone surrogates).
CHARS = st.characters(exclude_categories=["Cs"]) | TRICKY
IDS = st.text(CHARS, min_size=1, max_size=20)


@given(IDS)
def test_keys_round_trip_and_carry_no_percent(instance_id: str) -> None:
    key = table_key(instance_id)
    assert instance_id_of(key) == instance_id
    assert "%" not in key


@given(IDS, st.text(CHARS, max_size=5))
def test_prefix_of_an_id_bounds_the_keys_of_its_extensions(prefix: str, rest: str) -> None:
    key, lower = table_key(prefix + rest), table_key(prefix)
    assert key.startswith(lower)
    upper = key_upper_bound(lower)
    if upper is not None:
        upper.encode("utf-8")  # sendable: no half surrogate pair
        assert utf16_order(lower) <= utf16_order(key) < utf16_order(upper)


@given(st.text(CHARS))
def test_queue_text_is_ascii_and_reads_back(value: str) -> None:
    # ASCII: Azurite turns a multi-byte character split between two network reads into U+FFFD.
    text = queue_text(json.dumps({"v": value}, ensure_ascii=False))
    assert text.isascii()
    assert json.loads(text) == {"v": value}


def test_queue_text_refuses_a_lone_surrogate_as_utf8_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        queue_text(json.dumps({"v": "caf\udce9"}, ensure_ascii=False))
