"""Queue messages: bodies (inline or in a blob), sends, visibility changes and deletes."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueMessage
from ostinato.clock import utcnow
from ostinato.provider import ActivityTask, OrchestrationMessage

from ostinato_azure._base import log
from ostinato_azure._errors import ignoring_lost_message, lost_message
from ostinato_azure._keys import queue_text
from ostinato_azure._payloads import QUEUE_INLINE_BYTES, xml_size
from ostinato_azure._records import RecordStore
from ostinato_azure._state import _Received

#: Azure Storage queues hide a message for at most 7 days; longer delays hop.
MAX_VISIBILITY = timedelta(days=7) - timedelta(minutes=5)


def with_returns(returns: int, body: str) -> str:
    """A message's content: its body, after ``~<returns>~`` unless ``returns`` is 0.

    A queue counts every receive of a message; the contract counts deliveries (a receive
    given back — abandoned, or put back without being handed out — is none, and a hand-out
    made again in-process after a lock expired is one). ``returns`` is the difference,
    carried in the message itself and rewritten only by the visibility updates the provider
    makes anyway. Bodies are JSON objects, so they never start with ``~``.
    """
    return body if returns == 0 else f"~{returns}~{body}"


def split_returns(content: str) -> tuple[int, str]:
    """``(returns, body)`` of a message's content (see :func:`with_returns`)."""
    if content.startswith("~"):
        end = content.index("~", 1)
        return int(content[1:end]), content[end + 1 :]
    return 0, content


class QueueOps(RecordStore):
    """Single-message operations on the control and activity queues."""

    def _encode_body(self, instance_id: str, text: str) -> str:
        text = queue_text(text)
        if xml_size(text) <= QUEUE_INLINE_BYTES:
            return text
        return json.dumps({"$blob": self.blobs.put(instance_id, text), "instance_id": instance_id})

    def _decode_body(self, body: str) -> str:
        body = split_returns(body)[1]
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

    def _delay_of(self, message: OrchestrationMessage) -> int:
        if message.visible_at is None:
            return 0
        # Rounded down: the queue shows it a little early and the receiver holds it until
        # ``visible_at`` (so timers are neither early nor a second late).
        remaining = message.visible_at - utcnow()
        return max(0, math.floor(min(remaining, MAX_VISIBILITY).total_seconds()))

    def _update_received(self, received: _Received, seconds: int) -> None:
        """Set a held message's visibility (and its returns, if they changed); raises
        ``HttpResponseError`` if it is not ours any more."""
        self.count("queue.update")
        content = None
        if received.returns != received.stored_returns:
            content = with_returns(received.returns, received.body)
        receipt = self._control[received.queue].update_message(
            received.message_id,
            pop_receipt=received.pop_receipt,
            content=content,
            visibility_timeout=seconds,
        )
        received.pop_receipt = str(receipt.pop_receipt)
        received.stored_returns = received.returns

    def _set_visibility(self, received: _Received, seconds: int, give_back: bool = False) -> bool:
        """Change a held message's visibility; ``False`` if someone else holds it now.

        ``give_back``: the receive was no delivery (abandoned, or never handed out), so the
        queue's next receive of it does not count.
        """
        if give_back:
            received.returns += 1
        try:
            self._update_received(received, seconds)
        except HttpResponseError as exc:
            if give_back:
                received.returns -= 1
            if lost_message(exc):
                return False
            raise
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

    def _rearm(self, queue: int, raw: QueueMessage, message: OrchestrationMessage) -> None:
        self._send_orchestration_message(message)
        self.count("queue.delete")
        with ignoring_lost_message():
            self._control[queue].delete_message(raw.id, pop_receipt=raw.pop_receipt)
