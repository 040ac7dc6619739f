"""Durable entities: small named objects with durable state, one operation at a time.

An entity is addressed by ``EntityId(name, key)`` and stored as a special instance whose id is
``@name@key``. Operations are messages in its inbox, run strictly in order by the worker: the
entity function gets an :class:`EntityContext` with the current state, the operation name
and its input. Orchestrations ``call_entity`` (awaiting the result) or ``signal_entity``
(one-way); clients ``signal_entity`` and ``get_entity``.

Critical sections: ``with (yield ctx.lock_entities(a, b)):`` sends one lock request that visits
the entities in a global order (sorted ids), each locking itself before passing the request
on, the last one answering the orchestration. While an entity is locked, requests from anyone
but the lock holder wait in its queue; ``EntityUnlock`` releases it and the queue runs.
Acquiring in one global order means two orchestrations locking overlapping sets never deadlock.

Everything is built from provider messages, so entities work on every provider. The entity's
state, lock and queue are stored in its instance record; the ids of recently applied requests
are kept too, so a redelivered request is not applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ostinato import history
from ostinato.clock import utcnow
from ostinato.converter import DataConverter, default_converter
from ostinato.errors import FailureDetails
from ostinato.history import (
    EntityLockGranted,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityRequest,
    EntityUnlock,
    HistoryEvent,
)
from ostinato.ids import FORBIDDEN_CHARACTERS
from ostinato.provider import InstanceRecord, OrchestrationCheckpoint, OrchestrationMessage
from ostinato.status import OrchestrationStatus

ENTITY_PREFIX = "@"
#: How many applied request ids an entity remembers for deduplication.
RECENT_REQUESTS = 500
ENTITY_EXECUTION_ID = "entity"


@dataclass(frozen=True)
class EntityId:
    """The id of a durable entity: its (case-insensitive) name and a key."""

    name: str
    key: str

    def __post_init__(self) -> None:
        if not self.name or "@" in self.name:
            raise ValueError(f"Entity name {self.name!r} must be non-empty and contain no '@'")
        for ch in self.name + self.key:
            if ch in FORBIDDEN_CHARACTERS or ord(ch) < 32 or ord(ch) == 127:
                raise ValueError(
                    f"Entity id {self.name!r}/{self.key!r} contains {ch!r}, which is not allowed"
                )
        object.__setattr__(self, "name", self.name.lower())

    @property
    def instance_id(self) -> str:
        """The instance id the entity is stored under: ``@name@key``."""
        return f"{ENTITY_PREFIX}{self.name}@{self.key}"

    @classmethod
    def from_instance_id(cls, instance_id: str) -> EntityId:
        if not is_entity_instance(instance_id):
            raise ValueError(f"{instance_id!r} is not an entity instance id")
        name, _, key = instance_id[1:].partition("@")
        return cls(name, key)

    def __str__(self) -> str:
        return self.instance_id


def is_entity_instance(instance_id: str) -> bool:
    """True for the instance ids of entities (``@name@key``)."""
    return instance_id.startswith(ENTITY_PREFIX) and "@" in instance_id[1:]


def as_entity_id(entity: EntityId | str) -> EntityId:
    return entity if isinstance(entity, EntityId) else EntityId.from_instance_id(entity)


@dataclass(frozen=True)
class EntityMetadata:
    """What a client sees of an entity."""

    entity_id: EntityId
    serialized_state: str | None
    last_modified_at: datetime
    locked_by: str | None
    backlog: int

    @property
    def state(self) -> Any:
        """The entity's state decoded from JSON (``None`` if it has none)."""
        return default_converter.loads(self.serialized_state)

    @property
    def includes_state(self) -> bool:
        return self.serialized_state is not None


class EntityLock:
    """The context manager ``yield ctx.lock_entities(...)`` gives: leaving it releases the locks."""

    def __init__(self, entity_ids: tuple[str, ...], release: Callable[[], None]) -> None:
        self._entity_ids = entity_ids
        self._release = release

    @property
    def entity_ids(self) -> tuple[str, ...]:
        """The locked entities' instance ids, in lock order."""
        return self._entity_ids

    def __enter__(self) -> EntityLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()


