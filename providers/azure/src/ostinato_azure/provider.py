"""The Azure Storage provider: Tables + Queues + Blobs, correct without cross-service transactions.

Layout of one task hub (see ``README.md`` for the full design and the crash-point table):

* ``<hub>Instances`` — one partition per instance (partition key = the instance id as a table
  key, see :mod:`._keys`): its instance row (row key ``""``: the record, the current
  execution id and the committed history length) and one row per history event (row key
  ``<execution id>.<sequence>``). A checkpoint writes its history rows and the instance row in
  one entity-group transaction, conditional on the row's ETag: the row's ETag is the
  instance's lock as far as storage is concerned, and history and status never disagree.
* ``<hub>-control-NN`` — N control queues (1-16); an instance's messages go to queue
  ``crc32(id) mod N``. ``<hub>-workitems`` — the activity queue.
* ``<hub>-largemessages`` — gzip-compressed payloads over the native limits.
* ``<hub>Partitions`` — control-queue leases and worker heartbeats (:mod:`._partitions`).
* ``<hub>Poison`` — the dead letters: undecodable messages, histories and activity tasks,
  with the reason.

The class is a facade over one module per concern, each a layer on the one before:
:mod:`._base` (clients, pools, counters, caches) → :mod:`._records` (row properties, the
tombstones, history rows) → :mod:`._queues` (message bodies, sends, visibility) →
:mod:`._poison` (dead letters) → :mod:`._inbox` (receives, the buffer, locks, pop receipts,
partition leases) → :mod:`._repairs` (lost starts, stale messages) →
:mod:`._orchestrations` (handing out work items) → :mod:`._checkpoint` (the checkpoint
writer) → :mod:`._activities` → :mod:`._aside` (moving undecodable records aside) →
:mod:`._client`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

from azure.core.exceptions import ResourceNotFoundError
from ostinato.provider import InstanceSnapshot, ProviderCapabilities

from ostinato_azure import _leases, _transfer
from ostinato_azure._base import _endpoint
from ostinato_azure._client import Client
from ostinato_azure._payloads import QUEUE_INLINE_BYTES


class AzureStorageProvider(Client):
    """Orchestrations on Azure Storage (or Azurite): Tables, Queues and Blobs.

    ``connection_string``: the storage account's (``OSTINATO_AZURE_CONNECTION_STRING``);
    ``task_hub``: 3-45 letters and digits, starting with a letter; ``partition_count``:
    control queues (1-16; fixed for the life of a task hub); ``lease_duration``: seconds a
    control-queue lease lasts without renewal (a killed worker's queues move after this);
    ``partition_leases``: set ``False`` to let every worker receive from every control queue
    (correct — the sentinel ETags still guard each instance — but with more conflicts).
    """

    capabilities = ProviderCapabilities(
        transactional_checkpoints=False,
        max_payload_bytes=None,
        native_payload_bytes=QUEUE_INLINE_BYTES,
        multi_process=True,
        lock_expiry=True,
    )

    def __repr__(self) -> str:
        return (
            f"AzureStorageProvider(account {self._table_service.account_name!r} at"
            f" {_endpoint(self._table_service.url)}, task_hub={self.task_hub!r})"
        )

    def delete_task_hub(self) -> None:
        """Delete every table, queue and the container of this task hub."""
        self.close()
        for name in self.names.tables:
            self._table_service.delete_table(name)
        for queue in [*self._control, self._activity_queue]:
            with contextlib.suppress(ResourceNotFoundError):
                queue.delete_queue()
        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_container()
        self._set_up = False

    def close(self) -> None:
        """Release the leases (others take their queues at once), put back buffered messages
        and close the HTTP connections. Idempotent; a later call reopens what it needs."""
        with self._mutex:
            self._workers.clear()
        self._release_partitions()
        for session in self._sessions:
            session.close()  # drops pooled connections; a later request opens new ones

    def worker_stopped(self, worker_id: str) -> None:
        """When the last worker taking work through this provider stops: release its leases."""
        with self._mutex:
            self._workers.discard(worker_id)
            if self._workers:
                return
        self._release_partitions()

    def export_state(self) -> Iterator[InstanceSnapshot]:
        with self._mapped_errors("export the task hub"):
            yield from _transfer.export_state(self)

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        with self._mapped_errors("import an instance"):
            _transfer.import_snapshot(self, snapshot)

    def active_workers(self) -> list[str]:
        with self._mapped_errors("list the running workers"):
            return _transfer.active_workers(self)

    def backlog(self) -> dict[str, int]:
        """Approximate message counts of the queues (hidden timers included): orchestration
        messages in the control queues, activity tasks in the work-item queue."""
        with self._mapped_errors("count the backlog"):
            self.setup()
            self.count("queue.properties", len(self._control) + 1)
            control = sum(
                q.get_queue_properties().approximate_message_count or 0 for q in self._control
            )
            tasks = self._activity_queue.get_queue_properties().approximate_message_count or 0
        return {"orchestrations": control, "activities": tasks}

    def acquire_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        with self._mapped_errors("take a lease"):
            self.setup()
            self.count("table.update")
            return _leases.acquire(self._partitions_table, name, owner, duration)

    def release_lease(self, name: str, owner: str) -> None:
        with self._mapped_errors("release a lease"):
            self.setup()
            self.count("table.delete")
            _leases.release(self._partitions_table, name, owner)


__all__ = ["AzureStorageProvider"]
