"""How instance ids travel through table keys and queue messages.

Every id the client accepts must round-trip (DESIGN §2). Two things in Azure Storage cannot
carry some of them as they are:

* **Table keys**: a ``%`` in a partition or row key breaks point operations and batch deletes
  (the key is URL-decoded once too often). Keys escape it as ``~p`` and the escape character
  itself as ``~~``; every other character is kept, so an id's prefix is its key's prefix and
  ids without ``%`` or ``~`` sort as their keys do.
* **Queue messages** are XML text, which cannot hold U+FFFE or U+FFFF (the Unicode
  noncharacters XML excludes). And Azurite, the emulator users test against, decodes a
  request body one network read at a time, so a multi-byte UTF-8 character split between two
  reads comes back as U+FFFD. So a message's JSON text is sent as ASCII: every other
  character is spelled as a ``\\uXXXX`` escape (a surrogate pair above U+FFFF), which any
  JSON parser reads back. ASCII text costs nothing; other text grows up to sixfold and goes to
  a blob sooner.
"""

from __future__ import annotations

import re

_ESCAPE = "~"


def table_key(instance_id: str) -> str:
    """The partition key that stores ``instance_id``."""
    if "~" not in instance_id and "%" not in instance_id:
        return instance_id
    return instance_id.replace("~", "~~").replace("%", "~p")


def instance_id_of(key: str) -> str:
    """The instance id :func:`table_key` turned into ``key``."""
    if _ESCAPE not in key:
        return key
    out: list[str] = []
    chars = iter(key)
    for ch in chars:
        if ch != _ESCAPE:
            out.append(ch)
            continue
        code = next(chars, "")
        if code == "~":
            out.append("~")
        elif code == "p":
            out.append("%")
        else:
            raise ValueError(f"Invalid escape in table key {key!r}")
    return "".join(out)


def utf16_order(key: str) -> bytes:
    """The order in which the table service sorts keys (UTF-16 code units)."""
    return key.encode("utf-16-be", "surrogatepass")


def key_upper_bound(prefix: str) -> str | None:
    """A key above every key that starts with ``prefix`` in UTF-16 order (``None``: no bound).

    It may admit a few keys without the prefix (callers filter); it never leaves one out.
    """
    data = utf16_order(prefix)
    units = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    while units:
        unit = units.pop()
        if 0xDC00 <= unit <= 0xDFFF:  # the low half of a pair: the next character up
            high = units.pop()
            if unit < 0xDFFF:
                units += [high, unit + 1]
                break
            if high < 0xDBFF:
                units += [high + 1, 0xDC00]
                break
            continue  # U+10FFFF: carry
        if unit == 0xFFFF:
            continue  # the largest unit: carry
        # (U+D7FF goes to U+E000: a bound above the surrogates, admitting a few keys more.)
        units.append(0xE000 if unit == 0xD7FF else unit + 1)
        break
    if not units:
        return None
    raw = b"".join(u.to_bytes(2, "big") for u in units)
    return raw.decode("utf-16-be", "surrogatepass")


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: no Unicode text, as UTF-8 refuses it too
        raise UnicodeEncodeError(
            "utf-8", match.string, match.start(), match.end(), "surrogates not allowed"
        )
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def queue_text(text: str) -> str:
    """JSON text as the ASCII a queue message carries intact (see the module docstring).

    Raises ``UnicodeEncodeError`` for a lone surrogate, as sending it as UTF-8 would.
    """
    if text.isascii():
        return text
    return _NON_ASCII.sub(_json_escape, text)
