"""The SQL of a task hub's named leases (:meth:`~ostinato.provider.StorageProvider.acquire_lease`),
rendered once per dialect. Parameters are listed beside each statement."""

from __future__ import annotations

from ostinato.relational.dialect import Dialect, RowLock
from ostinato.relational.schema import LEASES


class LeaseStatements:
    """The lease statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        p, leases = dialect.placeholder, dialect.table(LEASES)
        key = f"task_hub = {p} AND name = {p}"
        #: hub, name (held: the row the take-over decision relies on)
        self.select = dialect.select("owner, expires_at", leases, key, lock=RowLock.HOLD)
        #: hub, name, owner, expires
        self.insert = dialect.insert(leases, ("task_hub", "name", "owner", "expires_at"), 1)
        #: owner, expires, hub, name
        self.update = f"UPDATE {leases} SET owner = {p}, expires_at = {p} WHERE {key}"
        #: hub, name, owner
        self.delete = f"DELETE FROM {leases} WHERE {key} AND owner = {p}"


__all__ = ["LeaseStatements"]
