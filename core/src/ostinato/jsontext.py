"""Compact JSON text (non-ASCII kept as is), the form ostinato stores payloads and events in.

:func:`parse` reads JSON text back: ``json.loads`` with the same results and errors, reading
text that is exactly one JSON value (as :func:`compact_encoder` writes it) with one call to
``json``'s scanner, and any other text through ``json.loads`` itself.

:func:`compact_encoder` gives a function with exactly the output and errors of
``json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=...,
check_circular=...).encode``, made cheaper per call: ``JSONEncoder.encode`` sets up its C
encoder anew on every call through ``iterencode``; this function sets it up with one call to
the C constructor, with the options fixed once, and without the circular-reference check
sets it up once for all calls (the check's record of the containers being encoded is the
only state a call leaves in it). Without the C accelerator (another Python implementation)
it is ``encode`` itself.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["compact_encoder", "parse"]

#: The scanner of ``json.loads``'s default decoder: one JSON value from a position in a text,
#: and where it ends (``StopIteration`` when none starts there).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def compact_encoder(*, allow_nan: bool, check_circular: bool = True) -> Callable[[Any], str]:
    """A function giving ``value`` as compact JSON text, non-ASCII kept as is.

    ``allow_nan=False`` refuses NaN and infinities with ``ValueError``, as ``json`` does.
    ``check_circular=False`` is for values that cannot contain themselves (data built afresh
    by the caller): one that does then raises ``RecursionError``, not ``ValueError``.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        allow_nan=allow_nan,
        check_circular=check_circular,
        separators=(",", ":"),
    )
    # ``json.encoder``'s own handle on the C constructor (``None`` without the accelerator).
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return encoder.encode
    encode_string = json.encoder.encode_basestring
    # What ``iterencode`` passes after ``markers`` (the circular-reference check's record, or
    # ``None``): default, string encoder, indent, key and item separators, sort_keys,
    # skipkeys, allow_nan.
    options = (encoder.default, encode_string, None, ":", ",", False, False, allow_nan)

    if not check_circular:
        chunks = make_encoder(None, *options)

        def encode_unchecked(value: Any) -> str:
            if type(value) is str:
                return encode_string(value)
            return "".join(chunks(value, 0))

        return encode_unchecked

    def encode(value: Any) -> str:
        if type(value) is str:
            return encode_string(value)
        # A fresh record each call: an error leaves the one it used dirty.
        return "".join(make_encoder({}, *options)(value, 0))

    return encode


def parse(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same ``JSONDecodeError``."""
    if type(text) is str:
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:
            pass  # no value at the start (whitespace, a byte order mark, bad text)
        else:
            if end == len(text):
                return value
    return json.loads(text)  # anything else: json.loads's own checks and errors
