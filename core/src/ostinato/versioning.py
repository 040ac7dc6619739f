"""Orchestration versions: which instances a worker runs, and how versions compare.

An instance gets its version when it starts (``schedule_new_orchestration(..., version="2")``;
sub-orchestrations inherit their parent's unless the call sets one) and keeps it for its whole
life, ``continue_as_new`` included; code reads it as ``ctx.version``. A worker deployed with
:class:`VersioningOptions` runs only the instances whose version it accepts: the others go back
to the queue for another worker (``VersionFailure.REJECT``) or fail (``VersionFailure.FAIL``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ostinato.errors import OstinatoError


class VersionMatch(enum.Enum):
    """Which instance versions a worker accepts."""

    #: Every version (no filtering). The default.
    ANY = "any"
    #: Only the worker's own version.
    STRICT = "strict"
    #: The worker's version and older ones (unversioned instances count as oldest).
    CURRENT_OR_OLDER = "current_or_older"


class VersionFailure(enum.Enum):
    """What a worker does with an instance whose version it does not accept."""

    #: Give the work back to the queue (after a short delay) for a worker that accepts it.
    REJECT = "reject"
    #: Fail the instance with a ``VersionMismatchError``.
    FAIL = "fail"


class VersionMismatchError(OstinatoError):
    """An instance's version is not one this worker accepts."""


@dataclass(frozen=True)
class VersioningOptions:
    """A worker's versioning: its ``version``, which instances it accepts (``match``), what it
    does with the others (``on_mismatch``), and ``default_version``, the version given to
    sub-orchestrations started without one by instances that have none."""

    version: str | None = None
    match: VersionMatch = VersionMatch.ANY
    on_mismatch: VersionFailure = VersionFailure.REJECT
    default_version: str | None = None

    def __post_init__(self) -> None:
        if self.match is not VersionMatch.ANY and not self.version:
            raise ValueError(f"VersionMatch.{self.match.name} needs the worker's version")

    def accepts(self, instance_version: str | None) -> bool:
        """True if this worker runs instances of ``instance_version``."""
        if self.match is VersionMatch.ANY:
            return True
        assert self.version is not None
        if self.match is VersionMatch.STRICT:
            return instance_version == self.version
        return instance_version is None or compare_versions(instance_version, self.version) <= 0

    def mismatch(self, instance_id: str, instance_version: str | None) -> VersionMismatchError:
        """The error for an instance this worker does not accept."""
        rule = "equal to" if self.match is VersionMatch.STRICT else "at most"
        return VersionMismatchError(
            f"Orchestration '{instance_id}' has version {instance_version!r}; this worker runs "
            f"versions {rule} {self.version!r}"
        )


_PART = re.compile(r"(\d+)|(\D+)")


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``.

    Dotted parts compare numerically where both are numbers (``"1.10" > "1.9"``), as text
    otherwise; a version that is a prefix of another is older (``"1.2" < "1.2.1"``).
    """
    key_a, key_b = _key(a), _key(b)
    return (key_a > key_b) - (key_a < key_b)


def _key(version: str) -> list[tuple[int, int, str]]:
    key: list[tuple[int, int, str]] = []
    for part in version.split("."):
        for number, text in _PART.findall(part):
            key.append((0, int(number), "") if number else (1, 0, text))
    return key


__all__ = [
    "VersionFailure",
    "VersionMatch",
    "VersionMismatchError",
    "VersioningOptions",
    "compare_versions",
]
