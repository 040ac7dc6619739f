"""Compact JSON text (non-ASCII kept as is), the form ostinato stores payloads and events in.

:func:`compact_encoder` gives a function with exactly the output and errors of
``json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=...).encode``, made
cheaper per call: ``JSONEncoder.encode`` sets up its C encoder anew on every call through
``iterencode``; this function sets it up with one call to the C constructor, with the options
fixed once. Without the C accelerator (another Python implementation) it is ``encode`` itself.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["compact_encoder"]


def compact_encoder(*, allow_nan: bool) -> Callable[[Any], str]:
    """A function giving ``value`` as compact JSON text, non-ASCII kept as is.

    ``allow_nan=False`` refuses NaN and infinities with ``ValueError``, as ``json`` does.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"))
    # ``json.encoder``'s own handle on the C constructor (``None`` without the accelerator).
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return encoder.encode
    default = encoder.default
    encode_string = json.encoder.encode_basestring

    def encode(value: Any) -> str:
        if type(value) is str:
            return encode_string(value)
        # The arguments ``iterencode`` passes: a fresh ``markers`` dict (the circular-reference
        # check), default, string encoder, indent, key and item separators, sort_keys, skipkeys.
        chunks = make_encoder({}, default, encode_string, None, ":", ",", False, False, allow_nan)
        return "".join(chunks(value, 0))

    return encode
