"""The history model: the Durable Task event types and their versioned serialized form.

An orchestration's history is an append-only list of these events. Providers store each event
as the opaque text of :func:`dumps` and give it back through :func:`loads` (or a run of
consecutive events as the text of :func:`dumps_many`, read with :func:`loads_many`); they never
look inside. The serialized form is a JSON object ``{"v": 1, "type": "TaskScheduled", ...}``; ``v``
is the format version that introduced the event's type (``HistoryEvent.format_version``: 1,
or 2 for ``ExecutionRewound``), at most :data:`FORMAT_VERSION`. Readers accept every version up
to theirs and refuse a newer one with an error naming the event and asking for an upgrade, so
an older ostinato reading a history that a newer one wrote fails clearly, and still reads
every event it knows. Fields added later are optional (absent in older histories: their
default), and readers ignore fields they do not know.

Scheduling events (``TaskScheduled``, ``TimerCreated``, ``SubOrchestrationInstanceCreated``,
``EventSent``) carry the deterministic ``task_id`` that the orchestrator's n-th action gets;
completion events name it as ``task_scheduled_id`` (``timer_id`` for ``TimerFired``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from ostinato.clock import utcnow
from ostinato.errors import FailureDetails, SerializationError
from ostinato.frozen import fast_init
from ostinato.jsontext import compact_encoder, parse
from ostinato.status import OrchestrationStatus

#: The newest history format version this ostinato reads and writes (version 2 added
#: ``ExecutionRewound``).
FORMAT_VERSION = 2


class EventType(enum.Enum):
    """The kinds of history event."""

    EXECUTION_STARTED = "ExecutionStarted"
    ORCHESTRATOR_STARTED = "OrchestratorStarted"
    ORCHESTRATOR_COMPLETED = "OrchestratorCompleted"
    TASK_SCHEDULED = "TaskScheduled"
    TASK_COMPLETED = "TaskCompleted"
    TASK_FAILED = "TaskFailed"
    SUB_ORCHESTRATION_CREATED = "SubOrchestrationInstanceCreated"
    SUB_ORCHESTRATION_COMPLETED = "SubOrchestrationInstanceCompleted"
    SUB_ORCHESTRATION_FAILED = "SubOrchestrationInstanceFailed"
    TIMER_CREATED = "TimerCreated"
    TIMER_FIRED = "TimerFired"
    EVENT_RAISED = "EventRaised"
    EVENT_SENT = "EventSent"
    EXECUTION_SUSPENDED = "ExecutionSuspended"
    EXECUTION_RESUMED = "ExecutionResumed"
    EXECUTION_TERMINATED = "ExecutionTerminated"
    EXECUTION_COMPLETED = "ExecutionCompleted"
    CONTINUE_AS_NEW = "ContinueAsNew"
    ENTITY_OPERATION_CALLED = "EntityOperationCalled"
    ENTITY_OPERATION_SIGNALED = "EntityOperationSignaled"
    ENTITY_OPERATION_COMPLETED = "EntityOperationCompleted"
    ENTITY_OPERATION_FAILED = "EntityOperationFailed"
    ENTITY_LOCK_REQUESTED = "EntityLockRequested"
    ENTITY_LOCK_GRANTED = "EntityLockGranted"
    ENTITY_UNLOCK_SENT = "EntityUnlockSent"
    ENTITY_REQUEST = "EntityRequest"
    ENTITY_UNLOCK = "EntityUnlock"
    EXECUTION_REWOUND = "ExecutionRewound"


@dataclass(frozen=True)
class ParentInstance:
    """Who started a sub-orchestration, so its result can be sent back."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str


@dataclass(frozen=True, kw_only=True)
class HistoryEvent:
    """Base of every history event."""

    event_type: ClassVar[EventType]
    #: The history format version that introduced this event type (written as ``v``).
    format_version: ClassVar[int] = 1
    timestamp: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class ExecutionStarted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EXECUTION_STARTED
    name: str
    execution_id: str
    input: str | None = None
    parent: ParentInstance | None = None
    scheduled_start_at: datetime | None = None
    #: The orchestration version the instance was started with (``None``: unversioned).
    version: str | None = None
    #: Tags given at the start (``None``: none).
    tags: dict[str, str] | None = None
    #: W3C ``traceparent`` of the trace the instance belongs to (set when OpenTelemetry is on).
    trace_context: str | None = None


@dataclass(frozen=True, kw_only=True)
class OrchestratorStarted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ORCHESTRATOR_STARTED


