"""The task-hub transfer format: versioned JSON Lines, one instance per line.

A transfer file is UTF-8 text with one JSON object per line:

1. a **header** line naming the format and its version::

       {"format": "ostinato.taskhub", "version": 1, "history_format": 1,
        "exported_at": "2026-12-06T22:30:00+00:00", "source": {"provider": "sqlite", ...}}

2. one line per **instance id** (``"type": "instance"``, or ``"type": "entity"`` for a
   durable entity, whose id is ``@name@key``), in instance-id order::

       {"type": "instance", "id": "order-17",
        "record": {"name": "process_order", "execution_id": "...", "runtime_status": "RUNNING",
                   "created_at": "...", "last_updated_at": "...", "input": "...", ...},
        "history": [{"v": 1, "type": "ExecutionStarted", ...}, ...],
        "history_sha256": "9f2c...",
        "messages": [{"id": "...", "event": {...}, "execution_id": "..."}],
        "timers": [{"id": "...", "event": {"v": 1, "type": "TimerFired", ...},
                    "visible_at": "..."}],
        "activity_tasks": [{"execution_id": "...", "task_id": 3, "name": "say_hello",
                            "input": "\\"Tokyo\\""}]}

   ``record`` is ``null`` for an id that has only pending messages. ``history`` holds the
   current execution's events as the :mod:`ostinato.history` codec writes them
   (:func:`ostinato.history.to_dict`); ``history_sha256`` is :func:`history_digest` of them.
   ``messages`` are inbox messages deliverable at once, ``timers`` the delayed ones (durable
   timers, scheduled starts, retry delays) with the time they become visible. Payloads
   (``input``, ``output``, ``custom_status``, event results) are the data converter's text,
   stored as it is.

3. a **trailer** line with the counts, so a reader can tell a complete file from a cut one::

       {"type": "end", "instances": 12, "entities": 1, "history_events": 140,
        "messages": 3, "timers": 2, "activity_tasks": 4}

Readers accept every format version up to theirs and refuse newer ones with a clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ostinato import history
from ostinato.errors import FailureDetails, SerializationError
from ostinato.history import HistoryEvent
from ostinato.provider import ActivityTask, InstanceRecord, InstanceSnapshot, OrchestrationMessage
from ostinato.status import OrchestrationStatus

FORMAT_NAME = "ostinato.taskhub"
FORMAT_VERSION = 1


class TransferFormatError(SerializationError):
    """A transfer file that is not valid: names the line and what is wrong with it."""


@dataclass(frozen=True)
class Header:
    """The first line: format name and version, when and from where the file was exported."""

    version: int = FORMAT_VERSION
    history_format: int = history.FORMAT_VERSION
    exported_at: datetime | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": self.version,
            "history_format": self.history_format,
        }
        if self.exported_at is not None:
            data["exported_at"] = self.exported_at.isoformat()
        if self.source:
            data["source"] = dict(self.source)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Header:
        if data.get("format") != FORMAT_NAME:
            raise TransferFormatError(
                f"Not an ostinato transfer file: the header names format "
                f"{data.get('format')!r}, expected {FORMAT_NAME!r}"
            )
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise TransferFormatError(f"Transfer format version {version!r} is not valid")
        if version > FORMAT_VERSION:
            raise TransferFormatError(
                f"Transfer format version {version} is newer than this ostinato understands "
                f"({FORMAT_VERSION}); upgrade ostinato"
            )
        exported_at = data.get("exported_at")
        return cls(
            version=version,
            history_format=int(data.get("history_format", 1)),
            exported_at=datetime.fromisoformat(exported_at) if exported_at else None,
            source=dict(data.get("source") or {}),
        )


@dataclass(frozen=True)
class Counts:
    """How much a transfer file (or a task hub) holds; the trailer line carries these."""

    instances: int = 0
    entities: int = 0
    history_events: int = 0
    messages: int = 0
    timers: int = 0
    activity_tasks: int = 0

    def add(self, snapshot: InstanceSnapshot) -> Counts:
        """These counts plus one snapshot's."""
        timers = sum(1 for m in snapshot.messages if m.visible_at is not None)
        is_entity = is_entity_id(snapshot.instance_id)
        return Counts(
            instances=self.instances + (0 if is_entity else 1),
            entities=self.entities + (1 if is_entity else 0),
            history_events=self.history_events + len(snapshot.history),
            messages=self.messages + len(snapshot.messages) - timers,
            timers=self.timers + timers,
            activity_tasks=self.activity_tasks + len(snapshot.activity_tasks),
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "instances": self.instances,
            "entities": self.entities,
            "history_events": self.history_events,
            "messages": self.messages,
            "timers": self.timers,
            "activity_tasks": self.activity_tasks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        return cls(**{key: int(data.get(key, 0)) for key in cls().to_dict()})


def is_entity_id(instance_id: str) -> bool:
    """Entity instances have ids ``@name@key``; orchestration ids never start with ``@``."""
    return instance_id.startswith("@")


def history_digest(events: Iterable[HistoryEvent]) -> str:
    """SHA-256 (hex) of a history's serialized events: equal on every provider that stored
    the same history, so it verifies a copy."""
    digest = hashlib.sha256()
    for event in events:
        digest.update(history.dumps(event).encode())
        digest.update(b"\n")
    return digest.hexdigest()


# -- records ------------------------------------------------------------------------------
def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def record_to_dict(record: InstanceRecord) -> dict[str, Any]:
    """An instance record as JSON data (its id is on the line, not here)."""
    data: dict[str, Any] = {
        "name": record.name,
        "execution_id": record.execution_id,
        "runtime_status": record.runtime_status.value,
        "created_at": record.created_at.isoformat(),
        "last_updated_at": record.last_updated_at.isoformat(),
        "history_size": record.history_size,
    }
    optional = {
        "input": record.input,
        "output": record.output,
        "custom_status": record.custom_status,
        "parent_instance_id": record.parent_instance_id,
        "failure_details": (
            None if record.failure_details is None else record.failure_details.to_dict()
        ),
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def record_from_dict(instance_id: str, data: Mapping[str, Any]) -> InstanceRecord:
    failure = data.get("failure_details")
    return InstanceRecord(
        instance_id=instance_id,
        name=data["name"],
        execution_id=data["execution_id"],
        runtime_status=OrchestrationStatus(data["runtime_status"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        last_updated_at=datetime.fromisoformat(data["last_updated_at"]),
        input=data.get("input"),
        output=data.get("output"),
        custom_status=data.get("custom_status"),
        failure_details=None if failure is None else FailureDetails.from_dict(failure),
        parent_instance_id=data.get("parent_instance_id"),
        history_size=int(data.get("history_size", 0)),
    )


def message_to_dict(message: OrchestrationMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"id": message.message_id, "event": history.to_dict(message.event)}
    if message.execution_id is not None:
        data["execution_id"] = message.execution_id
    if message.visible_at is not None:
        data["visible_at"] = message.visible_at.isoformat()
    return data


def message_from_dict(instance_id: str, data: Mapping[str, Any]) -> OrchestrationMessage:
    visible_at = data.get("visible_at")
    return OrchestrationMessage(
        instance_id=instance_id,
        event=history.from_dict(data["event"]),
        execution_id=data.get("execution_id"),
        visible_at=datetime.fromisoformat(visible_at) if visible_at else None,
        message_id=data["id"],
    )


def task_to_dict(task: ActivityTask) -> dict[str, Any]:
    data: dict[str, Any] = {
        "execution_id": task.execution_id,
        "task_id": task.task_id,
        "name": task.name,
    }
    if task.input is not None:
        data["input"] = task.input
    return data


def task_from_dict(instance_id: str, data: Mapping[str, Any]) -> ActivityTask:
    return ActivityTask(
        instance_id=instance_id,
        execution_id=data["execution_id"],
        task_id=int(data["task_id"]),
        name=data["name"],
        input=data.get("input"),
    )


# -- lines --------------------------------------------------------------------------------
def snapshot_to_dict(snapshot: InstanceSnapshot) -> dict[str, Any]:
    """One instance line's data."""
    return {
        "type": "entity" if is_entity_id(snapshot.instance_id) else "instance",
        "id": snapshot.instance_id,
        "record": None if snapshot.record is None else record_to_dict(snapshot.record),
        "history": [history.to_dict(event) for event in snapshot.history],
        "history_sha256": history_digest(snapshot.history),
        "messages": [message_to_dict(m) for m in snapshot.messages if m.visible_at is None],
        "timers": [message_to_dict(m) for m in snapshot.messages if m.visible_at is not None],
        "activity_tasks": [task_to_dict(task) for task in snapshot.activity_tasks],
    }


def snapshot_from_dict(data: Mapping[str, Any]) -> InstanceSnapshot:
    """Rebuild a snapshot from an instance line's data; checks the history's digest."""
    instance_id = data["id"]
    if not isinstance(instance_id, str) or not instance_id:
        raise TransferFormatError(f"Instance line has no valid id: {instance_id!r}")
    record_data = data.get("record")
    events = [history.from_dict(item) for item in data.get("history", [])]
    expected = data.get("history_sha256")
    if expected is not None and expected != history_digest(events):
        raise TransferFormatError(
            f"History of {instance_id!r} does not match its history_sha256 (file damaged?)"
        )
    messages = [message_from_dict(instance_id, m) for m in data.get("messages", [])]
    messages += [message_from_dict(instance_id, m) for m in data.get("timers", [])]
    return InstanceSnapshot(
        instance_id=instance_id,
        record=None if record_data is None else record_from_dict(instance_id, record_data),
        history=events,
        messages=messages,
        activity_tasks=[task_from_dict(instance_id, t) for t in data.get("activity_tasks", [])],
    )


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Counts",
    "Header",
    "TransferFormatError",
    "history_digest",
    "is_entity_id",
    "message_from_dict",
    "message_to_dict",
    "record_from_dict",
    "record_to_dict",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "task_from_dict",
    "task_to_dict",
]
