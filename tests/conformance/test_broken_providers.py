"""The suite has teeth: every deliberately broken provider fails at least one test.

Runs the fast contract tests against each variant of ``broken_providers.py`` (in
subprocesses, see ``kill_matrix.py``); the full report is docs/conformance-kill-matrix-memory.md.
"""

from __future__ import annotations

import pytest
from broken_providers import VARIANTS
from kill_matrix import run_matrix


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_broken_provider_fails_the_suite() -> None:
    results = run_matrix()
    assert set(results) == set(VARIANTS)
    survivors = {name: r.guarantee for name, r in results.items() if not r.killed}
    assert not survivors, f"broken providers that pass the whole suite: {survivors}"
    for result in results.values():
        assert result.passed > 0, f"{result.name}: nothing passed; the run itself is broken"
