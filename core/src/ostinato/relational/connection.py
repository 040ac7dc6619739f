"""What the toolkit needs from a database driver: a DB-API 2 cursor, and a transaction.

The toolkit always reads a statement's rows to the end (``fetchall``): a half-read statement
keeps a read transaction open in some drivers (sqlite3), which holds locks and old snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Cursor", "Transaction"]


class Cursor(Protocol):
    """The subset of a DB-API 2 (PEP 249) cursor the toolkit uses.

    A cursor may also have ``execute_script(statements)``: execute a list of
    ``(sql, parameters)`` in order without the toolkit reading their results, e.g. sent in
    one round trip (psycopg's pipeline mode); the toolkit uses it for its multi-statement
    writes. Without it each statement is an ``execute``.
    """

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass
class Transaction:
    """One write transaction, as an engine's
    :meth:`~ostinato.relational.provider.RelationalProvider.transaction` hands it out.

    The toolkit runs its statements on :attr:`cursor`. When the engine's context manager
    exits cleanly the transaction has committed and is visible to other connections; the
    toolkit then wakes whoever waits for the change and, if the engine set
    :attr:`wait_durable`, calls it before the call returns.
    """

    #: The cursor inside the transaction.
    cursor: Cursor
    #: Set by an engine whose commit becomes visible before it is durable (SQLite's group
    #: commit): returns once the commit is on disk. ``None``: durable at commit.
    wait_durable: Callable[[], None] | None = None
