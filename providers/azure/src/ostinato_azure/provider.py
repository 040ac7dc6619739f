"""The Azure Storage provider: Tables + Queues + Blobs, correct without cross-service transactions.

Layout of one task hub (see ``README.md`` for the full design and the crash-point table):

* ``<hub>Instances`` — one row per instance (partition key = the instance id as a table key,
  see :mod:`._keys`; row key ``""``): the queryable projection of its state, ETag-guarded.
* ``<hub>History`` — partition = instance id; one row per event (row key
  ``<execution id>.<sequence>``) and a *sentinel* row (row key ``""``) holding the current
  execution id, the committed history length and the instance record that history implies.
  Every history batch includes a conditional write of the sentinel: the sentinel's ETag is the
  instance's lock as far as storage is concerned.
* ``<hub>-control-NN`` — N control queues (1-16); an instance's messages go to queue
  ``crc32(id) mod N``. ``<hub>-workitems`` — the activity queue.
* ``<hub>-largemessages`` — gzip-compressed payloads over the native limits.
* ``<hub>Partitions`` — control-queue leases and worker heartbeats (:mod:`._partitions`).
* ``<hub>Poison`` — messages that failed too often, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import (
    ConfigurationError,
    FailureDetails,
    InstanceAlreadyExistsError,
    ProviderError,
    WorkItemLockLost,
)
from ostinato.history import ExecutionStarted, HistoryEvent, TaskFailed
from ostinato.provider import (
    ActivityTask,
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    InstanceSnapshot,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ProviderCapabilities,
    ReuseIdPolicy,
    StorageProvider,
    Work,
    decode_failure,
    encode_failure,
    new_lock_token,
)
from ostinato.runtime import telemetry
from ostinato.status import OrchestrationStatus

from ostinato_azure import _leases, _transfer
from ostinato_azure._errors import ignoring_lost_message, lost_message
from ostinato_azure._keys import (
    instance_id_of,
    key_upper_bound,
    queue_text,
    table_key,
    utf16_order,
)
from ostinato_azure._names import MAX_PARTITIONS, HubNames, validate_task_hub
from ostinato_azure._partitions import PartitionManager
from ostinato_azure._payloads import (
    QUEUE_INLINE_BYTES,
    BlobStore,
    get_property,
    put_property,
    xml_size,
)

log = logging.getLogger("ostinato.azure")

T = TypeVar("T")

#: Azure Storage queues hide a message for at most 7 days; longer delays hop.
MAX_VISIBILITY = timedelta(days=7) - timedelta(minutes=5)
#: Rows per table transaction, besides the sentinel (Azure and Azurite: at most 100 ops).
HISTORY_BATCH_ROWS = 99
_SENTINEL = ""
#: Safety margin against the queue's own clock and request latency.
_MARGIN = timedelta(milliseconds=200)
#: Messages for an instance between two executions wait for the next start; while it isn't
#: there, they are looked at again after this (doubling up to the maximum).
_START_WAIT = timedelta(milliseconds=50)
_START_WAIT_MAX = timedelta(seconds=1)
#: A commit starts only with this much queue visibility left on its messages (else extended).
_COMMIT_WINDOW = timedelta(seconds=5)
#: Reads that race a concurrent write (a payload replaced under them) are tried this often.
_READ_ATTEMPTS = 3


def _visibility_seconds(lock_timeout: timedelta) -> int:
    """Queue visibility for a lock: whole seconds, a little longer than the lock itself.

    Locks are exact in-process (sub-second timeouts work): when one expires while its
    messages are still invisible on the queue, this process hands them out again itself.
    The extra half lets received messages wait in the buffer (their instance busy) without
    having to be extended before they form a work item.
    """
    return max(1, math.ceil(lock_timeout.total_seconds() * 1.5 + 1))


def _version(base: int = 0) -> int:
    """A record version: larger than ``base`` and than any earlier version on this clock."""
    return max(base + 1, time.time_ns() // 1000)


def _etag(entity: Any) -> str:
    return str(entity.metadata["etag"])


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _session() -> requests.Session:
    """An HTTP session whose connection pool fits the provider's thread pool."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _endpoint(url: str) -> str:
    """A service URL without its query (a SAS token is a secret): scheme, host, path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _reason(exc: BaseException) -> str:
    """The innermost socket-level reason of a request that failed ("Connection refused")."""
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found[-1].strip() if found else str(exc).splitlines()[0]


@dataclass
class _Received:
    """A control-queue message this process holds invisible."""

    queue: int
    message_id: str
    pop_receipt: str
    message: OrchestrationMessage
    dequeue_count: int
    expires: datetime  # when the queue makes it visible again (less a margin)
    not_before: datetime | None = None  # abandoned with a delay while the queue was down
    #: Held back until its instance's next execution starts (see ``_waits_for_start``):
    #: not handed out before this time, unless that start is buffered too.
    start_wait_until: datetime | None = None
    start_waits: int = 0


@dataclass
class _OrchLock:
    """The provider's state of one orchestration work item."""

    token: str
    expires: datetime
    received: list[_Received]
    instance_etag: str | None = None
    sentinel_etag: str | None = None
    sentinel_execution: str | None = None
    sentinel_size: int = 0
    version: int = 0
    inbox_cutoff: datetime | None = None
    timeout: timedelta = timedelta(0)
    #: Set (under the provider mutex) when ``complete``/``abandon`` took the item over: an
    #: expiring lock is then no longer reclaimed, so two callers never both commit it.
    claimed: bool = False

    def untaken(self, now: datetime) -> bool:
        """Whether its holder may still use it (the caller checked it is still registered).

        A lock past its timeout that no one took yet (the provider hands its messages to
        another work item only when asked for work, under the mutex) still holds: its
        messages stay invisible on the queue until they expire there. On a loaded machine a
        step may take longer than its lock; failing it then would only repeat it.
        """
        return self.expires > now or (
            bool(self.received) and all(r.expires > now for r in self.received)
        )


@dataclass
class _ActivityLock:
    message_id: str
    pop_receipt: str
    expires: datetime  # the lock's own expiry
    queue_expires: datetime  # when the queue makes the message visible again
    task: ActivityTask
    dequeue_count: int
    done: bool = False


@dataclass(frozen=True)
class _CachedRow:
    """An instance row as this process last wrote it."""

    version: int
    etag: str
    record: InstanceRecord
    inbox_cutoff: datetime | None
    sentinel_etag: str | None
    sentinel_execution: str | None
    sentinel_size: int


@dataclass
class _Sentinel:
    etag: str
    execution_id: str
    history_size: int
    version: int
    entity: dict[str, Any] = field(default_factory=dict)


