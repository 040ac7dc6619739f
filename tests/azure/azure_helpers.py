"""Helpers shared by the Azure tests (a module name that cannot shadow the ``azure`` SDK)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable

from ostinato_azure import AzureStorageProvider

#: Makes an Azure provider on the test Azurite (the ``make_provider`` fixture).
ProviderMaker = Callable[..., AzureStorageProvider]

_hubs = itertools.count()


def new_hub_name() -> str:
    """A fresh task hub name (letters and digits only)."""
    return f"t{os.getpid()}x{next(_hubs)}x{uuid.uuid4().hex[:6]}"
