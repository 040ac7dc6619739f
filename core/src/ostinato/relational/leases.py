"""The SQL of a task hub's named leases (:meth:`~ostinato.provider.StorageProvider.acquire_lease`),
rendered once per dialect. Parameters are listed beside each statement."""

from __future__ import annotations

from ostinato.relational.dialect import Dialect
from ostinato.relational.schema import LEASES


class LeaseStatements:
    """The lease statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        p = dialect.placeholder
        key = f"task_hub = {p} AND name = {p}"
        #: hub, name
        self.select = f"SELECT owner, expires_at FROM {LEASES} WHERE {key}{dialect.lock_suffix()}"
        #: hub, name, owner, expires
        self.insert = dialect.insert(LEASES, ("task_hub", "name", "owner", "expires_at"), 1)
        #: owner, expires, hub, name
        self.update = f"UPDATE {LEASES} SET owner = {p}, expires_at = {p} WHERE {key}"
        #: hub, name, owner
        self.delete = f"DELETE FROM {LEASES} WHERE {key} AND owner = {p}"


__all__ = ["LeaseStatements"]