@dataclass(frozen=True, kw_only=True)
class OrchestratorCompleted(HistoryEvent):
    """The end of a step; ``patches`` names the ``ctx.is_patched`` checks first made (and
    answered true) in it, so replays answer them the same way."""

    event_type: ClassVar[EventType] = EventType.ORCHESTRATOR_COMPLETED
    patches: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class TaskScheduled(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TASK_SCHEDULED
    task_id: int
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class TaskCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TASK_COMPLETED
    task_scheduled_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class TaskFailed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TASK_FAILED
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SUB_ORCHESTRATION_CREATED
    task_id: int
    name: str
    instance_id: str
    input: str | None = None
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SUB_ORCHESTRATION_COMPLETED
    task_scheduled_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SUB_ORCHESTRATION_FAILED
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class TimerCreated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TIMER_CREATED
    task_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True)
class TimerFired(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TIMER_FIRED
    timer_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True)
class EventRaised(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EVENT_RAISED
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class EventSent(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EVENT_SENT
    task_id: int
    instance_id: str
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionSuspended(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EXECUTION_SUSPENDED
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionResumed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EXECUTION_RESUMED
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionRewound(HistoryEvent):
    """A FAILED execution was rewound: it runs again from its last step that did not fail."""

    event_type: ClassVar[EventType] = EventType.EXECUTION_REWOUND
    format_version: ClassVar[int] = 2
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionTerminated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EXECUTION_TERMINATED
    output: str | None = None
    recursive: bool = True


@dataclass(frozen=True, kw_only=True)
class ExecutionCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EXECUTION_COMPLETED
    status: OrchestrationStatus
    result: str | None = None
    failure: FailureDetails | None = None


@dataclass(frozen=True, kw_only=True)
class ContinueAsNew(HistoryEvent):
    """The execution ended by continuing as new; ``input`` starts the next execution."""

    event_type: ClassVar[EventType] = EventType.CONTINUE_AS_NEW
    input: str | None = None
    new_execution_id: str = ""


# -- entities ----------------------------------------------------------------------------------
# Scheduling events in an orchestration's history (``task_id`` like the others):


@dataclass(frozen=True, kw_only=True)
class EntityOperationCalled(HistoryEvent):
    """The orchestration called an entity operation and awaits its result."""

    event_type: ClassVar[EventType] = EventType.ENTITY_OPERATION_CALLED
    task_id: int
    entity_id: str
    name: str  # the operation
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationSignaled(HistoryEvent):
    """The orchestration signalled an entity operation (one-way, maybe scheduled)."""

    event_type: ClassVar[EventType] = EventType.ENTITY_OPERATION_SIGNALED
    task_id: int
    entity_id: str
    name: str  # the operation
    input: str | None = None
    scheduled_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class EntityLockRequested(HistoryEvent):
    """The orchestration asked for the locks of ``entity_ids`` (in this global order)."""

    event_type: ClassVar[EventType] = EventType.ENTITY_LOCK_REQUESTED
    task_id: int
    entity_ids: tuple[str, ...]
    critical_section_id: str

    @property
    def name(self) -> str:
        return ",".join(self.entity_ids)


@dataclass(frozen=True, kw_only=True)
class EntityUnlockSent(HistoryEvent):
    """The orchestration released the locks of a critical section."""

    event_type: ClassVar[EventType] = EventType.ENTITY_UNLOCK_SENT
    task_id: int
    entity_ids: tuple[str, ...]
    critical_section_id: str

    @property
    def name(self) -> str:
        return ",".join(self.entity_ids)


# Completions delivered to an orchestration:


@dataclass(frozen=True, kw_only=True)
class EntityOperationCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ENTITY_OPERATION_COMPLETED
    task_scheduled_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationFailed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ENTITY_OPERATION_FAILED
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class EntityLockGranted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ENTITY_LOCK_GRANTED
    task_scheduled_id: int
    critical_section_id: str


# Messages delivered to an entity:


@dataclass(frozen=True, kw_only=True)
class EntityRequest(HistoryEvent):
    """An operation call or signal, or a lock request, sent to an entity.

    ``operation`` is ``None`` for a lock request: then ``lock_set`` is the ordered list of
    entities to lock and ``position`` this entity's index in it. ``caller_*`` say where to
    send the result (absent for signals).
    """

    event_type: ClassVar[EventType] = EventType.ENTITY_REQUEST
    request_id: str
    operation: str | None = None
    input: str | None = None
    caller_instance_id: str | None = None
    caller_execution_id: str | None = None
    caller_task_id: int | None = None
    lock_set: tuple[str, ...] | None = None
    position: int = 0
    critical_section_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityUnlock(HistoryEvent):
    """Releases the lock a critical section holds on an entity."""

    event_type: ClassVar[EventType] = EventType.ENTITY_UNLOCK
    holder_instance_id: str
    critical_section_id: str


EVENT_CLASSES: dict[str, type[HistoryEvent]] = {
    cls.event_type.value: cls
    for cls in (
        ExecutionStarted,
        OrchestratorStarted,
        OrchestratorCompleted,
        TaskScheduled,
        TaskCompleted,
        TaskFailed,
        SubOrchestrationInstanceCreated,
        SubOrchestrationInstanceCompleted,
        SubOrchestrationInstanceFailed,
        TimerCreated,
        TimerFired,
        EventRaised,
        EventSent,
        ExecutionSuspended,
        ExecutionResumed,
        ExecutionRewound,
        ExecutionTerminated,
        ExecutionCompleted,
        ContinueAsNew,
        EntityOperationCalled,
        EntityOperationSignaled,
        EntityLockRequested,
        EntityUnlockSent,
        EntityOperationCompleted,
        EntityOperationFailed,
        EntityLockGranted,
        EntityRequest,
        EntityUnlock,
    )
}
# Events are built on every step: a fast __init__ for each (see ostinato.frozen).
for _event_class in (HistoryEvent, ParentInstance, *EVENT_CLASSES.values()):
    fast_init(_event_class)
_FIELDS: dict[type[HistoryEvent], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in EVENT_CLASSES.values()
}


#: Each event class's field names, as a set.
_FIELD_NAMES: dict[type[HistoryEvent], frozenset[str]] = {
    cls: frozenset(names) for cls, names in _FIELDS.items()
}


def _encode_parent(value: ParentInstance) -> dict[str, Any]:
    return {
        "instance_id": value.instance_id,
        "execution_id": value.execution_id,
        "task_id": value.task_id,
        "name": value.name,
    }


_DATETIME_FIELDS = frozenset({"timestamp", "fire_at", "scheduled_start_at", "scheduled_at"})
_TUPLE_FIELDS = frozenset({"entity_ids", "lock_set", "patches"})
#: How a field is turned into JSON data, by field name (as :data:`_DECODERS` reads it back);
#: fields not named here hold JSON data already.
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    **{name: datetime.isoformat for name in _DATETIME_FIELDS},
    "failure": FailureDetails.to_dict,
    "parent": _encode_parent,
    "status": lambda status: status.value,
}
#: How a field's JSON data is turned back into its value, by field name (``None`` stays
#: ``None``); fields not named here hold JSON data already.
_DECODERS: dict[str, Callable[[Any], Any]] = {
    **{name: datetime.fromisoformat for name in _DATETIME_FIELDS},
    **{name: tuple for name in _TUPLE_FIELDS},
    "failure": FailureDetails.from_dict,
    "parent": lambda data: ParentInstance(**data),
    "status": OrchestrationStatus,
}
#: Each event class's fields that are decoded, with their decoders.
_DECODED: dict[type[HistoryEvent], tuple[tuple[str, Callable[[Any], Any]], ...]] = {
    cls: tuple((name, _DECODERS[name]) for name in names if name in _DECODERS)
    for cls, names in _FIELDS.items()
}


def _compile_to_dict(cls: type[HistoryEvent]) -> Callable[[Any], dict[str, Any]]:
    """:func:`to_dict` for the events of ``cls``, compiled once from its fields (the way
    ``dataclasses`` compiles ``__init__``), so that encoding an event reads each field once
    and loops over nothing. For ``TaskCompleted`` the function is::

        def to_dict(event):
            data = {"v": 1, "type": "TaskCompleted"}
            value = event.timestamp
            if value is not None:
                data["timestamp"] = encode_timestamp(value)
            value = event.task_scheduled_id
            if value is not None:
                data["task_scheduled_id"] = value
            value = event.result
            if value is not None:
                data["result"] = value
            return data
    """
    header = {"v": cls.format_version, "type": cls.event_type.value}
    lines = ["def to_dict(event):", f"    data = {header!r}"]
    namespace: dict[str, Any] = {}
    for name in _FIELDS[cls]:
        lines += [f"    value = event.{name}", "    if value is not None:"]
        encode = _ENCODERS.get(name)
        if encode is None:
            lines.append(f"        data[{name!r}] = value")
        else:
            namespace[f"encode_{name}"] = encode
            lines.append(f"        data[{name!r}] = encode_{name}(value)")
    lines.append("    return data")
    # The text above is made of field names only; its "file" names it in tracebacks.
    exec(compile("\n".join(lines), f"<{__name__} to_dict of {cls.__name__}>", "exec"), namespace)
    compiled: Callable[[Any], dict[str, Any]] = namespace["to_dict"]
    return compiled


#: Each event class's compiled :func:`to_dict`.
_TO_DICT: dict[type[HistoryEvent], Callable[[Any], dict[str, Any]]] = {
    cls: _compile_to_dict(cls) for cls in _FIELDS
}


def to_dict(event: HistoryEvent) -> dict[str, Any]:
    """The event as plain JSON data (with ``v`` and ``type``; fields that are ``None`` left
    out)."""
    return _TO_DICT[type(event)](event)


def from_dict(data: dict[str, Any]) -> HistoryEvent:
    """Rebuild an event from :func:`to_dict` data."""
    version = data.get("v", 1)
    kind = data.get("type")
    if not isinstance(version, int) or version < 1:
        raise SerializationError(f"History event {kind!r} has no valid format version: {version!r}")
    if version > FORMAT_VERSION:
        raise SerializationError(
            f"History event {kind!r} has format version {version}, newer than this ostinato "
            f"reads (up to {FORMAT_VERSION}): it was written by a newer ostinato; upgrade "
            f"ostinato to read this history"
        )
    try:
        cls = EVENT_CLASSES[kind]  # type: ignore[index]
    except (KeyError, TypeError):
        raise SerializationError(
            f"Unknown history event type {kind!r} (format version {version}): the record is corrupt"
        ) from None
    kwargs = dict(data)
    del kwargs["type"]
    kwargs.pop("v", None)
    names = _FIELD_NAMES[cls]
    if not kwargs.keys() <= names:  # fields this ostinato does not know: ignored
        kwargs = {name: value for name, value in kwargs.items() if name in names}
    for name, decode in _DECODED[cls]:
        value = kwargs.get(name)
        if value is not None:
            kwargs[name] = decode(value)
    return cls(**kwargs)


#: Compact JSON text, non-ASCII kept as is: the form ostinato stores. For data built afresh
#: (as events' and records' own fields are), so without the circular-reference check.
compact_json = compact_encoder(allow_nan=True, check_circular=False)


def dumps(event: HistoryEvent) -> str:
    """The event's serialized form, for a provider to store as opaque text."""
    return compact_json(to_dict(event))


def _parse(text: str) -> Any:
    try:
        return parse(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"Corrupt history event: {exc}") from None


def loads(text: str) -> HistoryEvent:
    """Rebuild an event from the text :func:`dumps` gave."""
    return from_dict(_parse(text))


def dumps_many(events: Sequence[HistoryEvent]) -> str:
    """Consecutive events as one opaque text (a provider may store a step's events in one
    row); :func:`loads_many` reads it back, and reads :func:`dumps` text too."""
    if len(events) == 1:
        return dumps(events[0])
    return compact_json([_TO_DICT[type(event)](event) for event in events])


def loads_many(text: str) -> list[HistoryEvent]:
    """The events of a :func:`dumps_many` (or :func:`dumps`) text, in order."""
    data = _parse(text)
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise SerializationError("Corrupt history: a row holds something other than events")
    return [from_dict(item) for item in items]


__all__ = [
    "EVENT_CLASSES",
    "FORMAT_VERSION",
    "ContinueAsNew",
    "EntityLockGranted",
    "EntityLockRequested",
    "EntityOperationCalled",
    "EntityOperationCompleted",
    "EntityOperationFailed",
    "EntityOperationSignaled",
    "EntityRequest",
    "EntityUnlock",
    "EntityUnlockSent",
    "EventRaised",
    "EventSent",
    "EventType",
    "ExecutionCompleted",
    "ExecutionResumed",
    "ExecutionRewound",
    "ExecutionStarted",
    "ExecutionSuspended",
    "ExecutionTerminated",
    "HistoryEvent",
    "OrchestratorCompleted",
    "OrchestratorStarted",
    "ParentInstance",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceCreated",
    "SubOrchestrationInstanceFailed",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TimerCreated",
    "TimerFired",
    "compact_json",
    "dumps",
    "dumps_many",
    "from_dict",
    "loads",
    "loads_many",
    "to_dict",
]
