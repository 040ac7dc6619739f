"""Typed reading and writing of transfer files (see :mod:`ostinato.transfer.format`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ostinato import history
from ostinato.errors import SerializationError
from ostinato.provider import InstanceSnapshot
from ostinato.transfer.format import (
    Counts,
    Header,
    TransferFormatError,
    snapshot_from_dict,
    snapshot_to_dict,
)


class TransferWriter:
    """Writes a transfer file: the header at once, then :meth:`write` per instance, then the
    trailer on :meth:`close` (a file without it reads as incomplete)."""

    def __init__(self, stream: IO[str], header: Header | None = None) -> None:
        self._stream = stream
        self.header = header or Header()
        self.counts = Counts()
        self._closed = False
        self._write_line(self.header.to_dict())

    def _write_line(self, data: dict[str, Any]) -> None:
        self._stream.write(history.compact_json(data))
        self._stream.write("\n")

    def write(self, snapshot: InstanceSnapshot) -> None:
        """Append one instance's line."""
        if self._closed:
            raise ValueError("TransferWriter is closed")
        self._write_line(snapshot_to_dict(snapshot))
        self.counts = self.counts.add(snapshot)

    def write_all(self, snapshots: Iterable[InstanceSnapshot]) -> None:
        for snapshot in snapshots:
            self.write(snapshot)

    def close(self) -> None:
        """Write the trailer (once) and flush; the stream stays open for its owner."""
        if not self._closed:
            self._closed = True
            self._write_line({"type": "end", **self.counts.to_dict()})
            self._stream.flush()

    def __enter__(self) -> TransferWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failed export leaves no trailer, so the file reads as incomplete.
        if exc_type is None:
            self.close()


class TransferReader:
    """Reads a transfer file: :attr:`header` at once, the snapshots by iterating, and
    checks the trailer's counts at the end (:attr:`counts` then holds them).

    Raises :class:`TransferFormatError` naming the line for anything malformed, a format
    version newer than this ostinato's, or a file cut short (no trailer, or counts that do
    not match the lines read).
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = enumerate(lines, start=1)
        self.counts: Counts | None = None
        first = self._next_data()
        if first is None:
            raise TransferFormatError("Transfer file is empty (no header line)")
        number, data = first
        self.header = self._parse(number, Header.from_dict, data)

    def _next_data(self) -> tuple[int, dict[str, Any]] | None:
        for number, line in self._lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TransferFormatError(f"Line {number}: not JSON ({exc})") from None
            if not isinstance(data, dict):
                raise TransferFormatError(f"Line {number}: expected a JSON object")
            return number, data
        return None

    @staticmethod
    def _parse(number: int, parse: Any, data: dict[str, Any]) -> Any:
        try:
            return parse(data)
        except TransferFormatError as exc:
            raise TransferFormatError(f"Line {number}: {exc}") from None
        except (SerializationError, KeyError, TypeError, ValueError) as exc:
            raise TransferFormatError(
                f"Line {number}: invalid ({type(exc).__name__}: {exc})"
            ) from None

    def __iter__(self) -> Iterator[InstanceSnapshot]:
        seen = Counts()
        while (item := self._next_data()) is not None:
            number, data = item
            kind = data.get("type")
            if kind == "end":
                trailer = self._parse(number, Counts.from_dict, data)
                if trailer != seen:
                    raise TransferFormatError(
                        f"Line {number}: the trailer counts {trailer.to_dict()} but the file "
                        f"holds {seen.to_dict()}"
                    )
                self.counts = trailer
                if self._next_data() is not None:
                    raise TransferFormatError(f"Line {number}: data after the trailer")
                return
            if kind not in ("instance", "entity"):
                raise TransferFormatError(f"Line {number}: unknown line type {kind!r}")
            snapshot: InstanceSnapshot = self._parse(number, snapshot_from_dict, data)
            seen = seen.add(snapshot)
            yield snapshot
        raise TransferFormatError(
            "Transfer file ends without its trailer line: it is incomplete "
            "(the export was interrupted or the file was cut)"
        )


def write_file(
    path: str | Path, snapshots: Iterable[InstanceSnapshot], header: Header | None = None
) -> Counts:
    """Write ``snapshots`` to a new transfer file at ``path``; returns the counts written."""
    with open(path, "w", encoding="utf-8") as stream, TransferWriter(stream, header) as writer:
        writer.write_all(snapshots)
    return writer.counts


def read_file(path: str | Path) -> tuple[Header, list[InstanceSnapshot]]:
    """Read a whole transfer file (for large files iterate a :class:`TransferReader`)."""
    with open(path, encoding="utf-8") as stream:
        reader = TransferReader(stream)
        return reader.header, list(reader)


__all__ = ["TransferReader", "TransferWriter", "read_file", "write_file"]
