"""The error the suite raises when a provider breaks the contract."""

from __future__ import annotations


class ConformanceViolation(AssertionError):
    """A provider broke a guarantee of the contract; the message says which and how."""
