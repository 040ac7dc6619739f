"""Orchestration histories from export files (the ``ostinato export`` format)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ostinato.history import HistoryEvent


def histories_in_file(path: str | Path) -> Iterator[tuple[str, Sequence[HistoryEvent]]]:
    """``(instance id, history)`` of every orchestration in an export file."""
    raise NotImplementedError("reading export files needs ostinato.transfer")


__all__ = ["histories_in_file"]
