"""Hypothesis state machines driving the provider contract (filled in below)."""

from __future__ import annotations

from ostinato_conformance.base import ConformanceTestBase


class ProviderStateMachineTests(ConformanceTestBase):
    """Random interleavings of clients and workers checked against a reference model."""
