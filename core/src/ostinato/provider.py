"""The storage-provider contract.

Providers are dumb, durable and concurrent; the core owns meaning. A provider stores and moves
opaque, versioned records (instance records, history events, messages, activity tasks); the
core decides what they mean, deduplicates and replays. Every method is blocking and must be
safe to call from several threads at once; the worker calls them from a thread pool.

Guarantees every provider gives (the conformance suite checks each one):

* **At-least-once delivery.** Every message and activity task written is handed out in a work
  item until a ``complete_*`` call that was given it succeeds. Abandoning, letting a lock
  expire, or crashing at any point hands it out again. Nothing is ever lost.
* **Exactly-once state changes.** ``complete_orchestration_work_item`` applies the whole
  checkpoint and consumes exactly the messages of the work item, or (raising) nothing of it.
  Non-transactional providers may leave a checkpoint half-written when they crash, but only in
  an order whose redelivery the core's deduplication turns into the same final result
  (see ``ProviderCapabilities.transactional_checkpoints``).
* **One owner.** An instance is locked by at most one work item at a time, and messages that
  arrive after the lock was taken are not part of it. Completing, abandoning or renewing a work
  item whose lock was lost (expired and taken by another worker, or already completed) raises
  :class:`~ostinato.errors.WorkItemLockLost` and changes nothing.
* **Timers never fire early.** A message with ``visible_at`` is not handed out before then.
* **Atomic create.** ``create_instance`` checks the reuse-id policy and writes the instance in
  one atomic write: N concurrent creates of one id produce one instance and N-1
  :class:`~ostinato.errors.InstanceAlreadyExistsError`.
* **Purge removes everything** of an instance: record, history, inbox, activity tasks and
  dead letters.
* Payloads of any size up to ``ProviderCapabilities.max_payload_bytes`` round-trip unchanged.
* **Delivery counts.** Every work item carries ``dequeue_count``: how many times it has been
  handed out, this time included, without being completed. It is per item (an activity task;
  an instance's messages since its last completed step), never per batch: a lock
  expiry adds one at the next hand-out (a crash is counted), abandoning gives the delivery back
  (the next hand-out has the same count), a completion starts the instance's count again. The
  core's poison policy (``max_delivery_attempts``) reads it; providers apply no policy.
* **Dead letters.** A stored record the provider cannot decode is moved aside, as it was
  stored, into the provider's dead-letter store, never dropped nor handed out again: an inbox
  message found undecodable while locking is named in the work item
  (``OrchestrationWorkItem.dead_letters``, not in ``messages``) and moved by the same atomic
  write that completes the item (so a crash in between loses nothing); an instance's history
  and an activity task when the core asks (:meth:`StorageProvider.dead_letter_history`,
  :meth:`StorageProvider.dead_letter_activity_task`). Dead letters are listed, shown, put back
  (``retry``) and deleted through the provider; purging an instance deletes its dead letters.
* **Eager activities** (``ProviderCapabilities.eager_activities``).
  :meth:`StorageProvider.complete_and_claim_activities` locks some of the activity tasks a
  commit enqueues for the committing worker, in the same atomic write. A task so claimed is
  a first delivery (``dequeue_count`` 1) under an ordinary lock: never handed out by
  ``lock_next_activity_work_items`` while the lock holds, handed out again once it expires,
  completed, renewed and abandoned like any other. Tasks of an item whose completion failed
  are neither enqueued nor claimed.
* **Eager orchestrations** (``ProviderCapabilities.eager_orchestrations``).
  :meth:`StorageProvider.complete_activities_and_claim` locks instances the activity results
  it enqueues go to, for the committing worker, in the same atomic write: only instances no
  one holds, each handed out exactly as ``lock_next_orchestration_work_items`` would hand it
  out (every visible message, the delivery counted), under an ordinary lock.
* **Eager steps** (``ProviderCapabilities.eager_steps``).
  :meth:`StorageProvider.complete_activities_and_steps` commits an activity's result
  together with the step the worker computed from it while no one held the instance: in one
  atomic write it completes the task and either applies the step in place of enqueueing the
  result (only if the step still stands: the instance's record is the one the step was
  computed from, no work item holds the instance and none of its messages is visible), or
  enqueues the result exactly as ``complete_activity_work_items`` does and discards the
  step. Either way the result is consumed exactly once.
"""

from __future__ import annotations

import enum
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, Self, TypeVar

from ostinato import history, jsontext
from ostinato.clock import utcnow
from ostinato.errors import FailureDetails
from ostinato.frozen import fast_init
from ostinato.history import HistoryEvent
from ostinato.ids import unique_id
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus

