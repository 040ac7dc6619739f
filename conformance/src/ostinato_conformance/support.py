"""Small builders and helpers the suite uses to talk to a provider directly.

They are public so that provider authors can write extra tests in the same vocabulary.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from ostinato.clock import utcnow
from ostinato.history import EventRaised, ExecutionStarted, HistoryEvent
from ostinato.provider import (
    ActivityTask,
    ActivityWorkItem,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus

T = TypeVar("T")

#: A lock timeout long enough never to expire during a test.
LONG_LOCK = timedelta(minutes=5)
#: How long the suite waits for something a provider should do promptly (seconds); set
#: ``OSTINATO_CONFORMANCE_PROMPTLY`` to change it (e.g. higher for a slow remote store).
PROMPTLY = float(os.environ.get("OSTINATO_CONFORMANCE_PROMPTLY", "5"))
#: How long the suite waits for an orchestration to finish (seconds).
COMPLETION_TIMEOUT = 6 * PROMPTLY


def new_record(
    instance_id: str,
    *,
    name: str = "conformance",
    status: OrchestrationStatus = OrchestrationStatus.PENDING,
    input: str | None = None,
    created_at: datetime | None = None,
) -> InstanceRecord:
    """An instance record as the client would write it (fresh execution id)."""
    now = created_at or utcnow()
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=uuid.uuid4().hex,
        runtime_status=status,
        created_at=now,
        last_updated_at=now,
        input=input,
    )


def start_message(
    record: InstanceRecord, visible_at: datetime | None = None
) -> OrchestrationMessage:
    """The ``ExecutionStarted`` message that goes with ``record``."""
    return OrchestrationMessage(
        instance_id=record.instance_id,
        execution_id=record.execution_id,
        visible_at=visible_at,
        event=ExecutionStarted(
            timestamp=record.created_at,
            name=record.name,
            execution_id=record.execution_id,
            input=record.input,
        ),
    )


def create(
    provider: StorageProvider,
    instance_id: str,
    *,
    policy: ReuseIdPolicy = ReuseIdPolicy.REPLACE_TERMINAL,
    **fields: object,
) -> InstanceRecord:
    """Create an instance (record + start message) and return its record."""
    record = new_record(instance_id, **fields)  # type: ignore[arg-type]
    provider.create_instance(record, start_message(record), policy)
    return record


def event_message(
    instance_id: str,
    n: int | str,
    *,
    visible_at: datetime | None = None,
    payload: str | None = None,
) -> OrchestrationMessage:
    """An external-event message numbered ``n`` (its input is ``payload`` or ``n`` as JSON)."""
    return OrchestrationMessage(
        instance_id=instance_id,
        visible_at=visible_at,
        event=EventRaised(name=f"e{n}", input=payload if payload is not None else json.dumps(n)),
    )


def event_names(messages: Iterable[OrchestrationMessage]) -> list[str]:
    """The names of the ``EventRaised`` events among ``messages``, in order."""
    return [m.event.name for m in messages if isinstance(m.event, EventRaised)]


def activity_task(record: InstanceRecord, task_id: int, input: str | None = None) -> ActivityTask:
    """An activity task of ``record``'s execution."""
    return ActivityTask(
        instance_id=record.instance_id,
        execution_id=record.execution_id,
        task_id=task_id,
        name="conformance_activity",
        input=input,
    )


def consume(
    provider: StorageProvider,
    item: OrchestrationWorkItem,
    *,
    history: list[HistoryEvent] | None = None,
    **changes: object,
) -> None:
    """Complete ``item`` appending its events to history (record updated with ``changes``)."""
    record = item.instance
    new_history = history if history is not None else [m.event for m in item.messages]
    if record is not None:
        record = record.with_changes(
            history_size=record.history_size + len(new_history),
            last_updated_at=utcnow(),
            **changes,
        )
    provider.complete_orchestration_work_item(
        item, OrchestrationCheckpoint(instance=record, new_history=new_history)
    )


def poll(
    fn: Callable[[], T | None], timeout: float = PROMPTLY, interval: float = 0.005
) -> T | None:
    """Call ``fn`` until it returns something other than ``None`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
        interval = min(interval * 2, 0.1)


def lock_orchestration(
    provider: StorageProvider,
    worker: str = "worker-1",
    lock_timeout: timedelta = LONG_LOCK,
    timeout: float = PROMPTLY,
) -> OrchestrationWorkItem | None:
    """Lock the next orchestration work item, waiting up to ``timeout`` seconds for one."""
    return poll(lambda: provider.lock_next_orchestration_work_item(worker, lock_timeout), timeout)


def lock_activity(
    provider: StorageProvider,
    worker: str = "worker-1",
    lock_timeout: timedelta = LONG_LOCK,
    timeout: float = PROMPTLY,
) -> ActivityWorkItem | None:
    """Lock the next activity work item, waiting up to ``timeout`` seconds for one."""
    return poll(lambda: provider.lock_next_activity_work_item(worker, lock_timeout), timeout)


def drain(
    provider: StorageProvider, *, quiet_for: float = 0.05, timeout: float = PROMPTLY
) -> list[OrchestrationMessage]:
    """Lock and consume orchestration work items until none comes for ``quiet_for`` seconds.

    The messages are consumed without changing the instance or its history. Returns every
    message consumed, in the order they were handed out.
    """
    consumed: list[OrchestrationMessage] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = lock_orchestration(provider, "drainer", timeout=quiet_for)
        if item is None:
            break
        consumed.extend(item.messages)
        provider.complete_orchestration_work_item(item, OrchestrationCheckpoint(instance=None))
    return consumed


def wait_until_consumed(provider: StorageProvider, timeout: float = PROMPTLY) -> bool:
    """Wait (while a worker runs) until no orchestration work is left; False on timeout.

    Probes by locking; a probed work item is abandoned at once for the worker to take.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        probe = provider.lock_next_orchestration_work_item("probe", LONG_LOCK)
        if probe is None:
            return True
        provider.abandon_orchestration_work_item(probe)
    return False


def payload_of_size(size: int) -> str:
    """A payload of exactly ``size`` UTF-8 bytes: a JSON string mixing ASCII and multi-byte text.

    Size 0 gives the empty text (zero bytes) and size 1 the JSON number ``0``.
    """
    if size == 0:
        return ""
    if size == 1:
        return "0"
    body_size = size - 2  # the quotes
    chunk = "ostinato-\u00e9\u4e50\U0001f3b5|"  # 9 + 2 + 3 + 4 + 1 = 19 bytes
    chunk_bytes = len(chunk.encode("utf-8"))
    text = chunk * (body_size // chunk_bytes)
    text += "x" * (body_size - len(text.encode("utf-8")))
    payload = json.dumps(text, ensure_ascii=False)
    assert len(payload.encode("utf-8")) == size, (len(payload.encode("utf-8")), size)
    return payload
