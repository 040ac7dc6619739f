"""What the toolkit needs from a database driver: a DB-API 2 cursor, nothing more.

The toolkit always reads a statement's rows to the end (``fetchall``): a half-read statement
keeps a read transaction open in some drivers (sqlite3), which holds locks and old snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    """The subset of a DB-API 2 (PEP 249) cursor the toolkit uses."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchall(self) -> list[Any]: ...