T = TypeVar("T")


class ReuseIdPolicy(enum.Enum):
    """What ``schedule_new_orchestration`` does when the instance id already exists."""

    #: Active (PENDING/RUNNING/SUSPENDED/CONTINUED_AS_NEW) instances raise
    #: ``InstanceAlreadyExistsError``; finished ones are replaced by a fresh run. The default.
    REPLACE_TERMINAL = "replace_terminal"
    #: Any existing instance raises ``InstanceAlreadyExistsError``.
    ERROR_IF_EXISTS = "error_if_exists"
    #: Any existing instance is replaced; an active one's execution is abandoned.
    REPLACE_ANY = "replace_any"

    @property
    def replaceable_statuses(self) -> frozenset[OrchestrationStatus]:
        """The statuses of an existing instance that this policy replaces."""
        if self is ReuseIdPolicy.REPLACE_TERMINAL:
            return TERMINAL_STATUSES
        if self is ReuseIdPolicy.ERROR_IF_EXISTS:
            return frozenset()
        return frozenset(OrchestrationStatus)


@fast_init
@dataclass(frozen=True)
class InstanceRecord:
    """The stored state of one orchestration instance (its current execution).

    ``history_size`` is the number of events in the current execution's history; the core
    uses it to tell whether a cached copy of that history is still current.
    """

    instance_id: str
    name: str
    execution_id: str
    runtime_status: OrchestrationStatus
    created_at: datetime
    last_updated_at: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure_details: FailureDetails | None = None
    parent_instance_id: str | None = None
    history_size: int = 0

    def with_changes(self, **changes: Any) -> InstanceRecord:
        return replace(self, **changes)


def encode_failure(details: FailureDetails | None) -> str | None:
    """Failure details as text, for providers that store them in a text column."""
    return None if details is None else json.dumps(details.to_dict(), ensure_ascii=False)


def decode_failure(text: str | None) -> FailureDetails | None:
    """The inverse of :func:`encode_failure`."""
    return None if text is None else FailureDetails.from_dict(json.loads(text))


def new_message_id() -> str:
    return unique_id()


@fast_init
@dataclass(frozen=True)
class OrchestrationMessage:
    """A message in an instance's inbox: one history event to deliver.

    ``execution_id``, when set, names the execution the message is for; the core drops it
    if the instance has moved on to another. ``visible_at``, when set, is the earliest time
    the message may be handed out (timers, scheduled starts, retries).
    """

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None
    visible_at: datetime | None = None
    message_id: str = field(default_factory=new_message_id)

    def to_json(self) -> str:
        """The message as opaque text for storage."""
        data: dict[str, Any] = {
            "id": self.message_id,
            "instance_id": self.instance_id,
            "event": history.to_dict(self.event),
        }
        if self.execution_id is not None:
            data["execution_id"] = self.execution_id
        if self.visible_at is not None:
            data["visible_at"] = self.visible_at.isoformat()
        return history.compact_json(data)

    @classmethod
    def from_json(cls, text: str) -> OrchestrationMessage:
        data = jsontext.parse(text)
        visible_at = data.get("visible_at")
        return cls(
            instance_id=data["instance_id"],
            event=history.from_dict(data["event"]),
            execution_id=data.get("execution_id"),
            visible_at=datetime.fromisoformat(visible_at) if visible_at else None,
            message_id=data["id"],
        )