class EntityContext:
    """What an entity function gets: its id, the operation, and its durable state."""

    def __init__(
        self,
        entity_id: EntityId,
        operation: str,
        state: str | None,
        converter: DataConverter,
        state_type: Any = None,
    ) -> None:
        self.entity_id = entity_id
        self.operation_name = operation
        self._state = state
        self._converter = converter
        self._state_type = state_type
        self._signals: list[tuple[EntityId, str, Any]] = []

    @property
    def key(self) -> str:
        return self.entity_id.key

    @property
    def has_state(self) -> bool:
        return self._state is not None

    def get_state(self, default: Any = None, type_hint: Any = None) -> Any:
        """The current state (decoded with ``type_hint``), or ``default`` if there is none."""
        if self._state is None:
            return default
        return self._converter.loads(self._state, type_hint or self._state_type)

    def set_state(self, value: Any) -> None:
        """Replace the state; it is saved when the operation returns without error."""
        self._state = self._converter.dumps(value)

    def delete_state(self) -> None:
        """Delete the state (the entity then has none, like a new one)."""
        self._state = None

    def signal_entity(self, entity_id: EntityId, operation: str, input: Any = None) -> None:
        """Signal another entity once this operation succeeds."""
        self._signals.append((entity_id, operation, input))


@dataclass
class _Lock:
    instance_id: str
    critical_section_id: str


