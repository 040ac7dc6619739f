"""Helpers shared by the Azure tests (a module name that cannot shadow the ``azure`` SDK)."""

from __future__ import annotations

import itertools
import os
import uuid

_hubs = itertools.count()


def new_hub_name() -> str:
    """A fresh task hub name (letters and digits only)."""
    return f"t{os.getpid()}x{next(_hubs)}x{uuid.uuid4().hex[:6]}"