@fast_init
@dataclass(frozen=True)
class ActivityTask:
    """A request to run one activity for an orchestration execution."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None = None

    @property
    def key(self) -> str:
        """A key unique to this task (instance, execution, task id)."""
        return f"{self.instance_id}\x1f{self.execution_id}\x1f{self.task_id}"

    def to_json(self) -> str:
        return history.compact_json(
            {
                "instance_id": self.instance_id,
                "execution_id": self.execution_id,
                "task_id": self.task_id,
                "name": self.name,
                "input": self.input,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ActivityTask:
        return cls(**jsontext.parse(text))


class DeadLetterKind(enum.Enum):
    """What kind of stored record a dead letter holds."""

    #: One inbox message (its stored text, which could not be decoded).
    MESSAGE = "message"
    #: An instance's whole current history (its stored rows as a JSON array of their texts).
    HISTORY = "history"
    #: One activity task (:meth:`ActivityTask.to_json`), whose input could not be decoded.
    ACTIVITY_TASK = "activity_task"


@dataclass(frozen=True)
class DeadLetter:
    """A stored record moved aside because it could not be decoded.

    ``body`` is the record exactly as it was stored (for ``HISTORY``: the rows as a JSON array
    of their texts); ``reason`` says why it was moved. ``id`` is the provider's.
    """

    id: str
    kind: DeadLetterKind
    instance_id: str
    body: str
    reason: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (CLI, HTTP)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "instance_id": self.instance_id,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "body": self.body,
        }


@dataclass(frozen=True)
class InstanceSnapshot:
    """Everything a task hub holds for one instance id, as export and import move it.

    ``record`` is ``None`` for an id that has only pending messages (an event raised, or an
    entity signalled, before its instance exists). ``messages`` are the pending inbox
    messages, delayed ones (timers, scheduled starts) with their ``visible_at``;
    ``activity_tasks`` are the activities scheduled and not yet completed. Locks are not
    part of a snapshot: an imported instance is unlocked and all of it is deliverable.
    """

    instance_id: str
    record: InstanceRecord | None
    history: list[HistoryEvent] = field(default_factory=list)
    messages: list[OrchestrationMessage] = field(default_factory=list)
    activity_tasks: list[ActivityTask] = field(default_factory=list)


@dataclass
class OrchestrationWorkItem:
    """One instance's pending visible messages, locked for one worker.

    ``instance`` is the stored record (``None`` if the instance has none yet, e.g. a
    sub-orchestration whose start message is among ``messages``). The worker reads the
    history with ``get_history`` only if its cache doesn't already hold it.
    ``dequeue_count``: deliveries of the instance's messages since its last completed step,
    this one included (see the module doc). ``dead_letters``: messages of the instance that
    could not be decoded (not in ``messages``; their ``id`` is empty until completing the item
    moves them into the dead letters).
    ``provider_data`` is the provider's own.
    """

    instance_id: str
    messages: list[OrchestrationMessage]
    instance: InstanceRecord | None
    lock_token: str
    locked_until: datetime
    dequeue_count: int = 1
    dead_letters: list[DeadLetter] = field(default_factory=list)
    provider_data: Any = None


@dataclass
class ActivityWorkItem:
    """One activity task, locked for one worker; ``dequeue_count``: its deliveries so far,
    this one included."""

    task: ActivityTask
    lock_token: str
    locked_until: datetime
    dequeue_count: int = 1
    provider_data: Any = None


@dataclass
class OrchestrationCheckpoint:
    """Everything one orchestration step persists, applied by one ``complete`` call.

    * ``instance``: the new instance record (``None``: leave the record as it is);
    * ``new_history``: events appended to the history; with ``reset_history`` the existing
      history is deleted first (a new execution began);
    * ``activity_tasks``: activities to enqueue;
    * ``messages``: messages to enqueue, for any instance including this one (timers).
    """

    instance: InstanceRecord | None
    new_history: list[HistoryEvent] = field(default_factory=list)
    reset_history: bool = False
    activity_tasks: list[ActivityTask] = field(default_factory=list)
    messages: list[OrchestrationMessage] = field(default_factory=list)


@dataclass(frozen=True)
class InstanceQuery:
    """Filters for ``query_instances``. Results are ordered by instance id."""

    runtime_status: frozenset[OrchestrationStatus] | None = None
    name_prefix: str | None = None
    instance_id_prefix: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    page_size: int = 100
    continuation_token: str | None = None

    def matches(self, record: InstanceRecord) -> bool:
        """True if ``record`` passes every filter (paging aside)."""
        if self.runtime_status is not None and record.runtime_status not in self.runtime_status:
            return False
        if self.name_prefix is not None and not record.name.startswith(self.name_prefix):
            return False
        if self.instance_id_prefix is not None and not record.instance_id.startswith(
            self.instance_id_prefix
        ):
            return False
        if self.created_from is not None and record.created_at < self.created_from:
            return False
        return self.created_to is None or record.created_at <= self.created_to


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; pass ``continuation_token`` back for the next (``None``: last)."""

    items: list[T]
    continuation_token: str | None = None