@dataclass
class _EntityStore:
    """An entity's stored metadata (kept in its record's ``custom_status``)."""

    lock: _Lock | None
    queue: list[EntityRequest]
    recent: list[str]

    def dumps(self) -> str:
        return json.dumps(
            {
                "lock": None
                if self.lock is None
                else [self.lock.instance_id, self.lock.critical_section_id],
                "queue": [history.to_dict(e) for e in self.queue],
                "recent": self.recent[-RECENT_REQUESTS:],
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None) -> _EntityStore:
        if not text:
            return cls(None, [], [])
        data = json.loads(text)
        lock = data.get("lock")
        queue = [history.from_dict(e) for e in data.get("queue", [])]
        return cls(
            _Lock(*lock) if lock else None,
            [e for e in queue if isinstance(e, EntityRequest)],
            list(data.get("recent", [])),
        )


def metadata_from_record(record: InstanceRecord) -> EntityMetadata:
    store = _EntityStore.loads(record.custom_status)
    return EntityMetadata(
        entity_id=EntityId.from_instance_id(record.instance_id),
        serialized_state=record.output,
        last_modified_at=record.last_updated_at,
        locked_by=store.lock.instance_id if store.lock else None,
        backlog=len(store.queue),
    )


class EntityProcessor:
    """Applies an entity's inbox messages in order and builds its checkpoint.

    Stateless between calls: each :meth:`process` works on its own :class:`_EntityBatch`, so
    one processor serves every orchestration thread at once.
    """

    def __init__(self, app: Any, converter: DataConverter) -> None:
        self.app = app
        self.converter = converter

    def process(
        self, instance_id: str, record: InstanceRecord | None, messages: list[OrchestrationMessage]
    ) -> OrchestrationCheckpoint:
        """The checkpoint that applies ``messages`` to the entity ``instance_id``."""
        entity_id = EntityId.from_instance_id(instance_id)
        now = utcnow()
        batch = _EntityBatch(self.app, self.converter, entity_id, record)
        for message in messages:
            batch.handle(message.event)
        status = (
            OrchestrationStatus.RUNNING
            if batch.state is not None or batch.store.lock or batch.store.queue
            else OrchestrationStatus.COMPLETED
        )
        new_record = InstanceRecord(
            instance_id=instance_id,
            name=entity_id.name,
            execution_id=ENTITY_EXECUTION_ID,
            runtime_status=status,
            created_at=record.created_at if record else now,
            last_updated_at=now,
            output=batch.state,
            custom_status=batch.store.dumps(),
        )
        return OrchestrationCheckpoint(instance=new_record, messages=batch.outbound)


class _EntityBatch:
    """One entity batch: the entity's state, queue and lock while one work item's messages
    apply in order (the entity's counterpart of an orchestration step)."""

    def __init__(
        self, app: Any, converter: DataConverter, entity_id: EntityId, record: InstanceRecord | None
    ) -> None:
        self.app = app
        self.converter = converter
        self.entity_id = entity_id
        self.state = record.output if record else None
        self.store = _EntityStore.loads(record.custom_status if record else None)
        self.recent = set(self.store.recent)
        self.outbound: list[OrchestrationMessage] = []

    def handle(self, event: HistoryEvent) -> None:
        if isinstance(event, EntityRequest):
            self._request(event)
        elif isinstance(event, EntityUnlock):
            lock = self.store.lock
            if (
                lock is not None
                and lock.instance_id == event.holder_instance_id
                and lock.critical_section_id == event.critical_section_id
            ):
                self.store.lock = None
                queued, self.store.queue = self.store.queue, []
                for request in queued:
                    self._request(request)

    def _remember(self, request_id: str) -> None:
        self.recent.add(request_id)
        self.store.recent.append(request_id)
        if len(self.store.recent) > RECENT_REQUESTS:
            dropped = self.store.recent.pop(0)
            self.recent.discard(dropped)

    def _request(self, request: EntityRequest) -> None:
        if request.request_id in self.recent:
            return  # a redelivered duplicate
        lock = self.store.lock
        if lock is not None and (
            request.operation is None or request.caller_instance_id != lock.instance_id
        ):
            if all(q.request_id != request.request_id for q in self.store.queue):
                self.store.queue.append(request)
            return
        self._remember(request.request_id)
        if request.operation is None:
            self._lock(request)
        else:
            self._run(request)

    def _lock(self, request: EntityRequest) -> None:
        assert request.caller_instance_id and request.critical_section_id and request.lock_set
        self.store.lock = _Lock(request.caller_instance_id, request.critical_section_id)
        following = request.position + 1
        if following < len(request.lock_set):
            self.outbound.append(
                OrchestrationMessage(
                    instance_id=request.lock_set[following],
                    event=EntityRequest(
                        request_id=request.request_id,
                        caller_instance_id=request.caller_instance_id,
                        caller_execution_id=request.caller_execution_id,
                        caller_task_id=request.caller_task_id,
                        lock_set=request.lock_set,
                        position=following,
                        critical_section_id=request.critical_section_id,
                    ),
                )
            )
        else:
            assert request.caller_task_id is not None
            self.outbound.append(
                OrchestrationMessage(
                    instance_id=request.caller_instance_id,
                    execution_id=request.caller_execution_id,
                    event=EntityLockGranted(
                        task_scheduled_id=request.caller_task_id,
                        critical_section_id=request.critical_section_id,
                    ),
                )
            )

    def _run(self, request: EntityRequest) -> None:
        assert request.operation is not None
        registration = self.app.entities.get(self.entity_id.name)
        ctx = EntityContext(
            self.entity_id,
            request.operation,
            self.state,
            self.converter,
        )
        reply: HistoryEvent
        try:
            if registration is None:
                raise LookupError(
                    f"No entity named {self.entity_id.name!r} is registered with this worker"
                )
            value = self.converter.loads(request.input, registration.input_type)
            result = registration.fn(ctx, value)
            payload = self.converter.dumps(result)
            signals = [
                OrchestrationMessage(
                    instance_id=target.instance_id,
                    event=EntityRequest(
                        request_id=f"{request.request_id}>{n}",
                        operation=operation,
                        input=self.converter.dumps(data),
                    ),
                )
                for n, (target, operation, data) in enumerate(ctx._signals)
            ]
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            failure = FailureDetails.from_exception(exc)
            reply = EntityOperationFailed(
                task_scheduled_id=request.caller_task_id or 0, failure=failure
            )
        else:
            self.state = ctx._state
            self.outbound.extend(signals)
            reply = EntityOperationCompleted(
                task_scheduled_id=request.caller_task_id or 0, result=payload
            )
        if request.caller_instance_id is not None and request.caller_task_id is not None:
            self.outbound.append(
                OrchestrationMessage(
                    instance_id=request.caller_instance_id,
                    execution_id=request.caller_execution_id,
                    event=reply,
                )
            )


__all__ = [
    "ENTITY_EXECUTION_ID",
    "ENTITY_PREFIX",
    "RECENT_REQUESTS",
    "EntityContext",
    "EntityId",
    "EntityLock",
    "EntityMetadata",
    "EntityProcessor",
    "as_entity_id",
    "is_entity_instance",
    "metadata_from_record",
]
