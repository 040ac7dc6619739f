"""Rewind and restart (examples/rewind_and_restart.py) on Azure, with a real worker."""

from __future__ import annotations

import sys
from pathlib import Path

from ostinato_azure import AzureStorageProvider

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.testing.rewind_checks import check_rewind_and_restart  # noqa: E402


def test_rewind_and_restart(provider: AzureStorageProvider) -> None:
    check_rewind_and_restart(provider, "azure-1")
