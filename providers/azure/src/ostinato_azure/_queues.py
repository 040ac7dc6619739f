"""Queue messages: bodies (inline or in a blob), sends, visibility changes and deletes."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.queue import QueueClient, QueueMessage
from ostinato.clock import utcnow
from ostinato.provider import ActivityTask, OrchestrationMessage

from ostinato_azure._base import _HAND_OVER_WINDOW, _MARGIN, log
from ostinato_azure._errors import ignoring_lost_message, lost_message
from ostinato_azure._keys import queue_text
from ostinato_azure._payloads import QUEUE_INLINE_BYTES, xml_size
from ostinato_azure._records import RecordStore
from ostinato_azure._state import _ActivityLock, _Received

#: Azure Storage queues hide a message for at most 7 days; longer delays hop.
MAX_VISIBILITY = timedelta(days=7) - timedelta(minutes=5)
#: Activity tasks are held for this process's activity worker only while it polls this
#: recently, and only this many at a time (the rest are sent visible, for any worker).
_LOCAL_POLLED_WITHIN = 5.0
_LOCAL_TASKS_MAX = 64


def with_count(delivered: int, body: str) -> str:
    """A message's content: ``~<delivered>~`` and its body.

    A queue counts receives, and a receive is not a delivery: a process receives up to 32
    messages at once and hands out only some (a crash then charges the rest, innocents, too).
    So the provider counts hand-outs itself and keeps the count in the message: a message
    without a prefix was handed out at most once (its first receive may have been one); one
    received again is written its count when it is handed out again, in the visibility update
    it gets anyway. Bodies are JSON objects, so they never start with ``~``.
    """
    return f"~{delivered}~{body}"


def split_count(content: str) -> tuple[int | None, str]:
    """``(delivered, body)`` of a message's content (``None``: no count; see
    :func:`with_count`)."""
    if content.startswith("~"):
        end = content.index("~", 1)
        return int(content[1:end]), content[end + 1 :]
    return None, content


def delivered_before(stored: int | None, dequeue_count: int) -> int:
    """Deliveries of a just-received message so far: its stored count, else 0 on its first
    receive and 1 after (an earlier receive may have been a hand-out)."""
    if stored is not None:
        return stored
    return 0 if dequeue_count <= 1 else 1


def needs_count(stored: int | None, delivered: int) -> bool:
    """Whether the queue must be told ``delivered``: a receiver after a crash now would
    compute another count (see :func:`delivered_before`)."""
    return delivered != (1 if stored is None else stored)


class QueueOps(RecordStore):
    """Single-message operations on the control and activity queues."""

    def _encode_body(self, instance_id: str, text: str) -> str:
        text = queue_text(text)
        if xml_size(text) <= QUEUE_INLINE_BYTES:
            return text
        return json.dumps({"$blob": self.blobs.put(instance_id, text), "instance_id": instance_id})

    def _decode_body(self, body: str) -> str:
        body = split_count(body)[1]
        if body.startswith('{"$blob"'):
            return self.blobs.get(json.loads(body)["$blob"])
        return body

    def _send_orchestration_message(
        self,
        message: OrchestrationMessage,
        delivered: int | None = None,
        queue: int | None = None,
        delay: int | None = None,
    ) -> None:
        """Send ``message`` to its control queue (``queue``: its index, if known), visible
        after ``delay`` seconds (default: its ``visible_at``); ``delivered``: deliveries it
        already had (see :func:`with_count`)."""
        body = self._encode_body(message.instance_id, message.to_json())
        if delay is None:
            delay = self._delay_of(message)
        if queue is None:
            queue = self._queue_index(message.instance_id)
        content = body if delivered is None else with_count(delivered, body)
        self.count("queue.send")
        self._control[queue].send_message(
            content, visibility_timeout=delay or None, time_to_live=-1
        )
        self._control_pacer.news(queue)

    def _send_activity(self, task: ActivityTask, hold: bool = False) -> _ActivityLock | None:
        """Send an activity task; with ``hold`` (and an activity worker polling in this
        process), sent invisible and returned with its pop receipt, for :meth:`_hold_task`.

        A held task is on the queue like any other (durable, with ``time_to_live=-1``); it
        only starts hidden, as if this process had received it. If this process dies, it
        becomes visible when that visibility lapses and any worker receives it. It is sent
        with a delivery count of 1 (see :func:`with_count`): handed out here is its first
        delivery, so a receiver after a crash counts the second.
        """
        body = self._encode_body(task.instance_id, task.to_json())
        with self._mutex:
            hold = (
                hold
                and bool(self._workers)
                and time.monotonic() - self._activity_polled < _LOCAL_POLLED_WITHIN
                and len(self._local_tasks) < _LOCAL_TASKS_MAX
                # (with a short lock, a held task would reach the hand-over window before
                # it is taken, and wait its whole visibility on the queue)
                and timedelta(seconds=self._activity_seconds) >= 2 * _HAND_OVER_WINDOW
            )
            seconds = self._activity_seconds
        self.count("queue.send")
        sent = self._activity_queue.send_message(
            with_count(1, body) if hold else body,
            visibility_timeout=seconds if hold else None,
            time_to_live=-1,
        )
        if not hold:
            self._activity_pacer.news(None)
            return None
        now = utcnow()
        return _ActivityLock(
            str(sent.id),
            str(sent.pop_receipt),
            now,
            now + timedelta(seconds=seconds) - _MARGIN,
            task,
            1,
            body=body,
            stored=1,
        )

    def _hold_task(self, held: _ActivityLock) -> None:
        """Keep a task sent with ``hold`` for this process's activity worker: it is handed
        out without a receive (``lock_next_activity_work_items`` takes these first)."""
        with self._mutex:
            self._local_tasks.append(held)

    def _release_local_tasks(self) -> None:
        """Make the held tasks no one here took visible again (this process stops working),
        with their delivery count back at 0."""
        with self._mutex:
            released = list(self._local_tasks)
            self._local_tasks.clear()
        for held in released:
            self.count("queue.update")
            try:
                self._activity_queue.update_message(
                    held.message_id,
                    pop_receipt=held.pop_receipt,
                    content=with_count(0, held.body),
                    visibility_timeout=0,
                )
            except AzureError:
                pass  # it becomes visible when its visibility lapses anyway

    def _delay_of(self, message: OrchestrationMessage) -> int:
        if message.visible_at is None:
            return 0
        # Rounded down: the queue shows it a little early and the receiver holds it until
        # ``visible_at`` (so timers are neither early nor a second late).
        remaining = message.visible_at - utcnow()
        return max(0, math.floor(min(remaining, MAX_VISIBILITY).total_seconds()))

    def _queue_of(self, received: _Received) -> QueueClient:
        """The queue a held message is on (an activity result handed over in-process is held
        as the activity task it answers)."""
        return self._activity_queue if received.on_task_queue else self._control[received.queue]

    @staticmethod
    def _tells_count(received: _Received) -> bool:
        """Whether the queue must be told the message's delivery count (never for a result
        held as its task: the task's content is the task)."""
        return not received.on_task_queue and needs_count(received.stored, received.delivered)

    def _update_received(self, received: _Received, seconds: int) -> None:
        """Set a held message's visibility (and its count, if the queue must be told); raises
        ``HttpResponseError`` if it is not ours any more."""
        self.count("queue.update")
        content = None
        if self._tells_count(received):
            content = with_count(received.delivered, received.body)
        receipt = self._queue_of(received).update_message(
            received.message_id,
            pop_receipt=received.pop_receipt,
            content=content,
            visibility_timeout=seconds,
        )
        received.pop_receipt = str(receipt.pop_receipt)
        if content is not None:
            received.stored = received.delivered

    def _set_visibility(self, received: _Received, seconds: int, give_back: bool = False) -> bool:
        """Change a held message's visibility; ``False`` if someone else holds it now.

        ``give_back``: its delivery is given back (abandoned; a lost race), so the next one
        has the same count.
        """
        if give_back:
            received.delivered -= 1
        try:
            self._update_received(received, seconds)
        except HttpResponseError as exc:
            if give_back:
                received.delivered += 1
            if lost_message(exc):
                return False
            raise
        return True

    def _let_go(self, received: _Received, seconds: int, give_back: bool = False) -> bool:
        """Give a held message back to the queue, visible after ``seconds``; ``False`` if
        someone else holds it now.

        An activity result held as its task is sent to its control queue as a message of its
        own (with its delivery count), then the task is deleted: a crash between the two runs
        the activity again, and the core drops the second result.
        """
        if not received.on_task_queue:
            return self._set_visibility(received, seconds, give_back)
        assert received.message is not None
        delivered = received.delivered - 1 if give_back else received.delivered
        self._send_orchestration_message(
            received.message, max(0, delivered), received.queue, seconds
        )
        received.delivered = delivered
        self._delete_received(received)
        return True

    def _delete_received(self, received: _Received) -> bool:
        """Delete a consumed message; ``False`` if another receiver took it meanwhile."""
        self.count("queue.delete")
        try:
            self._queue_of(received).delete_message(
                received.message_id, pop_receipt=received.pop_receipt
            )
        except HttpResponseError as exc:
            if not lost_message(exc):
                raise
            # Its visibility lapsed and someone else holds it now: it is redelivered.
            log.debug("Control message %s was already taken or deleted", received.message_id)
            return False
        return True

    def _rearm(self, queue: int, raw: QueueMessage, message: OrchestrationMessage) -> None:
        self._send_orchestration_message(message)
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)
