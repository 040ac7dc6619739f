"""The JSON shapes of the HTTP management API (the Durable Functions conventions).

Names are camelCase, runtime statuses PascalCase (``"Running"``, ``"ContinuedAsNew"``), times
ISO 8601 in UTC with a ``Z``, and payloads (input, output, custom status, event data) are
embedded as the JSON values they were stored as.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ostinato.errors import FailureDetails
from ostinato.history import HistoryEvent
from ostinato.status import OrchestrationState, OrchestrationStatus

#: ``OrchestrationStatus`` -> its name on the wire.
STATUS_NAMES: dict[OrchestrationStatus, str] = {
    status: "".join(part.capitalize() for part in status.value.split("_"))
    for status in OrchestrationStatus
}

#: Accepted spellings (case-insensitive, ``_`` ignored) -> ``OrchestrationStatus``.
_STATUS_KEYS: dict[str, OrchestrationStatus] = {
    status.value.replace("_", "").lower(): status for status in OrchestrationStatus
}

#: History-event fields that carry a payload (shown only with ``showHistoryOutput=true``).
_PAYLOAD_FIELDS = frozenset({"input", "result", "output"})


def status_name(status: OrchestrationStatus) -> str:
    """The wire name of a runtime status (``CONTINUED_AS_NEW`` -> ``"ContinuedAsNew"``)."""
    return STATUS_NAMES[status]


def parse_status(text: str) -> OrchestrationStatus | None:
    """The status named ``text`` (``Running``, ``running``, ``CONTINUED_AS_NEW``...), or None."""
    return _STATUS_KEYS.get(text.strip().replace("_", "").lower())


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 in UTC with a ``Z`` suffix."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(text: str | None) -> Any:
    """A stored (JSON text) payload as a JSON value; text that isn't JSON stays a string."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def failure_json(details: FailureDetails | None) -> dict[str, Any] | None:
    """Failure details as ``{errorType, errorMessage, stackTrace, innerFailure}``."""
    if details is None:
        return None
    data: dict[str, Any] = {"errorType": details.error_type, "errorMessage": details.message}
    if details.stack_trace is not None:
        data["stackTrace"] = details.stack_trace
    if details.inner is not None:
        data["innerFailure"] = failure_json(details.inner)
    return data


def state_json(state: OrchestrationState, *, show_input: bool = True) -> dict[str, Any]:
    """An instance's status body (``GET /instances/{id}`` and the list endpoint)."""
    data: dict[str, Any] = {
        "name": state.name,
        "instanceId": state.instance_id,
        "runtimeStatus": status_name(state.runtime_status),
        "createdTime": iso(state.created_at),
        "lastUpdatedTime": iso(state.last_updated_at),
        "customStatus": payload(state.serialized_custom_status),
        "output": payload(state.serialized_output),
    }
    if show_input:
        data["input"] = payload(state.serialized_input)
    if state.failure_details is not None:
        data["failureDetails"] = failure_json(state.failure_details)
    if state.parent_instance_id is not None:
        data["parentInstanceId"] = state.parent_instance_id
    return data


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, OrchestrationStatus):
        return status_name(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, FailureDetails):
        return failure_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): _value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_value(item) for item in value]
    return value


def history_event_json(event: HistoryEvent, *, show_output: bool = False) -> dict[str, Any]:
    """One history event: ``eventType``, ``timestamp`` and its fields in camelCase.

    Payload fields (``input``, ``result``, ``output``) are included only with
    ``show_output``; failures appear as ``failureDetails``.
    """
    data: dict[str, Any] = {"eventType": event.event_type.value, "timestamp": iso(event.timestamp)}
    for f in dataclasses.fields(event):
        if f.name == "timestamp":
            continue
        value = getattr(event, f.name)
        if f.name in _PAYLOAD_FIELDS:
            if show_output:
                data[f.name] = payload(value)
            continue
        if value is None:
            continue
        key = "failureDetails" if f.name == "failure" else _camel(f.name)
        data[key] = _value(value)
    return data


def management_urls(instance_url: str, instance_id: str) -> dict[str, str]:
    """The management URLs of one instance, given its absolute status URL (with the id
    percent-encoded): Durable Functions' names and URL shapes. ``{eventName}`` and ``{text}``
    are placeholders for the caller to fill in (percent-encoded)."""
    return {
        "id": instance_id,
        "statusQueryGetUri": instance_url,
        "sendEventPostUri": f"{instance_url}/raiseEvent/{{eventName}}",
        "terminatePostUri": f"{instance_url}/terminate?reason={{text}}",
        "suspendPostUri": f"{instance_url}/suspend?reason={{text}}",
        "resumePostUri": f"{instance_url}/resume?reason={{text}}",
        "rewindPostUri": f"{instance_url}/rewind?reason={{text}}",
        "restartPostUri": f"{instance_url}/restart",
        "purgeHistoryDeleteUri": instance_url,
    }


def _token_mac(token: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, b"continuation\n" + token, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def encode_token(token: str | None, secret: bytes) -> str | None:
    """A provider's continuation token as header-safe ASCII, signed with ``secret``."""
    if token is None:
        return None
    raw = token.encode("utf-8")
    return f"{_b64(raw)}.{_b64(_token_mac(raw, secret))}"


def decode_token(text: str, secret: bytes) -> str | None:
    """The provider's token from :func:`encode_token` output, or ``None`` if it isn't one
    (malformed, forged, or signed with another secret)."""
    data, _, mac = text.partition(".")
    try:
        raw = _unb64(data)
        if not hmac.compare_digest(_unb64(mac), _token_mac(raw, secret)):
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def quote_segment(text: str) -> str:
    """``text`` percent-encoded as one URL path segment."""
    return quote(text, safe="")


__all__ = [
    "STATUS_NAMES",
    "decode_token",
    "encode_token",
    "failure_json",
    "history_event_json",
    "iso",
    "management_urls",
    "parse_status",
    "payload",
    "quote_segment",
    "state_json",
    "status_name",
]
