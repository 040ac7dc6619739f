"""What the provider holds in memory: received messages, work-item locks, cached rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ostinato.provider import ActivityTask, InstanceRecord, OrchestrationMessage


@dataclass
class _Received:
    """A control-queue message this process holds invisible."""

    queue: int
    message_id: str
    pop_receipt: str
    #: ``None``: the message could not be decoded (``reason`` says why); it names its
    #: instance (``instance_id``) and becomes a dead letter when its work item completes.
    message: OrchestrationMessage | None
    dequeue_count: int  # the queue's own count of receives
    expires: datetime  # when the queue makes it visible again (less a margin)
    not_before: datetime | None = None  # abandoned with a delay while the queue was down
    #: Held back until its instance's next execution starts (see ``_waits_for_start``):
    #: not handed out before this time, unless that start is buffered too.
    start_wait_until: datetime | None = None
    start_waits: int = 0
    held_since: datetime | None = None
    #: The stored body (without the count prefix, see ``_queues.with_count``).
    body: str = ""
    #: Deliveries so far (hand-outs in work items, this one included once handed out).
    delivered: int = 0
    #: The count the message on the queue holds (``None``: no prefix).
    stored: int | None = None
    #: The instance the message is for (also when it could not be decoded).
    instance_id: str = ""
    #: Why the message could not be decoded (``message`` is ``None``), else ``""``.
    reason: str = ""
    #: An activity result handed over in-process (see ``_activities``): ``message_id`` and
    #: ``pop_receipt`` are those of the activity task it answers, on the work-item queue,
    #: which stays invisible until the step that consumes the result deletes it. ``queue``
    #: is still its instance's control queue (the partition that holds it).
    on_task_queue: bool = False

    @property
    def deliveries(self) -> int:
        """Deliveries of this message so far (the contract's count, at least 1)."""
        return max(1, self.delivered)


@dataclass
class _OrchLock:
    """The provider's state of one orchestration work item."""

    token: str
    expires: datetime
    received: list[_Received]
    #: The instance row's ETag (the row is the history's sentinel): the storage-side lock.
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
    dequeue_count: int  # the queue's own count of receives
    done: bool = False
    body: str = ""
    delivered: int = 0
    stored: int | None = None

    @property
    def deliveries(self) -> int:
        """Deliveries of this task so far (the contract's count, at least 1)."""
        return max(1, self.delivered)


@dataclass(frozen=True)
class _CachedRow:
    """An instance row as this process last wrote it."""

    version: int
    record: InstanceRecord
    inbox_cutoff: datetime | None
    sentinel_etag: str | None
    sentinel_execution: str | None
    sentinel_size: int


@dataclass
class _Sentinel:
    """The instance row read as the history's sentinel (a tombstone too)."""

    etag: str
    execution_id: str
    history_size: int
    version: int
    entity: dict[str, Any] = field(default_factory=dict)
