"""Generated orchestration programs run end to end (filled in below)."""

from __future__ import annotations

from ostinato_conformance.base import ConformanceTestBase


class OrchestrationProgramTests(ConformanceTestBase):
    """Generated programs, run by a real worker, compared with a pure interpreter."""
