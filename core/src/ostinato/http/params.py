"""Reading and validating request parameters and bodies; every problem is a clear ``400``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from ostinato.http.wire import STATUS_NAMES, decode_token, parse_status
from ostinato.status import OrchestrationStatus

#: The largest page ``GET /instances?top=`` allows.
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status_code``."""

    def __init__(
        self, status_code: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


#: How deeply a request body's arrays and objects may nest.
MAX_JSON_DEPTH = 200


async def json_body(request: Request) -> Any:
    """The request body as a JSON value; an empty body is ``None``.

    Refused with ``400``: text that is not UTF-8 JSON, nesting deeper than
    :data:`MAX_JSON_DEPTH`, integers longer than Python converts (4,300 digits), and strings
    with unpaired surrogates (``"\\ud800"``), which no store can hold as UTF-8.
    """
    body = await request.body()
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise bad_request("The request body is not valid JSON: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request(
            f"The request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise bad_request(f"The request body has a value that cannot be read: {exc}") from None
    _check_json_value(value)
    return value


def _check_json_value(value: Any) -> None:
    """Depth and text checks of a parsed body, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise bad_request(
                    f"The request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels"
                )
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(
            'The request body has a string with an unpaired surrogate (e.g. "\\ud800"), '
            "which is not Unicode text"
        ) from None


def boolean(params: Mapping[str, str], name: str, default: bool) -> bool:
    """A ``true``/``false`` query parameter."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise bad_request(f"Query parameter '{name}' must be true or false, not {value!r}")


def statuses(values: Sequence[str], name: str = "runtimeStatus") -> frozenset[OrchestrationStatus]:
    """Runtime statuses from a repeated and/or comma-separated parameter (empty: none given)."""
    found: set[OrchestrationStatus] = set()
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            status = parse_status(part)
            if status is None:
                expected = ", ".join(STATUS_NAMES.values())
                raise bad_request(
                    f"Query parameter '{name}' has an unknown runtime status {part.strip()!r}; "
                    f"expected one of {expected}"
                )
            found.add(status)
    return frozenset(found)


def timestamp(params: Mapping[str, str], *names: str) -> datetime | None:
    """An ISO 8601 time from the first of ``names`` present (no offset: UTC)."""
    for name in names:
        value = params.get(name)
        if value is None or value == "":
            continue
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            # An unencoded '+' in a query string arrives as a space: '...T10:00:00 02:00'.
            try:
                parsed = datetime.fromisoformat(text.replace(" ", "+"))
            except ValueError:
                raise bad_request(
                    f"Query parameter '{name}' is not an ISO 8601 date/time: {value!r} "
                    "(e.g. 2024-05-01T12:00:00Z)"
                ) from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def time_range(params: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """``createdFrom``/``createdTo`` (or Durable Functions' ``createdTimeFrom``/``To``)."""
    created_from = timestamp(params, "createdFrom", "createdTimeFrom")
    created_to = timestamp(params, "createdTo", "createdTimeTo")
    if created_from is not None and created_to is not None and created_from > created_to:
        raise bad_request("'createdFrom' is later than 'createdTo'")
    return created_from, created_to


def page_size(params: Mapping[str, str], name: str = "top") -> int:
    """The page size: an integer from 1 to :data:`MAX_PAGE_SIZE`."""
    value = params.get(name)
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request(
            f"Query parameter '{name}' must be an integer from 1 to {MAX_PAGE_SIZE}, not {value!r}"
        )
    return size


def continuation_token(request: Request, secret: bytes) -> str | None:
    """The ``x-ms-continuation-token`` header or ``continuationToken`` parameter, checked."""
    given = request.headers.get("x-ms-continuation-token") or request.query_params.get(
        "continuationToken"
    )
    if not given:
        return None
    token = decode_token(given, secret)
    if token is None:
        raise bad_request(f"Invalid continuation token {given!r}: pass back the one you were given")
    return token


def text(params: Mapping[str, str], name: str) -> str | None:
    """An optional text parameter (empty means absent)."""
    value = params.get(name)
    return value if value else None


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_SIZE",
    "ApiError",
    "bad_request",
    "boolean",
    "continuation_token",
    "json_body",
    "page_size",
    "statuses",
    "text",
    "time_range",
    "timestamp",
]
