"""Partition ownership: which worker receives from which control queue.

The partitions table holds, in partition ``p``, one row per control queue (``lease-NN``: the
owner and when its lease expires) and one heartbeat row per live worker (``worker-<id>``).
Every write is ETag-conditional, so two workers never both believe they took one lease.

Each worker, every ``lease_duration / 3``: renews its heartbeat and its leases; counts the
live workers and computes its fair share (workers sorted by id; the first ``N mod W`` get one
more); takes free or expired leases up to that share; and, holding more than its share (a
worker joined), *drains* the extra ones — stops receiving from the queue, puts back messages
it buffered, waits until its in-flight work items of that queue are done — then releases the
lease so the newcomer takes it at once. A killed worker's leases are taken over once they
expire. Correctness never rests on the leases alone: every history write is guarded by the
instance's sentinel ETag, so even two workers that both think they own a queue (clock skew,
a stalled process) cannot both commit one step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from ostinato.clock import utcnow

log = logging.getLogger("ostinato.azure.partitions")

_PK = "p"


def _lease_key(index: int) -> str:
    return f"lease-{index:02d}"


class PartitionManager:
    """Keeps this worker's share of the control-queue leases."""

    def __init__(
        self,
        table: TableClient,
        partition_count: int,
        worker_id: str,
        lease_duration: timedelta,
        count: Callable[[str], None],
        in_flight: Callable[[int], int],
        on_drain: Callable[[int], None],
    ) -> None:
        self.table = table
        self.partition_count = partition_count
        self.worker_id = worker_id
        self.lease_duration = lease_duration
        self._count = count
        self._in_flight = in_flight
        self._on_drain = on_drain
        self._owned: dict[int, datetime] = {}  # index -> when our lease expires
        self._draining: set[int] = set()
        self._mutex = threading.Lock()
        self._tick_mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the receiver asks -----------------------------------------------------------
    def receivable(self) -> list[int]:
        """Control queues this worker may receive from now.

        A lease about to end (its renewal running late: a busy machine starves the renewal
        thread) is renewed here and now rather than leaving its queue unread meanwhile.
        """
        margin = self.lease_duration / 6
        now = utcnow()
        with self._mutex:
            late = any(expires - margin <= now < expires for expires in self._owned.values())
        if late and self._thread is not None:
            try:
                self.tick()
            except Exception:
                log.exception("Renewing partition leases failed")
            now = utcnow()
        with self._mutex:
            return sorted(
                i
                for i, expires in self._owned.items()
                if expires - margin > now and i not in self._draining
            )

    def takes(self, index: int) -> bool:
        """Whether this worker receives queue ``index`` now (leased a while yet, not draining)."""
        margin = self.lease_duration / 6
        with self._mutex:
            expires = self._owned.get(index)
            draining = index in self._draining
        return expires is not None and not draining and expires - margin > utcnow()

    def owns(self, index: int) -> bool:
        with self._mutex:
            expires = self._owned.get(index)
        return expires is not None and expires > utcnow()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Take leases once (synchronously), then keep them on a background thread."""
        if self._thread is not None:
            return
        try:
            self.tick()
        except Exception:
            log.exception("Taking partition leases failed; retrying in the background")
        self._thread = threading.Thread(
            target=self._run, name=f"ostinato-azure-leases-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with ``release``, give the leases up so others take them at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if release:
            with self._mutex:
                owned = list(self._owned)
            for index in owned:
                self._release(index)
            self._count("table.delete")
            try:
                self.table.delete_entity(_PK, f"worker-{self.worker_id}")
            except HttpResponseError:
                pass

    def _run(self) -> None:
        interval = self.lease_duration.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:
                log.exception("Renewing partition leases failed")

    # -- one round ------------------------------------------------------------------------
    def tick(self) -> None:
        """One round (see the module docstring); rounds never overlap."""
        with self._tick_mutex:
            self._tick()

    def _tick(self) -> None:
        now = utcnow()
        expires = now + self.lease_duration
        self._count("table.upsert")
        self.table.upsert_entity(
            {"PartitionKey": _PK, "RowKey": f"worker-{self.worker_id}", "ExpiresAt": expires},
            mode=UpdateMode.REPLACE,
        )
        self._count("table.query")
        rows = list(self.table.query_entities(f"PartitionKey eq '{_PK}'"))
        workers = {self.worker_id}
        leases: dict[int, dict[str, object]] = {}
        for row in rows:
            key = str(row["RowKey"])
            if key.startswith("worker-") and row["ExpiresAt"] > now:
                workers.add(key[len("worker-") :])
            elif key.startswith("lease-"):
                leases[int(key[len("lease-") :])] = row
        for index in range(self.partition_count):
            if index not in leases:
                entity = {
                    "PartitionKey": _PK,
                    "RowKey": _lease_key(index),
                    "Owner": "",
                    "ExpiresAt": now,
                }
                self._count("table.insert")
                try:
                    meta = self.table.create_entity(entity)
                    entity["etag"] = meta["etag"]
                except ResourceExistsError:
                    continue
                leases[index] = entity
        ranked = sorted(workers)
        share = self.partition_count // len(ranked) + (
            1 if ranked.index(self.worker_id) < self.partition_count % len(ranked) else 0
        )
        mine = sorted(i for i, row in leases.items() if row["Owner"] == self.worker_id)
        with self._mutex:
            for i in list(self._owned):
                if i not in mine:
                    log.warning("Lost the lease of control queue %d", i)
                    self._owned.pop(i, None)
                    self._draining.discard(i)
        # Renew (or, once drained, release) what we hold.
        extra = len(mine) - share
        for i in reversed(mine):
            if extra > 0:
                extra -= 1
                with self._mutex:
                    starting = i not in self._draining
                    self._draining.add(i)
                if starting:
                    self._on_drain(i)
                if self._in_flight(i) == 0:
                    self._release(i, leases[i])
                    continue
            self._write(i, leases[i], self.worker_id, expires)
        # Take free or expired leases up to our share.
        held = len([i for i in mine if i in self._owned and i not in self._draining])
        for i, lease in sorted(leases.items()):
            current: dict[str, Any] = dict(lease)
            current.setdefault("etag", _etag(lease))
            if held >= share:
                break
            if current["Owner"] == self.worker_id:
                continue
            if current["Owner"] and current["ExpiresAt"] > now:
                continue
            if self._write(i, current, self.worker_id, expires):
                log.info("Took the lease of control queue %d", i)
                held += 1

    def _write(self, index: int, row: dict[str, object], owner: str, expires: datetime) -> bool:
        entity = {"PartitionKey": _PK, "RowKey": _lease_key(index), "Owner": owner}
        entity["ExpiresAt"] = expires  # type: ignore[assignment]
        self._count("table.update")
        try:
            self.table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=_etag(row),
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            with self._mutex:
                self._owned.pop(index, None)
                self._draining.discard(index)
            return False
        with self._mutex:
            if owner == self.worker_id:
                self._owned[index] = expires
            else:
                self._owned.pop(index, None)
                self._draining.discard(index)
        return True

    def _release(self, index: int, row: dict[str, object] | None = None) -> None:
        if row is None:
            self._count("table.read")
            try:
                row = self.table.get_entity(_PK, _lease_key(index))
            except ResourceNotFoundError:
                return
            if row.get("Owner") != self.worker_id:
                with self._mutex:
                    self._owned.pop(index, None)
                return
        if self._write(index, row, "", utcnow()):
            log.info("Released the lease of control queue %d", index)


def _etag(row: dict[str, object]) -> str:
    metadata = getattr(row, "metadata", None)
    if metadata:
        return str(metadata["etag"])
    return str(row["etag"])