@dataclass(frozen=True)
class ProviderCapabilities:
    """What a provider guarantees beyond the common contract.

    * ``transactional_checkpoints``: a checkpoint is applied all-or-nothing;
    * ``max_payload_bytes``: the largest payload it stores (``None``: no limit);
    * ``native_payload_bytes``: the size above which it offloads payloads (informational);
    * ``multi_process``: several processes may share one task hub;
    * ``lock_expiry``: locks expire after their timeout (the worker renews them);
    * ``worker_processes``: how many worker processes on one machine still add throughput
      on this store (``None``: one per CPU); ``ostinato worker`` and ``WorkerSupervisor``
      start the smaller of it and the number of CPUs unless told otherwise;
    * ``eager_activities``: :meth:`StorageProvider.complete_and_claim_activities` locks
      tasks as it enqueues them (without it, the worker polls for every task);
    * ``eager_orchestrations``: :meth:`StorageProvider.complete_activities_and_claim` locks
      the instances activity results go to (without it, the worker polls for them);
    * ``eager_steps``: :meth:`StorageProvider.complete_activities_and_steps` applies steps
      computed from activity results in the write that completes the activities (without
      it, every result is enqueued and its step runs under a lock of its own).
    """

    transactional_checkpoints: bool = True
    max_payload_bytes: int | None = None
    native_payload_bytes: int | None = None
    multi_process: bool = True
    lock_expiry: bool = True
    worker_processes: int | None = None
    eager_activities: bool = False
    eager_orchestrations: bool = False
    eager_steps: bool = False


@fast_init
@dataclass(frozen=True)
class ActivityClaim:
    """A worker's request to lock, as its checkpoints are committed, up to ``max_count`` of
    the activity tasks they enqueue, and where to hand them (see
    :meth:`StorageProvider.complete_and_claim_activities`). ``start`` must neither block nor
    raise."""

    worker_id: str
    lock_timeout: timedelta
    max_count: int
    start: Callable[[list[ActivityWorkItem]], None]


@fast_init
@dataclass(frozen=True)
class OrchestrationClaim:
    """A worker's request to lock, as activity results are committed, up to ``max_count`` of
    the instances they go to, and where to hand them (see
    :meth:`StorageProvider.complete_activities_and_claim`). ``start`` must neither block nor
    raise."""

    worker_id: str
    lock_timeout: timedelta
    max_count: int
    start: Callable[[list[OrchestrationWorkItem]], None]


@fast_init
@dataclass(frozen=True)
class ResultStep:
    """A step the worker computed from one activity result while no one held the instance
    (see :meth:`StorageProvider.complete_activities_and_steps`): the locked ``activity``, its
    ``result`` message, the instance record ``basis`` the step was computed from and the
    step's ``checkpoint``, which consumes the result and no other message."""

    activity: ActivityWorkItem
    result: OrchestrationMessage
    basis: InstanceRecord
    checkpoint: OrchestrationCheckpoint


class Work(enum.Flag):
    """The kinds of work a write may make claimable, named in :meth:`ChangeSignal.notify` so
    a worker wakes only the loops that take that kind."""

    NONE = 0
    #: An inbox message visible now: an instance to lock as an orchestration work item.
    ORCHESTRATIONS = enum.auto()
    #: An activity task to lock as an activity work item.
    ACTIVITIES = enum.auto()
    #: An inbox message visible later (``visible_at``): a timer, a scheduled start, a delay.
    TIMERS = enum.auto()
    #: Any kind: what a write whose effects the provider does not know may make.
    ALL = ORCHESTRATIONS | ACTIVITIES | TIMERS

    #: Values are singletons compared by identity: hashed by identity too (a C slot), not by
    #: ``Enum.__hash__``, a Python call at each set lookup the worker sorts a change by.
    __hash__ = object.__hash__

    @classmethod
    def of_messages(cls, messages: Iterable[OrchestrationMessage]) -> Work:
        """The work that enqueuing ``messages`` makes."""
        now = later = False
        for message in messages:
            if message.visible_at is None:
                now = True
            else:
                later = True
        return _WORK[now, False, later]

    @classmethod
    def of_checkpoints(cls, checkpoints: Iterable[OrchestrationCheckpoint]) -> Work:
        """The work that committing ``checkpoints`` makes (their messages and activities)."""
        now = activities = later = False
        for checkpoint in checkpoints:
            for message in checkpoint.messages:
                if message.visible_at is None:
                    now = True
                else:
                    later = True
            if checkpoint.activity_tasks:
                activities = True
        return _WORK[now, activities, later]


#: Every combination of kinds, by (orchestrations, activities, timers): a write's work is
#: looked up, not built with ``|`` (each flag operation makes an enum call).
_WORK = {
    (o, a, t): (
        (Work.ORCHESTRATIONS if o else Work.NONE)
        | (Work.ACTIVITIES if a else Work.NONE)
        | (Work.TIMERS if t else Work.NONE)
    )
    for o in (False, True)
    for a in (False, True)
    for t in (False, True)
}


def _each_outcome(call: Callable[[T], object], items: Iterable[T]) -> list[Exception | None]:
    """Run ``call`` on each item in turn; per item, ``None`` or the exception it raised (the
    per-item results of the contract's batch calls, when a provider makes one call each)."""
    outcomes: list[Exception | None] = []
    for item in items:
        try:
            call(item)
            outcomes.append(None)
        except Exception as exc:  # noqa: BLE001 - reported per item
            outcomes.append(exc)
    return outcomes


