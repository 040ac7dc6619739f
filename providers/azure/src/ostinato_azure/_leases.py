"""Named task-hub leases (:meth:`~ostinato.provider.StorageProvider.acquire_lease`) as rows of
the partitions table, in a partition of their own (``hub-leases``; row key = the lease's
name, with its owner and expiry). Every write is ETag-conditional, so two workers never both
take one lease."""

from __future__ import annotations

from datetime import timedelta

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from ostinato.clock import utcnow

PARTITION = "hub-leases"


def acquire(table: TableClient, name: str, owner: str, duration: timedelta) -> bool:
    """Take or renew lease ``name`` for ``owner``; whether ``owner`` holds it now."""
    now = utcnow()
    entity = {
        "PartitionKey": PARTITION,
        "RowKey": name,
        "Owner": owner,
        "ExpiresAt": now + duration,
    }
    try:
        row = table.get_entity(PARTITION, name)
    except ResourceNotFoundError:
        try:
            table.create_entity(entity)
        except ResourceExistsError:
            return False
        return True
    if row.get("Owner") != owner and row["ExpiresAt"] > now:
        return False
    try:
        table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=row.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def release(table: TableClient, name: str, owner: str) -> None:
    """Delete lease ``name`` if ``owner`` holds it."""
    try:
        row = table.get_entity(PARTITION, name)
    except ResourceNotFoundError:
        return
    if row.get("Owner") != owner:
        return
    try:
        table.delete_entity(
            PARTITION,
            name,
            etag=row.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return