class AzureStorageProvider(StorageProvider):
    """Orchestrations on Azure Storage (or Azurite): Tables, Queues and Blobs.

    ``connection_string``: the storage account's (``OSTINATO_AZURE_CONNECTION_STRING``);
    ``task_hub``: 3-45 letters and digits, starting with a letter; ``partition_count``:
    control queues (1-16; fixed for the life of a task hub); ``lease_duration``: seconds a
    control-queue lease lasts without renewal (a killed worker's queues move after this);
    ``max_dequeue_count``: deliveries after which a message is moved to the poison table;
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

    def __init__(
        self,
        connection_string: str,
        task_hub: str = "ostinato",
        *,
        partition_count: int = 4,
        lease_duration: float = 30.0,
        max_dequeue_count: int = 10,
        partition_leases: bool = True,
        worker_id: str | None = None,
        start_repair_after: float = 30.0,
    ) -> None:
        if not connection_string:
            raise ConfigurationError(
                "The Azure provider needs a connection string "
                "(setting connection_string, or OSTINATO_AZURE_CONNECTION_STRING)"
            )
        if not 1 <= partition_count <= MAX_PARTITIONS:
            raise ConfigurationError(
                f"partition_count must be between 1 and {MAX_PARTITIONS}, not {partition_count}"
            )
        if max_dequeue_count < 1:
            raise ConfigurationError("max_dequeue_count must be at least 1")
        self.names = HubNames(validate_task_hub(task_hub), partition_count)
        self.task_hub = task_hub
        self.partition_count = partition_count
        self.lease_duration = timedelta(seconds=lease_duration)
        self.max_dequeue_count = max_dequeue_count
        self.partition_leases = partition_leases
        self.start_repair_after = timedelta(seconds=start_repair_after)
        self._worker_id = worker_id
        #: Storage operations made, by kind ("table.read", "queue.send", ...): each is billed.
        self.operations: Counter[str] = Counter()
        self._ops_mutex = threading.Lock()
        self._sessions = [_session() for _ in range(3)]
        transports = [RequestsTransport(session=s, session_owner=True) for s in self._sessions]
        try:
            tables = TableServiceClient.from_connection_string(
                connection_string, transport=transports[0]
            )
            queues = QueueServiceClient.from_connection_string(
                connection_string, transport=transports[1]
            )
            blobs = BlobServiceClient.from_connection_string(
                connection_string, transport=transports[2]
            )
        except ValueError as exc:
            raise ConfigurationError(f"Invalid Azure Storage connection string: {exc}") from exc
        self._table_service = tables
        self._queue_service = queues
        self._blob_service = blobs
        self._instances = tables.get_table_client(self.names.instances_table)
        self._history = tables.get_table_client(self.names.history_table)
        self._partitions_table = tables.get_table_client(self.names.partitions_table)
        self._poison = tables.get_table_client(self.names.poison_table)
        self._control: list[QueueClient] = [
            queues.get_queue_client(self.names.control_queue(i)) for i in range(partition_count)
        ]
        self._activity_queue = queues.get_queue_client(self.names.activity_queue)
        self._container = blobs.get_container_client(self.names.container)
        self.blobs = BlobStore(self._container, self.count)
        # Work items run on one pool, the storage calls they fan out on another (a task
        # waiting for tasks queued behind it on the same pool could deadlock).
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ostinato-azure")
        self._io = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ostinato-azure-io")
        self._mutex = threading.RLock()
        self._buffer: dict[str, dict[str, _Received]] = {}
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._locks: dict[str, _OrchLock] = {}
        self._activity_locks: dict[str, _ActivityLock] = {}
        self._alive: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._rows: OrderedDict[str, _CachedRow] = OrderedDict()
        self._in_flight: Counter[int] = Counter()
        self._next_queue = 0
        self._partitions: PartitionManager | None = None
        #: Workers taking orchestration work through this provider (see worker_stopped).
        self._workers: set[str] = set()
        self._set_up = False
        self._last_repair = 0.0

    def __repr__(self) -> str:
        return (
            f"AzureStorageProvider(account {self._table_service.account_name!r} at"
            f" {_endpoint(self._table_service.url)}, task_hub={self.task_hub!r})"
        )

    @contextlib.contextmanager
    def _mapped_errors(self, what: str) -> Iterator[None]:
        """Turn driver errors the core doesn't know into ``ProviderError`` (ours pass through).

        A request that never reached the service says which endpoints it tried (no secrets).
        """
        try:
            yield
        except ServiceRequestError as exc:
            endpoints = ", ".join(
                dict.fromkeys(
                    _endpoint(service.url)
                    for service in (self._table_service, self._queue_service, self._blob_service)
                )
            )
            raise ProviderError(
                f"Cannot reach Azure Storage to {what} ({_reason(exc)}): is Azurite / the"
                f" storage account reachable at {endpoints}?"
            ) from exc
        except AzureError as exc:
            raise ProviderError(f"Azure Storage failed to {what}: {exc}") from exc

    # -- bookkeeping ----------------------------------------------------------------------
    def count(self, kind: str, n: int = 1) -> None:
        """Record ``n`` storage operations of ``kind`` (see :attr:`operations`)."""
        with self._ops_mutex:
            self.operations[kind] += n

    def reset_operation_counts(self) -> None:
        with self._ops_mutex:
            self.operations.clear()

    def _queue_index(self, instance_id: str) -> int:
        return zlib.crc32(instance_id.encode("utf-8")) % self.partition_count

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the hub's tables, queues and container if missing (idempotent)."""
        if self._set_up:
            return

        def table(name: str) -> None:
            self.count("table.create")
            self._table_service.create_table_if_not_exists(name)

        def queue(client: QueueClient) -> None:
            self.count("queue.create")
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

        def container() -> None:
            self.count("blob.create")
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()

        with self._mapped_errors("create the task hub"):
            futures = [self._io.submit(table, name) for name in self.names.tables]
            futures += [self._io.submit(queue, q) for q in [*self._control, self._activity_queue]]
            futures.append(self._io.submit(container))
            for future in futures:  # all at once: a new hub is ready in one round trip
                future.result()
        self._set_up = True

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

    def _release_partitions(self) -> None:
        partitions, self._partitions = self._partitions, None
        if partitions is not None:
            with contextlib.suppress(Exception):
                self._put_back_buffered(None)
            partitions.stop(release=True)

    def stop_without_release(self) -> None:
        """Stop renewing leases without releasing them (tests: simulate a dead worker)."""
        partitions, self._partitions = self._partitions, None
        if partitions is not None:
            partitions.stop(release=False)

    def _ensure_partitions(self, worker_id: str) -> PartitionManager | None:
        with self._mutex:
            self._workers.add(worker_id)
        if not self.partition_leases:
            return None
        if self._partitions is None:
            with self._mutex:
                if self._partitions is None:
                    self.setup()
                    manager = PartitionManager(
                        self._partitions_table,
                        self.partition_count,
                        self._worker_id or worker_id,
                        self.lease_duration,
                        self.count,
                        self._in_flight_of,
                        self._drain,
                    )
                    manager.start()
                    self._partitions = manager
        return self._partitions

    def _in_flight_of(self, queue: int) -> int:
        with self._mutex:
            return self._in_flight[queue]

    def _drain(self, queue: int) -> None:
        """A lease is being handed over: put back what we buffered from that queue."""
        self._put_back_buffered(queue)

    def _put_back_buffered(self, queue: int | None) -> None:
        with self._mutex:
            released: list[_Received] = []
            for instance_id, entries in list(self._buffer.items()):
                for key, received in list(entries.items()):
                    if queue is None or received.queue == queue:
                        released.append(entries.pop(key))
                if not entries:
                    del self._buffer[instance_id]
                    self._ready.pop(instance_id, None)
        for received in released:
            with contextlib.suppress(AzureError):
                self._set_visibility(received, 0)

    # -- entity encoding ------------------------------------------------------------------
    def _record_properties(self, record: InstanceRecord, version: int) -> dict[str, Any]:
        props: dict[str, Any] = {
            "Name": record.name,
            "ExecutionId": record.execution_id,
            "RuntimeStatus": record.runtime_status.value,
            "CreatedAt": record.created_at.isoformat(),
            "Created": record.created_at,
            "LastUpdatedAt": record.last_updated_at.isoformat(),
            "HistorySize": record.history_size,
            "Version": str(version),
        }
        if record.parent_instance_id is not None:
            props["ParentInstanceId"] = record.parent_instance_id
        iid = record.instance_id
        put_property(props, "Input", record.input, iid, self.blobs)
        put_property(props, "Output", record.output, iid, self.blobs)
        put_property(props, "CustomStatus", record.custom_status, iid, self.blobs)
        failure = encode_failure(record.failure_details)
        put_property(props, "FailureDetails", failure, iid, self.blobs)
        return props

    def _record_from(self, instance_id: str, entity: dict[str, Any]) -> InstanceRecord:
        return InstanceRecord(
            instance_id=instance_id,
            name=str(entity["Name"]),
            execution_id=str(entity["ExecutionId"]),
            runtime_status=OrchestrationStatus(entity["RuntimeStatus"]),
            created_at=datetime.fromisoformat(entity["CreatedAt"]),
            last_updated_at=datetime.fromisoformat(entity["LastUpdatedAt"]),
            input=get_property(entity, "Input", self.blobs),
            output=get_property(entity, "Output", self.blobs),
            custom_status=get_property(entity, "CustomStatus", self.blobs),
            failure_details=decode_failure(get_property(entity, "FailureDetails", self.blobs)),
            parent_instance_id=entity.get("ParentInstanceId"),
            history_size=int(entity.get("HistorySize", 0)),
        )

    def _read_row(self, instance_id: str) -> Any | None:
        self.count("table.read")
        try:
            return self._instances.get_entity(table_key(instance_id), _SENTINEL)
        except ResourceNotFoundError:
            return None

    def _read_sentinel(self, instance_id: str) -> _Sentinel | None:
        self.count("table.read")
        try:
            entity = self._history.get_entity(table_key(instance_id), _SENTINEL)
        except ResourceNotFoundError:
            return None
        return self._sentinel_from(entity)

    def _sentinel_from(self, entity: Any) -> _Sentinel:
        return _Sentinel(
            etag=_etag(entity),
            execution_id=str(entity.get("ExecutionId", "")),
            history_size=int(entity.get("HistorySize", 0)),
            version=int(entity.get("Version", "0")),
            entity=dict(entity),
        )

    # -- queue messages -------------------------------------------------------------------
    def _encode_body(self, instance_id: str, text: str) -> str:
        text = queue_text(text)
        if xml_size(text) <= QUEUE_INLINE_BYTES:
            return text
        return json.dumps({"$blob": self.blobs.put(instance_id, text), "instance_id": instance_id})

    def _decode_body(self, body: str) -> str:
        if body.startswith('{"$blob"'):
            return self.blobs.get(json.loads(body)["$blob"])
        return body

    def _send_orchestration_message(self, message: OrchestrationMessage) -> None:
        body = self._encode_body(message.instance_id, message.to_json())
        delay = self._delay_of(message)
        self.count("queue.send")
        self._control[self._queue_index(message.instance_id)].send_message(
            body, visibility_timeout=delay or None, time_to_live=-1
        )

    def _send_activity(self, task: ActivityTask) -> None:
        self.count("queue.send")
        self._activity_queue.send_message(
            self._encode_body(task.instance_id, task.to_json()), time_to_live=-1
        )

    def _set_visibility(self, received: _Received, seconds: int) -> bool:
        """Change a held message's visibility; ``False`` if someone else holds it now."""
        self.count("queue.update")
        try:
            receipt = self._control[received.queue].update_message(
                received.message_id, pop_receipt=received.pop_receipt, visibility_timeout=seconds
            )
        except HttpResponseError as exc:
            if lost_message(exc):
                return False
            raise
        received.pop_receipt = str(receipt.pop_receipt)
        return True

    def _delete_received(self, received: _Received) -> bool:
        """Delete a consumed message; ``False`` if another receiver took it meanwhile."""
        self.count("queue.delete")
        try:
            self._control[received.queue].delete_message(
                received.message_id, pop_receipt=received.pop_receipt
            )
        except HttpResponseError as exc:
            if not lost_message(exc):
                raise
            # Its visibility lapsed and someone else holds it now: it is redelivered.
            log.debug("Control message %s was already taken or deleted", received.message_id)
            return False
        return True

    # -- client side ----------------------------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        """Atomic start: conditional insert / ETag replace of the instance row, then enqueue.

        The row carries ``StartDeadline`` and the encoded start message: if the client dies
        between the row write and the enqueue, the next create of that id (or a worker's
        repair sweep) re-sends the start once the deadline passed. A duplicate start of the
        same execution is dropped by the core, so re-sending is always safe.
        """
        self.setup()
        instance_id = record.instance_id
        with self._mapped_errors("create an instance"):
            body = self._encode_body(instance_id, start.to_json())
            ready_at = max(utcnow(), start.visible_at or utcnow())
            entity: dict[str, Any] = {"PartitionKey": table_key(instance_id), "RowKey": _SENTINEL}
            entity.update(self._record_properties(record, _version()))
            entity["StartDeadline"] = ready_at + self.start_repair_after
            put_property(entity, "PendingStart", body, instance_id, self.blobs)
            replaced = False
            old_execution = ""
            while True:
                self.count("table.insert")
                try:
                    self._instances.create_entity(entity)
                    break
                except ResourceExistsError:
                    pass
                row = self._read_row(instance_id)
                if row is None:
                    continue
                status = OrchestrationStatus(row["RuntimeStatus"])
                if status not in policy.replaceable_statuses:
                    self._repair_start(instance_id, row)
                    raise InstanceAlreadyExistsError(instance_id, status)
                entity["Version"] = str(_version(int(row.get("Version", "0"))))
                entity["InboxCutoff"] = utcnow()
                old_execution = str(row["ExecutionId"])
                self.count("table.update")
                try:
                    self._instances.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=_etag(row),
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # someone else won the race: look again
                replaced = True
                break
            if replaced:
                self._take_locks_away(instance_id)
                self._forget_alive(instance_id)
                self._delete_history(instance_id)
                self._write_tombstone(instance_id, old_execution)
            self.count("queue.send")
            self._control[self._queue_index(instance_id)].send_message(
                body,
                visibility_timeout=self._delay_of(start) or None,
                time_to_live=-1,
            )
        self.changes.notify(work=Work.of_messages([start]))

    def _delay_of(self, message: OrchestrationMessage) -> int:
        if message.visible_at is None:
            return 0
        # Rounded down: the queue shows it a little early and the receiver holds it until
        # ``visible_at`` (so timers are neither early nor a second late).
        remaining = message.visible_at - utcnow()
        return max(0, math.floor(min(remaining, MAX_VISIBILITY).total_seconds()))

    def _repair_start(self, instance_id: str, row: Any) -> bool:
        """Re-send the start of a PENDING instance whose start may have been lost."""
        if row.get("RuntimeStatus") != OrchestrationStatus.PENDING.value:
            return False
        deadline = row.get("StartDeadline")
        if deadline is None or deadline > utcnow():
            return False
        body = get_property(row, "PendingStart", self.blobs)
        if body is None:
            return False
        update = {
            "PartitionKey": table_key(instance_id),
            "RowKey": _SENTINEL,
            "StartDeadline": utcnow() + self.start_repair_after * 4,
        }
        self.count("table.update")
        try:  # claim the repair first, so concurrent repairers send it once
            self._instances.update_entity(
                update,
                mode=UpdateMode.MERGE,
                etag=_etag(row),
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        message = OrchestrationMessage.from_json(self._decode_body(body))
        log.warning("Re-sending the start message of '%s' (its client may have died)", instance_id)
        self.count("queue.send")
        self._control[self._queue_index(instance_id)].send_message(
            body, visibility_timeout=self._delay_of(message) or None, time_to_live=-1
        )
        return True

    def repair_pending_starts(self) -> int:
        """Re-send lost start messages of PENDING instances past their deadline."""
        now = utcnow()
        self.count("table.query")
        rows = list(
            self._instances.query_entities(
                "RuntimeStatus eq 'PENDING' and StartDeadline lt @now", parameters={"now": now}
            )
        )
        return sum(
            self._repair_start(instance_id_of(str(row["PartitionKey"])), row) for row in rows
        )

    def send_message(self, message: OrchestrationMessage) -> None:
        with self._mapped_errors("send a message"):
            self.setup()
            self._send_orchestration_message(message)
        self.changes.notify(work=Work.of_messages([message]))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance row; read again if a payload it names was replaced meanwhile."""
        with self._mapped_errors("read an instance"):
            self.setup()
            for attempt in range(_READ_ATTEMPTS):
                row = self._read_row(instance_id)
                if row is None:
                    return None
                try:
                    return self._record_from(instance_id, row)
                except ResourceNotFoundError:
                    # A payload blob of that row version is gone (purged or replaced since
                    # the row was read): the row has changed too.
                    if attempt == _READ_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's events; read again if a write changed them under the read."""
        with self._mapped_errors("read a history"):
            self.setup()
            for attempt in range(_READ_ATTEMPTS):
                try:
                    events = self._read_history(instance_id)
                except ResourceNotFoundError:  # a payload blob went with a replace or purge
                    events = None
                if events is not None:
                    return events
                if attempt == _READ_ATTEMPTS - 1:
                    raise ProviderError(
                        f"The history of '{instance_id}' kept changing while it was read"
                    )
            raise AssertionError("unreachable")

    def _read_history(self, instance_id: str) -> list[HistoryEvent] | None:
        """The history, or ``None`` if the rows read don't form the sentinel's whole history
        (a query spans pages; a replace or purge may delete rows between them)."""
        self.count("table.query")
        rows = list(
            self._history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": table_key(instance_id)}
            )
        )
        sentinel = next((r for r in rows if r["RowKey"] == _SENTINEL), None)
        if sentinel is None:
            return []
        execution = str(sentinel.get("ExecutionId", ""))
        size = int(sentinel.get("HistorySize", 0))
        prefix = execution + "."
        events: dict[int, HistoryEvent] = {}
        for row in rows:
            key = str(row["RowKey"])
            if not key.startswith(prefix):
                continue
            seq = int(key[len(prefix) :])
            if seq < size:
                text = get_property(row, "Event", self.blobs)
                assert text is not None
                events[seq] = history.loads(text)
        if len(events) != size:
            return None
        return [events[seq] for seq in range(size)]

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        with self._mapped_errors("query instances"):
            self.setup()
            clauses = ["RowKey eq ''"]
            parameters: dict[str, Any] = {}
            if query.runtime_status is not None:
                if not query.runtime_status:
                    return Page(items=[])
                statuses = sorted(s.value for s in query.runtime_status)
                clauses.append("(" + " or ".join(f"RuntimeStatus eq '{s}'" for s in statuses) + ")")
            if query.instance_id_prefix:
                prefix = table_key(query.instance_id_prefix)
                clauses.append("PartitionKey ge @lo")
                parameters["lo"] = prefix
                upper = key_upper_bound(prefix)
                if upper is not None:
                    clauses.append("PartitionKey lt @hi")
                    parameters["hi"] = upper
            if query.continuation_token is not None:
                clauses.append("PartitionKey gt @after")
                parameters["after"] = query.continuation_token
            if query.created_from is not None:
                clauses.append("Created ge @cfrom")
                parameters["cfrom"] = query.created_from - timedelta(milliseconds=1)
            if query.created_to is not None:
                clauses.append("Created le @cto")
                parameters["cto"] = query.created_to + timedelta(milliseconds=1)
            self.count("table.query")
            pages = self._instances.query_entities(
                " and ".join(clauses),
                parameters=parameters,
                results_per_page=min(1000, query.page_size + 1),
            ).by_page()
            found: list[tuple[str, InstanceRecord]] = []
            for page in pages:
                for row in page:
                    key = str(row["PartitionKey"])
                    record = self._record_from(instance_id_of(key), row)
                    if query.matches(record):
                        found.append((key, record))
                if len(found) > query.page_size:
                    break
                self.count("table.query")
            found.sort(key=lambda pair: utf16_order(pair[0]))  # the table's own order
            items = found[: query.page_size]
            token = items[-1][0] if len(found) > query.page_size else None
            return Page(items=[record for _, record in items], continuation_token=token)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        """Delete the instance if its status allows: history and blobs first, the row last.

        The status check is the ETag-conditional delete of the row; a crash midway leaves the
        row (with its status) so purging again finishes the job. Messages still in the
        queues for a purged instance are consumed and dropped by the core when they arrive.
        """
        with self._mapped_errors("purge an instance"):
            self.setup()
            row = self._read_row(instance_id)
            if row is None or OrchestrationStatus(row["RuntimeStatus"]) not in only_if_status:
                return False
            self._take_locks_away(instance_id)
            self._forget_alive(instance_id)
            self._delete_history(instance_id)
            self._write_tombstone(instance_id, str(row["ExecutionId"]))
            self.blobs.delete_instance(instance_id)
            self.count("table.delete")
            try:
                self._instances.delete_entity(
                    table_key(instance_id),
                    _SENTINEL,
                    etag=_etag(row),
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
            return True

    def _delete_history(self, instance_id: str, keep: str | None = None) -> None:
        """Delete history rows of the instance (all, or all but those with prefix ``keep``)."""
        self.count("table.query")
        keys = [
            str(e["RowKey"])
            for e in self._history.query_entities(
                "PartitionKey eq @pk", parameters={"pk": table_key(instance_id)}, select=["RowKey"]
            )
        ]
        if keep is not None:
            keys = [k for k in keys if k != _SENTINEL and not k.startswith(keep)]
        self._delete_rows(instance_id, keys)

    def _delete_rows(self, instance_id: str, keys: list[str]) -> None:
        for chunk in _chunks(keys, 100):
            self.count("table.batch")
            try:
                self._history.submit_transaction(
                    [
                        ("delete", {"PartitionKey": table_key(instance_id), "RowKey": k})
                        for k in chunk
                    ]
                )
            except TableTransactionError:
                for key in chunk:  # some were gone already: one by one
                    self.count("table.delete")
                    self._history.delete_entity(table_key(instance_id), key)

    # -- orchestration work items ---------------------------------------------------------
    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        """Receive up to 32 messages per owned control queue, group them per instance.

        An instance already in a work item of this process keeps its new messages buffered
        until that item is done, so one instance is in one work item at a time.
        """
        with self._mapped_errors("lock orchestration work items"):
            self.setup()
            partitions = self._ensure_partitions(worker_id)
            self._maybe_repair()
            queues = (
                partitions.receivable()
                if partitions is not None
                else list(range(self.partition_count))
            )
            result: list[OrchestrationWorkItem] = []
            for _ in range(4):  # more rounds only while stale leftovers were all we found
                taken = self._take_ready(max_count - len(result), lock_timeout)
                if len(taken) + len(result) < max_count and queues:
                    start = self._next_queue % len(queues)
                    self._next_queue += 1
                    order = queues[start:] + queues[:start]
                    # One round trip for all of them, not one per queue.
                    receives = [self._io.submit(self._receive, q, lock_timeout) for q in order]
                    for future in receives:
                        future.result()
                    taken += self._take_ready(max_count - len(taken) - len(result), lock_timeout)
                if not taken:
                    break
                items = list(self._pool.map(self._load_item, taken))
                for item in items:
                    if item.messages:
                        result.append(item)
                    else:  # every message was a stale leftover: nothing to hand out
                        self._unlock(item, item.provider_data)
                if result:
                    break
            return result

    def _maybe_repair(self) -> None:
        """Every few lease periods the owner of queue 0 re-sends lost start messages."""
        if self._partitions is not None and not self._partitions.owns(0):
            return
        now = time.monotonic()
        interval = max(self.start_repair_after.total_seconds(), 5.0)
        if now - self._last_repair < interval:
            return
        self._last_repair = now
        try:
            self.repair_pending_starts()
        except AzureError:
            log.exception("Repairing lost start messages failed")

    def _receive(self, queue: int, lock_timeout: timedelta) -> None:
        seconds = _visibility_seconds(lock_timeout)
        self.count("queue.receive")
        messages = list(
            self._control[queue].receive_messages(
                messages_per_page=32, max_messages=32, visibility_timeout=seconds
            )
        )
        if not messages:
            return
        now = utcnow()
        expires = now + timedelta(seconds=seconds) - _MARGIN
        accepted: list[_Received] = []
        for raw in messages:
            try:
                message = OrchestrationMessage.from_json(self._decode_body(str(raw.content)))
            except Exception as exc:  # noqa: BLE001 - an undecodable message is poison
                self._poison_message(queue, raw, f"undecodable message: {exc!r}")
                continue
            dequeues = int(raw.dequeue_count or 1)
            if dequeues > self.max_dequeue_count:
                self._poison_message(
                    queue,
                    raw,
                    f"delivered {dequeues} times without being completed "
                    f"(max_dequeue_count={self.max_dequeue_count})",
                    message.instance_id,
                )
                continue
            if message.visible_at is not None and message.visible_at > expires - _MARGIN:
                self._rearm(queue, raw, message)  # a long timer's next hop
                continue
            accepted.append(
                _Received(queue, raw.id, str(raw.pop_receipt), message, dequeues, expires)
            )
        with self._mutex:
            for received in accepted:
                iid = received.message.instance_id
                self._buffer.setdefault(iid, {})[received.message_id] = received
                self._ready[iid] = None

    def _rearm(self, queue: int, raw: QueueMessage, message: OrchestrationMessage) -> None:
        self._send_orchestration_message(message)
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def _poison_message(
        self, queue: int, raw: QueueMessage, reason: str, instance_id: str = ""
    ) -> None:
        log.error("Moving control-queue message %s to the poison table: %s", raw.id, reason)
        self._store_poison(self.names.control_queue(queue), raw, reason, instance_id)
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def _store_poison(self, queue_name: str, raw: QueueMessage, reason: str, iid: str) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": "poison",
            "RowKey": str(raw.id),
            "Queue": queue_name,
            "InstanceId": iid,
            "DequeueCount": int(raw.dequeue_count or 0),
            "Reason": reason,
            "PoisonedAt": utcnow(),
        }
        put_property(entity, "Body", str(raw.content), iid or "poison", self.blobs)
        self.count("table.upsert")
        self._poison.upsert_entity(entity, mode=UpdateMode.REPLACE)
        kind = "activity" if queue_name == self.names.activity_queue else "orchestration"
        telemetry.current().dead_lettered(kind, queue_name)

    def list_poison_messages(self) -> list[dict[str, Any]]:
        """Messages moved to the poison table: id, queue, instance, dequeue count, reason."""
        self.setup()
        self.count("table.query")
        return [
            {
                "id": row["RowKey"],
                "queue": row["Queue"],
                "instance_id": row.get("InstanceId", ""),
                "dequeue_count": row.get("DequeueCount", 0),
                "reason": row["Reason"],
                "poisoned_at": row.get("PoisonedAt"),
            }
            for row in self._poison.query_entities("PartitionKey eq 'poison'")
        ]

    def replay_poison_message(self, message_id: str) -> None:
        """Put a poison message back on its queue (with a fresh dequeue count)."""
        self.setup()
        self.count("table.read")
        row = self._poison.get_entity("poison", message_id)
        body = get_property(row, "Body", self.blobs)
        assert body is not None
        self.count("queue.send")
        self._queue_service.get_queue_client(str(row["Queue"])).send_message(body, time_to_live=-1)
        self.count("table.delete")
        self._poison.delete_entity("poison", message_id)

    def _take_ready(self, max_count: int, lock_timeout: timedelta) -> list[tuple[str, _OrchLock]]:
        """Turn buffered messages of unlocked instances into locked work items."""
        taken: list[tuple[str, _OrchLock]] = []
        if max_count <= 0:
            return taken
        now = utcnow()
        with self._mutex:
            self._reclaim_expired(now)
            for instance_id in list(self._ready):
                if len(taken) >= max_count:
                    break
                lock = self._locks.get(instance_id)
                if lock is not None and lock.expires > now:
                    continue  # in a work item: its new messages wait for the next one
                entries = self._buffer.pop(instance_id, {})
                # Entries whose queue visibility lapsed are kept: we still hold their pop
                # receipts, and _extend_visibility renews them (or drops one another worker
                # received meanwhile). Dropping them would leave a gap in which the message
                # is neither here nor visible on the queue yet.
                live = entries
                # Messages due a moment from now stay buffered until their visible_at.
                later = {
                    k: r
                    for k, r in live.items()
                    if (r.message.visible_at is not None and r.message.visible_at > now)
                    or (r.not_before is not None and r.not_before > now)
                }
                # Messages waiting for the instance's next start go out with it at once.
                start_ready = any(
                    isinstance(r.message.event, ExecutionStarted)
                    for k, r in live.items()
                    if k not in later
                )
                later.update(
                    (k, r)
                    for k, r in live.items()
                    if r.start_wait_until is not None
                    and r.start_wait_until > now
                    and not start_ready
                )
                received = [r for k, r in live.items() if k not in later]
                if later:
                    self._buffer[instance_id] = later
                else:
                    del self._ready[instance_id]
                if not received:
                    continue  # lapsed ones come back from the queue; later ones wait
                received.sort(key=lambda r: r.message_id)
                new_lock = _OrchLock(
                    token=new_lock_token(),
                    # Until _load_item has read the instance: then the lock's own timeout.
                    expires=min(r.expires for r in received),
                    received=received,
                    timeout=lock_timeout,
                )
                self._locks[instance_id] = new_lock
                for r in received:
                    self._in_flight[r.queue] += 1
                taken.append((instance_id, new_lock))
        return taken

    def _reclaim_expired(self, now: datetime) -> None:
        """Expired locks whose messages we still hold: their messages are ready again."""
        for instance_id, lock in list(self._locks.items()):
            if lock.expires > now or lock.claimed:
                continue
            del self._locks[instance_id]
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:
                self._in_flight[r.queue] -= 1
                entries.setdefault(r.message_id, r)
            if entries:
                self._ready[instance_id] = None
            else:
                del self._buffer[instance_id]

    def _load_item(self, pair: tuple[str, _OrchLock]) -> OrchestrationWorkItem:
        """Read the instance row and the history sentinel; repair a stale row."""
        instance_id, lock = pair
        self._extend_visibility(lock)
        with self._mutex:
            cached = self._rows.get(instance_id)
        bypassed: _CachedRow | None = None
        if cached is not None and self._waits_for_start(cached.record, lock.received):
            # Between two executions as of our own last write: another worker may have
            # started the next one since, which the cache can't tell. Read to decide.
            bypassed, cached = cached, None
        sentinel: _Sentinel | None = None
        if cached is not None:
            # This process wrote the row and the sentinel last: no reads. If anyone else
            # wrote since, this step's ETag-conditional writes fail (WorkItemLockLost), the
            # cache entry is dropped and the retry reads both.
            record: InstanceRecord | None = cached.record
            lock.instance_etag = cached.etag
            lock.version = cached.version
            lock.inbox_cutoff = cached.inbox_cutoff
            lock.sentinel_etag = cached.sentinel_etag
            lock.sentinel_execution = cached.sentinel_execution
            lock.sentinel_size = cached.sentinel_size
        else:
            sentinel = self._read_sentinel(instance_id)
            row = self._read_row(instance_id)
            record = None if row is None else self._record_from(instance_id, row)
            lock.instance_etag = None if row is None else _etag(row)
            lock.version = 0 if row is None else int(row.get("Version", "0"))
            lock.inbox_cutoff = None if row is None else row.get("InboxCutoff")
            if bypassed is not None and bypassed.etag != lock.instance_etag:
                self._cache_row(instance_id, None)  # someone else wrote the row since
        if sentinel is not None:
            lock.sentinel_etag = sentinel.etag
            lock.sentinel_execution = sentinel.execution_id
            lock.sentinel_size = sentinel.history_size
            if sentinel.version > lock.version and "Name" in sentinel.entity:
                # The last checkpoint wrote its history but not the instance row: the
                # sentinel holds the record that history implies. Repair the row now.
                record = self._record_from(instance_id, sentinel.entity)
                self._repair_row(instance_id, lock, sentinel)
        stale = self._stale_messages(instance_id, record, sentinel, lock)
        if stale:
            lock.received = [r for r in lock.received if r not in stale]
            for future in [self._io.submit(self._delete_received, r) for r in stale]:
                future.result()
            with self._mutex:
                for r in stale:
                    self._in_flight[r.queue] -= 1
        if self._waits_for_start(record, lock.received):
            self._hold_for_start(instance_id, lock)  # an empty item: the caller unlocks it
        with self._mutex:
            lock.expires = min([utcnow() + lock.timeout] + [r.expires for r in lock.received])
        return OrchestrationWorkItem(
            instance_id=instance_id,
            messages=[r.message for r in lock.received],
            instance=record,
            lock_token=lock.token,
            locked_until=lock.expires,
            # Queue dequeue counts are per message, not the contract's per-item delivery count
            # (they never restart after a completed step), so the core's poison policy would
            # charge work items for earlier deliveries: report none, and let this provider's
            # own max_dequeue_count move poison messages aside (issues #15 and #17).
            dequeue_count=1,
            provider_data=lock,
        )

    @staticmethod
    def _waits_for_start(record: InstanceRecord | None, received: list[_Received]) -> bool:
        """Whether these messages must wait for the instance's next execution to start.

        An instance that continued as new has sent its next ``ExecutionStarted`` (outbound
        messages are written before the row), but the control queue may deliver other
        messages before it: a terminate or an event sent meanwhile, or one the core carried
        over from the continue-as-new step. The core applies those only together with that
        start or after it; handed out alone against the ``CONTINUED_AS_NEW`` record, they
        would be consumed and dropped. (Transactional providers always show both at once.)
        """
        if (
            record is None
            or record.runtime_status is not OrchestrationStatus.CONTINUED_AS_NEW
            or not received
        ):
            return False
        return not any(
            isinstance(r.message.event, ExecutionStarted)
            and r.message.event.execution_id != record.execution_id
            for r in received
        )

    def _hold_for_start(self, instance_id: str, lock: _OrchLock) -> None:
        """Keep the lock's messages buffered until the next start arrives (or a while passed).

        They stay invisible on the queue (each look extends them), go out together with the
        start as soon as it is buffered too, and are looked at again after a short, growing
        delay in case another worker took the start meanwhile.
        """
        now = utcnow()
        with self._mutex:
            if self._locks.get(instance_id) is not lock:
                lock.received = []  # expired and reclaimed meanwhile: buffered already
                return
            # Looked at again well within the lock timeout, so each look can still extend
            # their queue visibility (they never reappear there while we wait).
            cap = max(_START_WAIT, min(_START_WAIT_MAX, lock.timeout / 2))
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:
                r.start_waits += 1
                wait = min(_START_WAIT * 2 ** min(r.start_waits - 1, 10), cap)
                r.start_wait_until = now + wait
                self._in_flight[r.queue] -= 1
                entries.setdefault(r.message_id, r)
            self._ready[instance_id] = None
            waits = max(r.start_waits for r in lock.received)
            lock.received = []
        if waits == 30:
            log.warning(
                "Messages for '%s' have waited a while for its next execution to start "
                "(it continued as new); still holding them",
                instance_id,
            )

    def _extend_visibility(self, lock: _OrchLock) -> None:
        """Buffered messages whose queue visibility ends before the new lock: extend it."""
        needed = utcnow() + lock.timeout + _MARGIN
        short = [r for r in lock.received if r.expires < needed]
        if not short:
            return
        seconds = _visibility_seconds(lock.timeout)
        lost: list[_Received] = []
        for r in short:
            self.count("queue.update")
            try:
                receipt = self._control[r.queue].update_message(
                    r.message_id, pop_receipt=r.pop_receipt, visibility_timeout=seconds
                )
            except HttpResponseError:  # 404 (or 400: stale pop receipt)
                lost.append(r)  # taken by someone else meanwhile: not ours to hand out
                continue
            r.pop_receipt = str(receipt.pop_receipt)
            r.expires = utcnow() + timedelta(seconds=seconds) - _MARGIN
        if lost:
            lock.received = [r for r in lock.received if r not in lost]
            with self._mutex:
                for r in lost:
                    self._in_flight[r.queue] -= 1

    def _stale_messages(
        self,
        instance_id: str,
        record: InstanceRecord | None,
        sentinel: _Sentinel | None,
        lock: _OrchLock,
    ) -> list[_Received]:
        """Messages left over from a purged or replaced instance (queues can't delete them).

        A purge leaves a tombstone (``DeadAt``) in the sentinel, a replace an ``InboxCutoff``
        on the row: messages *created before* that moment, and not addressed to the current
        execution, are deleted instead of handed out. Messages sent afterwards — even to an
        instance that doesn't exist (yet) — are always delivered.
        """
        cutoff = lock.inbox_cutoff
        if record is None and sentinel is not None:
            dead_at = sentinel.entity.get("DeadAt")
            cutoff = dead_at if isinstance(dead_at, datetime) else None
        if cutoff is None:
            return []
        stale: list[_Received] = []
        for r in lock.received:
            message = r.message
            if record is not None and message.execution_id == record.execution_id:
                continue
            if message.event.timestamp < cutoff:
                stale.append(r)
        return stale

    def _note_alive(self, record: InstanceRecord) -> None:
        with self._mutex:
            key = (record.instance_id, record.execution_id)
            if record.runtime_status.is_terminal:
                self._alive.pop(key, None)
                return
            self._alive[key] = None
            self._alive.move_to_end(key)
            while len(self._alive) > 10_000:
                self._alive.popitem(last=False)

    def _take_locks_away(self, instance_id: str) -> None:
        """A replace or purge takes the instance from a work item of this process.

        (Across processes, the sentinel tombstone makes such a work item's history write
        fail instead.)
        """
        with self._mutex:
            lock = self._locks.get(instance_id)
            if lock is None or lock.claimed:
                return
            del self._locks[instance_id]
            for r in lock.received:
                self._in_flight[r.queue] -= 1
            entries = self._buffer.setdefault(instance_id, {})
            for r in lock.received:  # leftovers: the stale-message rule deletes them
                entries.setdefault(r.message_id, r)
            self._ready[instance_id] = None

    def _forget_alive(self, instance_id: str) -> None:
        self._cache_row(instance_id, None)
        with self._mutex:
            for key in [k for k in self._alive if k[0] == instance_id]:
                del self._alive[key]

    def _dead_executions(self, tasks: list[ActivityTask]) -> set[tuple[str, str]]:
        """(instance, execution) pairs among ``tasks`` that were purged or replaced.

        Read from the history sentinel's tombstone, except for executions this process
        itself checkpointed as running (they can't have been purged since without this
        process's own purge having forgotten them).
        """
        with self._mutex:
            unknown = {
                (t.instance_id, t.execution_id)
                for t in tasks
                if (t.instance_id, t.execution_id) not in self._alive
            }
        dead: set[tuple[str, str]] = set()
        for instance_id, execution_id in unknown:
            sentinel = self._read_sentinel(instance_id)
            if sentinel is not None and sentinel.entity.get("DeadExecution") == execution_id:
                dead.add((instance_id, execution_id))
        return dead

    def _write_tombstone(self, instance_id: str, execution_id: str) -> None:
        """Mark the instance's last execution dead (purge, replace): its tasks are dropped."""
        self.count("table.upsert")
        self._history.upsert_entity(
            {
                "PartitionKey": table_key(instance_id),
                "RowKey": _SENTINEL,
                "ExecutionId": "",
                "HistorySize": 0,
                "Version": "0",
                "DeadExecution": execution_id,
                "DeadAt": utcnow(),
            },
            mode=UpdateMode.REPLACE,
        )

    def _repair_row(self, instance_id: str, lock: _OrchLock, sentinel: _Sentinel) -> None:
        entity = {k: v for k, v in sentinel.entity.items() if k not in ("HistorySize",)}
        entity["HistorySize"] = sentinel.history_size
        entity["PartitionKey"] = table_key(instance_id)
        entity["RowKey"] = _SENTINEL
        log.warning("Repairing the stale instance row of '%s' from its history", instance_id)
        try:
            if lock.instance_etag is None:
                self.count("table.insert")
                meta = self._instances.create_entity(entity)
            else:
                self.count("table.update")
                meta = self._instances.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=lock.instance_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return  # someone else wrote it; the checkpoint's conditional write decides
        lock.instance_etag = str(meta["etag"])
        lock.version = sentinel.version

    def _held(self, item: OrchestrationWorkItem, claim: bool = False) -> _OrchLock:
        lock = item.provider_data
        with self._mutex:
            current = self._locks.get(item.instance_id)
            if (
                not isinstance(lock, _OrchLock)
                or current is not lock
                or lock.claimed
                or lock.token != item.lock_token
                or not lock.untaken(utcnow())
            ):
                raise WorkItemLockLost(f"Lock on instance '{item.instance_id}' was lost")
            lock.claimed = claim
        return lock

    def _unlock(self, item: OrchestrationWorkItem, lock: _OrchLock) -> None:
        with self._mutex:
            if self._locks.get(item.instance_id) is lock:
                del self._locks[item.instance_id]
                for r in lock.received:
                    self._in_flight[r.queue] -= 1
            if item.instance_id in self._buffer:
                self._ready[item.instance_id] = None

    def _cache_row(self, instance_id: str, row: _CachedRow | None) -> None:
        """Remember (or, with ``None``, forget) the instance row as this process wrote it."""
        with self._mutex:
            if row is None:
                self._rows.pop(instance_id, None)
                return
            self._rows[instance_id] = row
            self._rows.move_to_end(instance_id)
            while len(self._rows) > 10_000:
                self._rows.popitem(last=False)

    def _release_lost(self, item: OrchestrationWorkItem, lock: _OrchLock) -> WorkItemLockLost:
        """Another writer owns the instance: make our messages visible again at once."""
        self._cache_row(item.instance_id, None)
        for received in lock.received:
            with contextlib.suppress(AzureError):
                self._set_visibility(received, 0)
        self._unlock(item, lock)
        return WorkItemLockLost(
            f"Instance '{item.instance_id}' was changed by another worker; step dropped"
        )

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        """Write the checkpoint in the crash-safe order (see ``README.md``).

        1. outbound messages and activity tasks; 2. history rows in batches of at most 99
        rows plus the sentinel, each conditional on the sentinel's ETag; 3. the instance row,
        ETag-conditional; 4. delete the consumed messages.
        """
        lock = self._held(item, claim=True)
        try:
            with self._mapped_errors("complete an orchestration work item"):
                self._complete(item, lock, checkpoint)
        except WorkItemLockLost:
            # some of it may be written (see _complete)
            self.changes.notify(work=Work.of_checkpoints([checkpoint]))
            raise
        except Exception:
            self._cache_row(item.instance_id, None)
            lock.claimed = False  # still ours: the caller may abandon it
            raise
        self.changes.notify(work=Work.of_checkpoints([checkpoint]))

    def _hide_for_commit(self, item: OrchestrationWorkItem, lock: _OrchLock) -> None:
        now = utcnow()
        short = [r for r in lock.received if r.expires < now + _COMMIT_WINDOW]
        if not short:
            return
        seconds = max(_visibility_seconds(lock.timeout), math.ceil(_COMMIT_WINDOW.total_seconds()))
        for r in short:
            self.count("queue.update")
            try:
                receipt = self._control[r.queue].update_message(
                    r.message_id, pop_receipt=r.pop_receipt, visibility_timeout=seconds
                )
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise self._release_lost(item, lock) from exc
            r.pop_receipt = str(receipt.pop_receipt)
            r.expires = utcnow() + timedelta(seconds=seconds) - _MARGIN

    def _complete(
        self, item: OrchestrationWorkItem, lock: _OrchLock, checkpoint: OrchestrationCheckpoint
    ) -> None:
        instance_id = item.instance_id
        # 0. Messages whose queue visibility ends soon are hidden for the commit first, so no
        # other receiver gets them while it is written; one already taken loses the lock here,
        # before anything is written.
        self._hide_for_commit(item, lock)
        if checkpoint.instance is not None:
            self._note_alive(checkpoint.instance)
        # 1. Outbound messages: a crash after this duplicates them, never loses them.
        futures = [self._io.submit(self._send_activity, t) for t in checkpoint.activity_tasks]
        futures += [
            self._io.submit(self._send_orchestration_message, m) for m in checkpoint.messages
        ]
        for future in futures:
            future.result()
        # 2. History rows, each batch guarded by the sentinel's ETag.
        version = _version(lock.version)
        old_execution: str | None = None
        old_size = 0
        if checkpoint.new_history or checkpoint.reset_history:
            record = checkpoint.instance
            execution = record.execution_id if record is not None else lock.sentinel_execution
            assert execution is not None
            fresh = (
                checkpoint.reset_history
                or lock.sentinel_etag is None
                or lock.sentinel_execution != execution
            )
            base = 0 if fresh else lock.sentinel_size
            if fresh and lock.sentinel_execution and lock.sentinel_execution != execution:
                old_execution, old_size = lock.sentinel_execution, lock.sentinel_size
            rows: list[dict[str, Any]] = []
            for offset, event in enumerate(checkpoint.new_history):
                row: dict[str, Any] = {
                    "PartitionKey": table_key(instance_id),
                    "RowKey": f"{execution}.{base + offset:08d}",
                    "EventType": event.event_type.value,
                }
                put_property(row, "Event", history.dumps(event), instance_id, self.blobs)
                rows.append(row)
            chunks = list(_chunks(rows, HISTORY_BATCH_ROWS)) or [[]]
            etag = lock.sentinel_etag
            for number, chunk in enumerate(chunks):
                last = number == len(chunks) - 1
                sentinel: dict[str, Any] = {
                    "PartitionKey": table_key(instance_id),
                    "RowKey": _SENTINEL,
                }
                mode = UpdateMode.REPLACE
                if last:
                    if record is not None:
                        sentinel.update(self._record_properties(record, version))
                        if lock.inbox_cutoff is not None:
                            sentinel["InboxCutoff"] = lock.inbox_cutoff
                    else:
                        sentinel["Version"] = str(lock.version)
                    sentinel["ExecutionId"] = execution
                    sentinel["HistorySize"] = base + len(rows)
                else:
                    # Earlier batches only check and bump the sentinel: their rows stay
                    # invisible (beyond HistorySize) until the last batch commits.
                    sentinel["Touched"] = utcnow()
                    mode = UpdateMode.MERGE
                if etag is None:
                    op: Any = ("create", sentinel)
                else:
                    op = (
                        "update",
                        sentinel,
                        {
                            "mode": mode,
                            "etag": etag,
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                operations = [op] + [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in chunk]
                self.count("table.batch")
                try:
                    result = self._history.submit_transaction(operations)
                except TableTransactionError as exc:
                    if exc.status_code in (404, 409, 412):
                        raise self._release_lost(item, lock) from exc
                    raise
                etag = str(result[0]["etag"])
            lock.sentinel_etag = etag
            lock.sentinel_execution = execution
            lock.sentinel_size = base + len(rows)
        # 3. The instance row, conditional on what we read at lock time.
        if checkpoint.instance is not None:
            entity: dict[str, Any] = {"PartitionKey": table_key(instance_id), "RowKey": _SENTINEL}
            entity.update(self._record_properties(checkpoint.instance, version))
            if lock.inbox_cutoff is not None:
                entity["InboxCutoff"] = lock.inbox_cutoff
            try:
                if lock.instance_etag is None:
                    self.count("table.insert")
                    meta = self._instances.create_entity(entity)
                else:
                    self.count("table.update")
                    meta = self._instances.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=lock.instance_etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
                raise self._release_lost(item, lock) from exc
            self._cache_row(
                instance_id,
                _CachedRow(
                    version,
                    str(meta["etag"]),
                    checkpoint.instance,
                    lock.inbox_cutoff,
                    lock.sentinel_etag,
                    lock.sentinel_execution,
                    lock.sentinel_size,
                ),
            )
        # 4. Consume the messages, last. (One another receiver took anyway, the commit having
        # outlasted even the extended visibility, is delivered again: the core drops it.)
        deletes = [self._io.submit(self._delete_received, r) for r in lock.received]
        for deleted in deletes:
            deleted.result()
        self._unlock(item, lock)
        # Housekeeping: the previous execution's rows (continue-as-new) are garbage now.
        if old_execution is not None and old_size:
            keys = [f"{old_execution}.{i:08d}" for i in range(old_size)]
            try:
                self._delete_rows(instance_id, keys)
            except AzureError:
                log.warning("Deleting old history rows of '%s' failed", instance_id)

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        """Complete the items concurrently (each one is independent on this provider)."""

        def one(pair: tuple[OrchestrationWorkItem, OrchestrationCheckpoint]) -> Exception | None:
            try:
                self.complete_orchestration_work_item(*pair)
            except Exception as exc:  # noqa: BLE001 - reported per item
                return exc
            return None

        if len(batch) <= 1:
            return [one(pair) for pair in batch]
        return list(self._pool.map(one, batch))

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        lock = self._held(item, claim=True)
        seconds = 0 if not delay else math.ceil(delay.total_seconds())
        kept: list[_Received] = []
        for received in lock.received:
            try:
                self._set_visibility(received, seconds)
            except AzureError:
                # The store is unreachable: we still hold the message (the queue hides it),
                # so this process hands it out again itself after the delay.
                received.not_before = utcnow() + (delay or timedelta(0))
                kept.append(received)
        self._unlock(item, lock)
        if kept:
            with self._mutex:
                entries = self._buffer.setdefault(item.instance_id, {})
                for received in kept:
                    entries.setdefault(received.message_id, received)
                self._ready[item.instance_id] = None
        self.changes.notify(work=Work.TIMERS if delay else Work.ORCHESTRATIONS)

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        lock = self._held(item)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("renew an orchestration lock"):
            for received in lock.received:
                self.count("queue.update")
                try:
                    receipt = self._control[received.queue].update_message(
                        received.message_id,
                        pop_receipt=received.pop_receipt,
                        visibility_timeout=seconds,
                    )
                except HttpResponseError as exc:
                    if not lost_message(exc):
                        raise
                    raise self._release_lost(item, lock) from exc
                received.pop_receipt = str(receipt.pop_receipt)
        now = utcnow()
        for received in lock.received:
            received.expires = now + timedelta(seconds=seconds) - _MARGIN
        lock.expires = now + lock_timeout
        item.locked_until = lock.expires

    # -- activity work items --------------------------------------------------------------
    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        """Receive up to ``min(max_count, 32)`` activity tasks (one storage call).

        Tasks whose (exact, in-process) lock expired while the queue still hides them are
        handed out again first.
        """
        now = utcnow()
        items: list[ActivityWorkItem] = []
        expired: list[_ActivityLock] = []
        with self._mutex:
            for key, old in list(self._activity_locks.items()):
                if old.done or old.queue_expires <= now + _MARGIN:
                    del self._activity_locks[key]
                elif old.expires <= now and len(expired) < max_count:
                    old.done = True
                    old.dequeue_count += 1
                    expired.append(old)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("lock activity work items"):
            for old in expired:
                # The queue hides it for the old lock's timeout only: extend that to the
                # new lock's, else the new lock would end with the old one.
                self.count("queue.update")
                try:
                    receipt = self._activity_queue.update_message(
                        old.message_id, pop_receipt=old.pop_receipt, visibility_timeout=seconds
                    )
                except ResourceNotFoundError:
                    continue  # another worker received it meanwhile
                now = utcnow()
                old.pop_receipt = str(receipt.pop_receipt)
                old.queue_expires = now + timedelta(seconds=seconds) - _MARGIN
                with self._mutex:
                    items.append(self._activity_item(old, lock_timeout, now, old.pop_receipt))
        count = min(32, max_count - len(items))
        if count <= 0:
            return items
        with self._mapped_errors("lock activity work items"):
            self.setup()
            self.count("queue.receive")
            messages = list(
                self._activity_queue.receive_messages(
                    messages_per_page=count, max_messages=count, visibility_timeout=seconds
                )
            )
            now = utcnow()
            queue_expires = now + timedelta(seconds=seconds) - _MARGIN
            fresh: list[tuple[QueueMessage, ActivityTask, int]] = []
            for raw in messages:
                try:
                    task = ActivityTask.from_json(self._decode_body(str(raw.content)))
                except Exception as exc:  # noqa: BLE001 - an undecodable message is poison
                    self._poison_activity(raw, f"undecodable message: {exc!r}", None)
                    continue
                dequeues = int(raw.dequeue_count or 1)
                if dequeues > self.max_dequeue_count:
                    self._poison_activity(
                        raw,
                        f"delivered {dequeues} times without being completed "
                        f"(max_dequeue_count={self.max_dequeue_count})",
                        task,
                    )
                    continue
                fresh.append((raw, task, dequeues))
            dead = self._dead_executions([task for _, task, _ in fresh])
            for raw, task, dequeues in fresh:
                if (task.instance_id, task.execution_id) in dead:
                    self.count("queue.delete")  # its instance was purged or replaced
                    with ignoring_lost_message():
                        self._activity_queue.delete_message(raw.id, pop_receipt=raw.pop_receipt)
                    continue
                held = _ActivityLock(
                    str(raw.id), str(raw.pop_receipt), now, queue_expires, task, dequeues
                )
                with self._mutex:
                    items.append(self._activity_item(held, lock_timeout, now, held.pop_receipt))
            return items

    def _activity_item(
        self, held: _ActivityLock, lock_timeout: timedelta, now: datetime, receipt: str
    ) -> ActivityWorkItem:
        lock = _ActivityLock(
            held.message_id,
            receipt,
            min(now + lock_timeout, held.queue_expires),
            held.queue_expires,
            held.task,
            held.dequeue_count,
        )
        self._activity_locks[lock.message_id] = lock
        return ActivityWorkItem(
            task=lock.task,
            lock_token=new_lock_token(),
            locked_until=lock.expires,
            dequeue_count=1,  # see lock_next_orchestration_work_items: max_dequeue_count applies
            provider_data=lock,
        )

    def _poison_activity(self, raw: QueueMessage, reason: str, task: ActivityTask | None) -> None:
        """Park the task and fail it in its orchestration, so nothing waits forever."""
        log.error("Moving activity message %s to the poison table: %s", raw.id, reason)
        self._store_poison(self.names.activity_queue, raw, reason, task.instance_id if task else "")
        if task is not None:
            failure = FailureDetails("PoisonMessageError", f"Activity {task.name!r}: {reason}")
            self._send_orchestration_message(
                OrchestrationMessage(
                    instance_id=task.instance_id,
                    execution_id=task.execution_id,
                    event=TaskFailed(task_scheduled_id=task.task_id, failure=failure),
                )
            )
        self.count("queue.delete")
        with ignoring_lost_message():
            self._activity_queue.delete_message(raw.id, pop_receipt=raw.pop_receipt)

    def _held_activity(self, item: ActivityWorkItem, claim: bool = False) -> _ActivityLock:
        lock = item.provider_data
        with self._mutex:
            current = self._activity_locks.get(getattr(lock, "message_id", ""))
            if (
                not isinstance(lock, _ActivityLock)
                or current is not lock
                or lock.done
                or lock.queue_expires <= utcnow()
            ):
                raise WorkItemLockLost(
                    f"Lock on activity task {item.task.name!r} of "
                    f"'{item.task.instance_id}' was lost"
                )
            lock.done = claim
        return lock

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        """Enqueue the result, then delete the task (a crash between: it runs again)."""
        lock = self._held_activity(item, claim=True)
        with self._mapped_errors("complete an activity work item"):
            self._send_orchestration_message(result)
            self.count("queue.delete")
            try:
                self._activity_queue.delete_message(lock.message_id, pop_receipt=lock.pop_receipt)
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise WorkItemLockLost(
                    f"Activity task {item.task.name!r} was taken by another worker"
                ) from exc
            finally:
                lock.done = True
        self.changes.notify(work=Work.of_messages([result]))

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        def one(pair: tuple[ActivityWorkItem, OrchestrationMessage]) -> Exception | None:
            try:
                self.complete_activity_work_item(*pair)
            except Exception as exc:  # noqa: BLE001 - reported per item
                return exc
            return None

        if len(batch) <= 1:
            return [one(pair) for pair in batch]
        return list(self._pool.map(one, batch))

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        lock = self._held_activity(item, claim=True)
        seconds = 0 if not delay else math.ceil(delay.total_seconds())
        with self._mapped_errors("abandon an activity work item"):
            self.count("queue.update")
            try:
                self._activity_queue.update_message(
                    lock.message_id, pop_receipt=lock.pop_receipt, visibility_timeout=seconds
                )
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                raise WorkItemLockLost("Activity task was taken by another worker") from exc
            finally:
                lock.done = True
        self.changes.notify(work=Work.ACTIVITIES)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        lock = self._held_activity(item)
        seconds = _visibility_seconds(lock_timeout)
        with self._mapped_errors("renew an activity lock"):
            self.count("queue.update")
            try:
                receipt = self._activity_queue.update_message(
                    lock.message_id, pop_receipt=lock.pop_receipt, visibility_timeout=seconds
                )
            except HttpResponseError as exc:
                if not lost_message(exc):
                    raise
                lock.done = True
                raise WorkItemLockLost("Activity task was taken by another worker") from exc
        now = utcnow()
        lock.pop_receipt = str(receipt.pop_receipt)
        lock.queue_expires = now + timedelta(seconds=seconds) - _MARGIN
        lock.expires = now + lock_timeout
        item.locked_until = lock.expires

    # -- state transfer (see ._transfer) --------------------------------------------------
    def export_state(self) -> Iterator[InstanceSnapshot]:
        with self._mapped_errors("export the task hub"):
            yield from _transfer.export_state(self)

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        with self._mapped_errors("import an instance"):
            _transfer.import_snapshot(self, snapshot)

    def active_workers(self) -> list[str]:
        with self._mapped_errors("list the running workers"):
            return _transfer.active_workers(self)

    # -- monitoring -----------------------------------------------------------------------
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

    # -- leases (see ._leases) ------------------------------------------------------------
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