class ChangeSignal:
    """An in-process wake-up: providers ``notify()`` after each write that others may await.

    Workers and clients wait on it instead of polling. Writes by other processes reach it
    only if the provider notices them (PostgreSQL's LISTEN/NOTIFY, SQLite's watcher);
    otherwise waiters see them by polling at the wait's timeout. A provider says what a write
    did as far as it knows: which kinds of work it made claimable (``work=``, see
    :class:`Work`), so a worker wakes only the loops that take them; and which instances'
    runtime status it changed (``status_changed=ids``, or a mapping of each id to its new
    status when it knows it), so a client waiting for one instance's status wakes only for
    it, and only for the statuses it waits for (:meth:`watching`).
    """

    def __init__(self) -> None:
        #: Entered directly (a C call), not through the Condition (two Python calls).
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._version = 0
        self._listeners: list[Callable[[Work], None]] = []
        self._watchers: dict[
            str, list[tuple[threading.Event, Collection[OrchestrationStatus]]]
        ] = {}

    def subscribe(self, listener: Callable[[Work], None]) -> None:
        """Call ``listener(work)`` (from the notifying thread) after every change, with the
        kinds of work it made claimable."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: Callable[[Work], None]) -> None:
        with self._lock:
            self._listeners = [fn for fn in self._listeners if fn != listener]

    @property
    def version(self) -> int:
        return self._version

    def notify(
        self,
        status_changed: Collection[str] | Mapping[str, OrchestrationStatus] | None = None,
        *,
        work: Work = Work.ALL,
    ) -> None:
        """Signal a change. ``status_changed``: the instances whose runtime status it may have
        changed (empty: none), or a mapping of each to its new status; ``None``, the
        default, when the provider does not know. ``work``: the kinds of work it may have
        made claimable (``Work.NONE``: none); the default, ``Work.ALL``, when the provider
        does not know (another process wrote)."""
        with self._lock:
            self._version += 1
            self._condition.notify_all()
            listeners = self._listeners
            watchers = self._watchers
            if not watchers:
                woken: list[threading.Event] = []
            elif status_changed is None:
                woken = [event for events in watchers.values() for event, _ in events]
            elif isinstance(status_changed, Mapping):
                woken = [
                    event
                    for iid, status in status_changed.items()
                    for event, statuses in watchers.get(iid, ())
                    if status in statuses
                ]
            else:
                woken = [event for iid in status_changed for event, _ in watchers.get(iid, ())]
        for event in woken:
            event.set()
        for listener in listeners:
            listener(work)

    def wait(self, since: int, timeout: float) -> int:
        """Block until the version passes ``since`` or ``timeout`` seconds pass."""
        with self._lock:
            if self._version == since:
                self._condition.wait(timeout)
            return self._version

    @contextmanager
    def watching(
        self,
        instance_id: str,
        statuses: Collection[OrchestrationStatus] = tuple(OrchestrationStatus),
    ) -> Iterator[threading.Event]:
        """An event that is set whenever ``instance_id``'s runtime status may have changed to
        one of ``statuses`` (default: any); a change to a status the provider does not name
        always sets it.

        Clear it before reading the instance, then wait on it: a change made in between
        sets it again.
        """
        entry = (threading.Event(), statuses)
        with self._lock:
            self._watchers.setdefault(instance_id, []).append(entry)
        try:
            yield entry[0]
        finally:
            with self._lock:
                events = self._watchers[instance_id]
                events.remove(entry)
                if not events:
                    del self._watchers[instance_id]


class StorageProvider(ABC):
    """The contract between the ostinato core and a storage back end.

    Subclass it, implement the abstract methods, declare ``capabilities``, and run the
    conformance suite (``ostinato-conformance``) against it. Timestamps are aware UTC
    datetimes. Methods not marked abstract have correct defaults that a provider may
    override with a faster path.
    """

    capabilities: ProviderCapabilities = ProviderCapabilities()
    _change_signal: ChangeSignal | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a concrete provider that locks work items neither one nor a batch at a time
        (the defaults of each pair are written in terms of the other)."""
        super().__init_subclass__(**kwargs)
        if any(
            getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in dir(cls)
        ):
            return  # still abstract: a base for providers, not one
        for one, many in _LOCK_PAIRS:
            if getattr(cls, one) is getattr(StorageProvider, one) and getattr(cls, many) is getattr(
                StorageProvider, many
            ):
                raise TypeError(f"{cls.__name__} must override {one} or {many}")

    @property
    def changes(self) -> ChangeSignal:
        """The provider's in-process change signal (see :class:`ChangeSignal`)."""
        if self._change_signal is None:
            self._change_signal = ChangeSignal()
        return self._change_signal

    # -- lifecycle ------------------------------------------------------------------------
    # A provider is a context manager: ``with ot.provider_from_config() as provider: ...``
    # closes it at the end. Whoever creates a provider closes it; a worker or client that
    # was given one never does (a worker only says, when it stops, that it stopped).
    def setup(self) -> None:
        """Create the task hub's storage if it doesn't exist. Idempotent, safe concurrently."""

    def close(self) -> None:
        """Release connections, threads and anything held for workers (e.g. leases).

        Idempotent: closing a closed provider does nothing. A provider used again after
        ``close()`` reopens what it needs.
        """

    def worker_stopped(self, worker_id: str) -> None:
        """The worker ``worker_id`` that took work from this provider stopped.

        Release what it held through this provider that other workers are waiting for (a
        partition lease, say), without closing the provider: its owner may still use it.
        The default does nothing.
        """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- client side ----------------------------------------------------------------------
    @abstractmethod
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        """Atomically create ``record`` and enqueue its ``start`` message.

        If an instance with the id exists and its status is not in
        ``policy.replaceable_statuses``, raise ``InstanceAlreadyExistsError`` and change
        nothing. Otherwise the old instance is replaced: its history and pending messages
        are deleted in the same atomic write, and a work item still locked on it loses its
        lock (``WorkItemLockLost``). Check and write are one atomic write.
        """

    def create_instances(
        self, requests: Sequence[tuple[InstanceRecord, OrchestrationMessage, ReuseIdPolicy]]
    ) -> list[Exception | None]:
        """Create several instances, each as :meth:`create_instance` would; one result per
        request: ``None`` (created) or the exception it failed with
        (``InstanceAlreadyExistsError``, or a provider error).

        Requests are applied in order (a repeated id meets the instance its first request
        created). A provider may write them in one transaction; one request's failure must
        not undo another's success.
        """
        return _each_outcome(lambda request: self.create_instance(*request), requests)

    @abstractmethod
    def send_message(self, message: OrchestrationMessage) -> None:
        """Enqueue ``message`` for ``message.instance_id`` (whether or not it exists)."""

    @abstractmethod
    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The stored record, or ``None``."""

    @abstractmethod
    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history, oldest first (empty if none)."""

    @abstractmethod
    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        """Records matching ``query``, ordered by instance id, ``query.page_size`` at most.

        The continuation token is opaque to callers; paging through every page returns each
        matching instance that existed throughout exactly once.
        """

    @abstractmethod
    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        """Delete everything of the instance if its status is in ``only_if_status``.

        Record, history, inbox messages, activity tasks and dead letters go together,
        atomically with the status check. Returns whether it was deleted.
        """

    # -- orchestration work items ---------------------------------------------------------
    # A provider overrides one of the two lock methods of each kind, or both: the default of
    # each is written in terms of the other (one is a batch of one; a batch is one at a time).
    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        """Lock an instance that has visible messages and return them, or ``None``.

        An instance whose lock is held (and not expired) is never returned. The lock lasts
        ``lock_timeout`` unless renewed. The default locks a batch of one.
        """
        items = self.lock_next_orchestration_work_items(worker_id, lock_timeout, 1)
        return items[0] if items else None

    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        """Lock up to ``max_count`` work items (of distinct instances) at once. The default
        locks one at a time."""
        items: dict[str, OrchestrationWorkItem] = {}
        while len(items) < max_count:
            item = self.lock_next_orchestration_work_item(worker_id, lock_timeout)
            if item is None:
                break
            if item.instance_id in items:
                # An earlier item's lock expired and this one took it over: keep this one.
                items[item.instance_id] = item
                break
            items[item.instance_id] = item
        return list(items.values())

    @abstractmethod
    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        """Persist ``checkpoint``, consume exactly ``item.messages`` and release the lock.

        Raises ``WorkItemLockLost`` (changing nothing) if the lock is no longer held.
        """

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        """Complete several work items; one result per item (``None`` or the error).

        A provider may commit them in one transaction (group commit); one item's failure
        must not undo another's success.
        """
        return _each_outcome(lambda pair: self.complete_orchestration_work_item(*pair), batch)

    def complete_and_claim_activities(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim,
    ) -> list[Exception | None]:
        """Complete ``batch`` as :meth:`complete_orchestration_work_items` does, and lock up
        to ``claim.max_count`` of the activity tasks its applied checkpoints enqueue for
        ``claim.worker_id`` (for ``claim.lock_timeout``), each in the write that enqueues it.

        The claimed tasks (see "Eager activities" in the module doc) go to
        ``claim.start(items)``, called once if any were claimed, before the call returns and
        as soon as the write that claimed them is visible (it may still be on its way to
        the disk), so that they run while the call waits. The default claims none; a
        provider that overrides it declares ``ProviderCapabilities.eager_activities``.
        """
        return self.complete_orchestration_work_items(batch)

    @abstractmethod
    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        """Release the lock without consuming anything; messages reappear after ``delay``.

        Raises ``WorkItemLockLost`` if the lock is no longer held.
        """

    @abstractmethod
    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        """Extend the lock to now + ``lock_timeout`` (updates ``item.locked_until``).

        Raises ``WorkItemLockLost`` if the lock is no longer held by this item.
        """

    # -- activity work items --------------------------------------------------------------
    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        """Lock the next visible activity task, or return ``None``. The default locks a batch
        of one."""
        items = self.lock_next_activity_work_items(worker_id, lock_timeout, 1)
        return items[0] if items else None

    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        """Lock up to ``max_count`` activity tasks (distinct tasks) at once. The default locks
        one at a time."""
        items: dict[str, ActivityWorkItem] = {}
        while len(items) < max_count:
            item = self.lock_next_activity_work_item(worker_id, lock_timeout)
            if item is None:
                break
            if item.task.key in items:
                # An earlier item's lock expired and this one took it over: keep this one.
                items[item.task.key] = item
                break
            items[item.task.key] = item
        return list(items.values())

    @abstractmethod
    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        """Delete the task and enqueue ``result`` for its instance, atomically.

        Raises ``WorkItemLockLost`` (changing nothing) if the lock is no longer held.
        """

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        """Complete several activity work items; one result per item."""
        return _each_outcome(lambda pair: self.complete_activity_work_item(*pair), batch)

    def complete_activities_and_claim(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim,
    ) -> list[Exception | None]:
        """Complete ``batch`` as :meth:`complete_activity_work_items` does, and lock for
        ``claim.worker_id`` (for ``claim.lock_timeout``) up to ``claim.max_count`` of the
        instances the results go to that no work item holds, in the same atomic write.

        The claimed instances (see "Eager orchestrations" in the module doc) go to
        ``claim.start(items)``, called once if any were claimed, before the call returns and
        as soon as the write is visible. The default claims none; a provider that overrides
        it declares ``ProviderCapabilities.eager_orchestrations``.
        """
        return self.complete_activity_work_items(batch)

    def complete_activities_and_steps(
        self, batch: Sequence[ResultStep], claim: ActivityClaim | None = None
    ) -> list[bool | Exception]:
        """Complete each activity of ``batch`` and, in the same atomic write, apply its step
        in place of enqueueing its result where the step still stands (see "Eager steps" in
        the module doc); per item, ``True`` if its step was applied (its result is consumed
        by the step and never enqueued), ``False`` if its result was enqueued as
        :meth:`complete_activity_work_items` does (the step is discarded), or the exception
        that call would report (nothing of that item is written).

        A step stands when, at the write, the instance's record has ``basis``'s execution id
        and history size, no live lock holds the instance, no message of it is visible, and
        no earlier item of the batch applied a step to it. An applied step's checkpoint is
        applied as :meth:`complete_orchestration_work_items` applies one, durably; with a
        ``claim``, the activity tasks of applied steps are claimed as
        :meth:`complete_and_claim_activities` claims them. The default applies none; a
        provider that overrides it declares ``ProviderCapabilities.eager_steps``.
        """
        errors = self.complete_activity_work_items([(s.activity, s.result) for s in batch])
        return [False if error is None else error for error in errors]

    @abstractmethod
    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        """Release the task's lock; it reappears after ``delay``. May raise ``WorkItemLockLost``."""

    @abstractmethod
    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        """Extend the task's lock. Raises ``WorkItemLockLost`` if it is no longer held."""

    # -- dead letters ---------------------------------------------------------------------
    # A provider that can hold undecodable records overrides all six; the defaults describe
    # a provider that never has any (every record it stores decodes).
    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        """Move the locked instance's current history aside (it cannot be decoded).

        Afterwards ``get_history`` returns ``[]`` and the instance record is unchanged (the
        core then fails the instance with a checkpoint that resets the history). Returns the
        dead letter, or ``None`` if there was nothing to move. Raises ``WorkItemLockLost``
        (changing nothing) if the lock is no longer held.
        """
        return None

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        """Move the locked activity task aside (its input cannot be decoded) and enqueue
        ``result`` for its instance, atomically, as :meth:`complete_activity_work_item` does.

        Returns the dead letter. Raises ``WorkItemLockLost`` (changing nothing) if the lock
        is no longer held. The default, for a provider without a dead-letter store, completes
        the item with ``result`` (the task is not kept) and returns ``None``.
        """
        self.complete_activity_work_item(item, result)
        return None

    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (of one instance, if given), at most ``limit``."""
        return []

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        """One dead letter, or ``None``."""
        return None

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        """Put a dead letter back where it came from, as it was, and delete it, atomically.

        A message goes back into its instance's inbox; a history replaces the instance's
        current history; an activity task goes back into the activity queue. Returns whether
        it existed.
        """
        return False

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        """Delete a dead letter for good; returns whether it existed."""
        return False

    def purge_dead_letters(self, created_before: datetime, limit: int = 100) -> int:
        """Delete up to ``limit`` dead letters created before ``created_before``, oldest
        first; returns how many (fewer than ``limit``: none is left). The default deletes
        them one by one (:meth:`list_dead_letters`, :meth:`delete_dead_letter`)."""
        deleted = 0
        for letter in self.list_dead_letters(limit=limit):
            if letter.created_at >= created_before:
                break
            deleted += self.delete_dead_letter(letter.id)
        return deleted

    # -- state transfer (export, import, migrate) ------------------------------------------
    def export_state(self) -> Iterator[InstanceSnapshot]:
        """The state of every instance id that has a record, a pending message or an
        activity task, in instance-id order, read a page at a time. Locks are ignored:
        export a quiesced task hub (see :meth:`active_workers`).

        A provider that cannot read a delayed message before it is due (a queue's hidden
        timers) leaves it out; the core's export adds the timers and activity tasks that a
        history shows pending and a snapshot lacks (:mod:`ostinato.transfer.pending`).
        The default raises ``NotImplementedError``: only the provider can read its inboxes.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot export its state")

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        """Write ``snapshot`` as it is: the record, the history, the pending messages
        (keeping their ids and ``visible_at``) and the activity tasks, all unlocked and
        deliverable. Atomic on transactional providers.

        Raises ``InstanceAlreadyExistsError`` (writing nothing) if the task hub already holds
        state under that id. The default raises ``NotImplementedError``.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot import state")

    def active_workers(self) -> list[str] | None:
        """Ids of the workers this provider sees running now (holding a lock or a lease, or
        with a live heartbeat); ``None`` if it cannot tell. Export and migrate use it to
        refuse a task hub that is not quiesced."""
        return None

    # -- monitoring -----------------------------------------------------------------------
    def backlog(self) -> dict[str, int] | None:
        """Work ready and waiting now, by kind (``orchestrations``: instances with a visible
        message; ``activities``: visible activity tasks); ``None`` if the provider cannot
        count it cheaply (the default). Read when metrics are exported."""
        return None

    # -- housekeeping (retention) ---------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        """Take or renew the task hub's lease ``name`` for ``owner`` until now + ``duration``
        if it is free, expired or already ``owner``'s; return whether ``owner`` holds it.

        Elects one worker per task hub for background jobs (retention). The default lets
        every caller through: what a lease guards must stay correct when run concurrently.
        """
        return True

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (the default has nothing to release)."""

    def reclaim_space(self) -> None:
        """Give storage freed by purges back to the system, a bounded amount at a time, or
        nothing where the store does that itself (the default)."""

    # -- helpers for implementers ---------------------------------------------------------
    @staticmethod
    def now() -> datetime:
        """The current time (aware UTC)."""
        return utcnow()


def new_lock_token() -> str:
    return unique_id()


#: The lock methods of each kind of work item, one of which a provider must override.
_LOCK_PAIRS = (
    ("lock_next_orchestration_work_item", "lock_next_orchestration_work_items"),
    ("lock_next_activity_work_item", "lock_next_activity_work_items"),
)


__all__ = [
    "ActivityClaim",
    "ActivityTask",
    "ActivityWorkItem",
    "ChangeSignal",
    "DeadLetter",
    "DeadLetterKind",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceSnapshot",
    "OrchestrationCheckpoint",
    "OrchestrationClaim",
    "OrchestrationMessage",
    "OrchestrationWorkItem",
    "Page",
    "ProviderCapabilities",
    "ResultStep",
    "ReuseIdPolicy",
    "StorageProvider",
    "Work",
    "decode_failure",
    "encode_failure",
    "new_lock_token",
    "new_message_id",
]
