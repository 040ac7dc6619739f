"""Orchestration histories from export files (``ostinato export``, :mod:`ostinato.transfer`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ostinato.history import HistoryEvent
from ostinato.transfer import TransferReader, is_entity_id


def histories_in_file(path: str | Path) -> Iterator[tuple[str, Sequence[HistoryEvent]]]:
    """``(instance id, history)`` of every orchestration in an export file that has started
    (entities and instances without a history are left out). The file is read as it is
    iterated; a damaged or cut file raises ``TransferFormatError`` naming the line."""
    with open(path, encoding="utf-8") as stream:
        for snapshot in TransferReader(stream):
            if snapshot.record is None or is_entity_id(snapshot.instance_id):
                continue
            if snapshot.history:
                yield snapshot.instance_id, snapshot.history


__all__ = ["histories_in_file"]
