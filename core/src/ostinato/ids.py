"""The instance-id rules, checked once, in the client, for every provider."""

from __future__ import annotations

import itertools
import os
import time
import unicodedata

from ostinato.errors import InvalidInstanceIdError

MAX_INSTANCE_ID_LENGTH = 100
FORBIDDEN_CHARACTERS = frozenset("/\\#?")


def validate_instance_id(instance_id: object) -> str:
    """Return ``instance_id`` if it obeys the rules, else raise ``InvalidInstanceIdError``.

    The rules: a ``str`` of 1-100 characters, not starting with ``@``, containing none of
    ``/ \\ # ?``, no control characters and no lone surrogates (text that was not UTF-8).
    """
    if not isinstance(instance_id, str):
        raise InvalidInstanceIdError(f"Instance id must be a str, not {type(instance_id).__name__}")
    if not instance_id:
        raise InvalidInstanceIdError("Instance id must not be empty")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceIdError(
            f"Instance id is {len(instance_id)} characters long; "
            f"the limit is {MAX_INSTANCE_ID_LENGTH}"
        )
    if instance_id.startswith("@"):
        raise InvalidInstanceIdError(
            f"Instance id {instance_id!r} must not start with '@' (reserved for entities)"
        )
    # Printable ASCII has no control character and no surrogate: only the forbidden
    # characters are left to look for, without a look-up per character.
    if (
        instance_id.isascii()
        and instance_id.isprintable()
        and FORBIDDEN_CHARACTERS.isdisjoint(instance_id)
    ):
        return instance_id
    for ch in instance_id:
        if ch in FORBIDDEN_CHARACTERS:
            raise InvalidInstanceIdError(
                f"Instance id {instance_id!r} contains {ch!r}; '/', '\\', '#' and '?' "
                "are not allowed"
            )
        category = unicodedata.category(ch)
        if category == "Cc":
            raise InvalidInstanceIdError(
                f"Instance id {instance_id!r} contains the control character U+{ord(ch):04X}"
            )
        if category == "Cs":
            raise InvalidInstanceIdError(
                f"Instance id {instance_id!r} contains U+{ord(ch):04X}, a lone surrogate"
                " (not a Unicode character: text that was not valid UTF-8?)"
            )
    return instance_id


class _UniqueIds:
    """32-hex-digit ids unique across processes: a random 64-bit prefix drawn once per
    process (again in a forked child), then a 64-bit counter. No system call per id."""

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


#: A new id of 32 hex digits (the length of a UUID's hex form): message ids, lock tokens,
#: execution ids. Unique, not secret: the prefix is random, the rest counts up.
unique_id = _UniqueIds()


def new_instance_id() -> str:
    """A fresh random instance id: a UUID version 7 in hex form (RFC 9562).

    48 bits of Unix time in milliseconds, then 74 random bits: unique like a UUID4, but ids
    made close together in time sort close together, so a store's index pages for instances
    started together are shared instead of scattered (fewer pages written per commit).
    """
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant 10 (RFC 9562)
    return f"{value:032x}"  # the UUID's hex form: 32 lowercase hex digits


__all__ = [
    "FORBIDDEN_CHARACTERS",
    "MAX_INSTANCE_ID_LENGTH",
    "new_instance_id",
    "unique_id",
    "validate_instance_id",
]
