"""Capability requirements: which guarantees a test needs beyond the common contract.

Tests declare what they need with :func:`requires` (like SQLAlchemy's ``__requires__``); the
suite checks each requirement against the provider's :class:`~ostinato.ProviderCapabilities`
and skips the test with a reason naming the capability when the provider does not claim it::

    @requires("lock_expiry")
    def test_expired_lock_messages_come_back(self, provider): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from ostinato.provider import ProviderCapabilities

#: The marker :func:`requires` sets (registered by the plugin).
MARKER = "ostinato_requires"


@dataclass(frozen=True)
class Requirement:
    """A named capability a test may need, and how to read it off the capabilities."""

    name: str
    description: str
    check: Callable[[ProviderCapabilities], bool]

    def reason(self, capabilities: ProviderCapabilities) -> str | None:
        """``None`` if ``capabilities`` meet the requirement, else the skip reason."""
        if self.check(capabilities):
            return None
        return (
            f"provider does not claim capability '{self.name}' ({self.description}); "
            f"see ProviderCapabilities.{self.name}"
        )


REQUIREMENTS: dict[str, Requirement] = {
    r.name: r
    for r in (
        Requirement(
            "lock_expiry",
            "locks expire after their timeout and the work is handed out again",
            lambda c: c.lock_expiry,
        ),
        Requirement(
            "transactional_checkpoints",
            "a checkpoint is applied all-or-nothing",
            lambda c: c.transactional_checkpoints,
        ),
        Requirement(
            "multi_process",
            "several processes may share one task hub",
            lambda c: c.multi_process,
        ),
        Requirement(
            "eager_steps",
            "complete_activities_and_steps applies a step that still stands in place of its result",
            lambda c: c.eager_steps,
        ),
    )
}


def requires(*names: str) -> pytest.MarkDecorator:
    """Mark a test as needing the named capabilities (keys of :data:`REQUIREMENTS`)."""
    unknown = [n for n in names if n not in REQUIREMENTS]
    if unknown:
        raise ValueError(
            f"Unknown capability requirement(s) {unknown}; known: {sorted(REQUIREMENTS)}"
        )
    mark: pytest.MarkDecorator = getattr(pytest.mark, MARKER)(*names)
    return mark


def skip_reason(names: tuple[str, ...], capabilities: ProviderCapabilities) -> str | None:
    """The reason to skip a test needing ``names`` on a provider with ``capabilities``."""
    reasons = [r for n in names if (r := REQUIREMENTS[n].reason(capabilities)) is not None]
    return "; ".join(reasons) if reasons else None


def payload_skip_reason(size: int, capabilities: ProviderCapabilities) -> str | None:
    """The reason to skip a payload of ``size`` bytes, if above ``max_payload_bytes``."""
    limit = capabilities.max_payload_bytes
    if limit is not None and size > limit:
        return (
            f"provider stores payloads of at most {limit} bytes "
            f"(ProviderCapabilities.max_payload_bytes); this test needs {size}"
        )
    return None
