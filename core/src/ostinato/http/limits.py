"""Bounds on a request before an endpoint sees it: its body size and its URL's encoding.

The body limit is Starlette's streaming guard (:class:`RequestBodyLimitMiddleware`): it counts
bytes as they are received and stops at the limit, so a 200 MB body never sits in memory. A
body whose ``Content-Length`` already says it is too large is refused here, before a byte
of it is read. URLs whose percent-escapes are not UTF-8, or that encode a ``/`` inside a
segment, are refused with ``400`` instead of being turned into U+FFFD or extra segments.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: The default largest request body, in bytes (16 MiB).
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def url_problem(raw_path: bytes, query_string: bytes) -> str | None:
    """Why a request URL cannot be taken as it is, or None."""
    if b"%2f" in raw_path.lower():
        return (
            "The URL path contains an encoded '/' (%2F): instance ids, event names and entity "
            "names or keys cannot contain '/'"
        )
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return "The URL path has percent-escapes that are not UTF-8 text"
    try:
        unquote_to_bytes(query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return "The query string has percent-escapes that are not UTF-8 text"
    return None


class RequestLimitMiddleware:
    """Refuses bad URLs and declared-too-large bodies, then limits the body as it streams."""

    def __init__(self, app: ASGIApp, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        if max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        self.max_body_size = max_body_size
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = url_problem(
            scope.get("raw_path") or scope["path"].encode("utf-8"), scope.get("query_string", b"")
        )
        if problem is not None:
            await _error(400, problem)(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _error(400, f"Invalid Content-Length {declared!r}")(scope, receive, send)
                return
            if int(declared) > self.max_body_size:
                await self.too_large()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def too_large(self) -> JSONResponse:
        return too_large(self.max_body_size)


def too_large(max_body_size: int) -> JSONResponse:
    """The ``413`` answer for a body over ``max_body_size`` bytes.

    It closes the connection, so the server stops receiving the rest of the body.
    """
    message = f"The request body is larger than {max_body_size:,} bytes"
    return _error(413, message, {"Connection": "close"})


__all__ = ["DEFAULT_MAX_BODY_SIZE", "RequestLimitMiddleware", "too_large", "url_problem"]
