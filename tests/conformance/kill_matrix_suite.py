"""The conformance suite against every broken variant (collected only when named explicitly).

``kill_matrix.py`` runs this module in subprocesses; ``OSTINATO_KILL_MATRIX_VARIANTS`` (comma
separated) limits the variants.
"""

from __future__ import annotations

import os

import pytest
from broken_providers import VARIANTS
from ostinato_conformance import ProviderConformanceTests


def _suite_for(provider_class: type) -> type:
    class Suite(ProviderConformanceTests):
        @pytest.fixture
        def provider_factory(self) -> type:
            return provider_class

    return Suite


_selected = os.environ.get("OSTINATO_KILL_MATRIX_VARIANTS")
for _name, _cls in VARIANTS.items():
    if _selected and _name not in _selected.split(","):
        continue
    globals()[f"Test{_name}"] = type(f"Test{_name}", (_suite_for(_cls),), {})
