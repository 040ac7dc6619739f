"""Shared state of the Azure provider: clients, pools, counters and in-memory caches."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
from azure.core.exceptions import AzureError, ResourceExistsError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient
from ostinato.errors import ConfigurationError, ProviderError
from ostinato.provider import InstanceRecord, StorageProvider

from ostinato_azure._names import MAX_PARTITIONS, HubNames, validate_task_hub
from ostinato_azure._pacing import ReceivePacer
from ostinato_azure._partitions import PartitionManager
from ostinato_azure._payloads import BlobStore
from ostinato_azure._state import _ActivityLock, _CachedRow, _OrchLock, _Received

log = logging.getLogger("ostinato.azure")

T = TypeVar("T")

#: Rows per table transaction, besides the sentinel (Azure and Azurite: at most 100 ops).
HISTORY_BATCH_ROWS = 99
_SENTINEL = ""
#: Safety margin against the queue's own clock and request latency.
_MARGIN = timedelta(milliseconds=200)
#: A task or result is handed over in-process only while its queue message stays hidden at
#: least this long; a task is sent held only if its visibility is at least twice this.
_HAND_OVER_WINDOW = timedelta(seconds=2)
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
    The extra fifth lets received messages wait in the buffer (their instance busy) briefly
    without having to be extended before they form a work item; it is kept small because it
    is also how long a killed worker's messages stay hidden (19 s for the default 15 s lock).
    """
    return max(1, math.ceil(lock_timeout.total_seconds() * 1.2 + 1))


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


class ProviderBase(StorageProvider):
    """The hub's clients, thread pools, operation counters and in-memory state."""

    def __init__(
        self,
        connection_string: str,
        task_hub: str = "ostinato",
        *,
        partition_count: int = 4,
        lease_duration: float = 12.0,
        partition_leases: bool = True,
        worker_id: str | None = None,
        start_repair_after: float = 30.0,
        lost_work_repair_after: float = 300.0,
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
        self.names = HubNames(validate_task_hub(task_hub), partition_count)
        self.task_hub = task_hub
        self.partition_count = partition_count
        self.lease_duration = timedelta(seconds=lease_duration)
        self.partition_leases = partition_leases
        self.start_repair_after = timedelta(seconds=start_repair_after)
        self.lost_work_repair_after = timedelta(seconds=lost_work_repair_after)
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
        #: Activity tasks this process sent invisible and hands to its own activity worker
        #: without a receive (see ``_queues.QueueOps._hold_task``).
        self._local_tasks: deque[_ActivityLock] = deque()
        #: When an activity worker of this process last asked for work, and the queue
        #: visibility its lock timeout needs.
        self._activity_polled = -math.inf
        self._activity_seconds = _visibility_seconds(timedelta(seconds=15))
        #: How often the control queues and the work-item queue are received from while
        #: in-process hand-overs keep this process busy.
        self._control_pacer = ReceivePacer()
        self._activity_pacer = ReceivePacer()
        self._next_queue = 0
        self._partitions: PartitionManager | None = None
        #: Workers taking orchestration work through this provider (see worker_stopped).
        self._workers: set[str] = set()
        self._set_up = False
        self._last_repair = 0.0

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

    def _each(
        self, complete: Callable[..., None], batch: Sequence[tuple[Any, Any]]
    ) -> list[Exception | None]:
        """Run ``complete(*pair)`` for every pair, concurrently when there are several (each
        item is independent on this provider); each item's exception or ``None``."""

        def one(pair: tuple[Any, Any]) -> Exception | None:
            try:
                complete(*pair)
            except Exception as exc:  # noqa: BLE001 - reported per item
                return exc
            return None

        if len(batch) <= 1:
            return [one(pair) for pair in batch]
        return list(self._pool.map(one, batch))

    def count(self, kind: str, n: int = 1) -> None:
        """Record ``n`` storage operations of ``kind`` (see :attr:`operations`)."""
        with self._ops_mutex:
            self.operations[kind] += n

    def reset_operation_counts(self) -> None:
        with self._ops_mutex:
            self.operations.clear()

    def _queue_index(self, instance_id: str) -> int:
        return zlib.crc32(instance_id.encode("utf-8")) % self.partition_count

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

        def legacy() -> bool:
            self.count("table.query")
            name = self.names.legacy_history_table
            found = self._table_service.query_tables(
                "TableName eq @name", parameters={"name": name}
            )
            return any(True for _ in found)

        with self._mapped_errors("create the task hub"):
            old_layout = self._io.submit(legacy)
            futures = [self._io.submit(table, name) for name in self.names.tables]
            futures += [self._io.submit(queue, q) for q in [*self._control, self._activity_queue]]
            futures.append(self._io.submit(container))
            for future in futures:  # all at once: a new hub is ready in one round trip
                future.result()
            if old_layout.result():
                raise ConfigurationError(
                    f"Task hub {self.task_hub!r} was created by an earlier ostinato-azure, which "
                    f"kept histories in a separate table ({self.names.legacy_history_table}); "
                    "this version keeps each history in its instance's partition and does not "
                    "read that layout. Drain it with the earlier version, or move its instances: "
                    "`ostinato export --to FILE.jsonl` with the earlier version, then "
                    "`ostinato import FILE.jsonl` into a new task hub with this one."
                )
        self._set_up = True

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

    def _forget_alive(self, instance_id: str) -> None:
        self._cache_row(instance_id, None)
        with self._mutex:
            for key in [k for k in self._alive if k[0] == instance_id]:
                del self._alive[key]
