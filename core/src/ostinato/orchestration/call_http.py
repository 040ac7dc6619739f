"""``ctx.call_http``: durable HTTP requests from orchestrations.

The request runs in a built-in activity (``ostinato.http``, on httpx), so it is recorded in
history like any activity and never re-sent on replay. Every status code — 4xx and 5xx included
— comes back as an :class:`HttpResponse`, not an exception; network errors and timeouts fail
the task (and are retried if a ``retry_policy`` is given). With ``asynchronous_patterns`` (the
default), a ``202 Accepted`` carrying a ``Location`` header is polled with ``GET`` on durable
timers, honouring ``Retry-After``, until a final response arrives. A ``token_source`` names a
token provider registered with ``@app.token_provider(name)``; it runs in the worker and its
token is sent as ``Authorization: Bearer ...``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

from ostinato.converter import JsonDataConverter
from ostinato.orchestration.task import CompletableTask, Scheduler, Task
from ostinato.retry import RetryPolicy

HTTP_ACTIVITY = "ostinato.http"


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request, as the built-in activity receives it."""

    method: str
    url: str
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    token_source: str | None = None


@dataclass(frozen=True)
class HttpResponse:
    """A response: status code, headers (lower-case names) and the body as text."""

    status_code: int
    headers: dict[str, str]
    content: str

    def header(self, name: str) -> str | None:
        """A header's value (case-insensitive), or ``None``."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def make_http_activity(token_providers: Mapping[str, Callable[[], str]]) -> Any:
    """The built-in activity that performs a request (needs ``httpx``: ``ostinato[http]``)."""

    def http_request(ctx: Any, request: HttpRequest) -> HttpResponse:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "ctx.call_http needs httpx; install it with `pip install ostinato[http]`"
            ) from exc
        headers = dict(request.headers)
        if request.token_source is not None:
            provider = token_providers.get(request.token_source)
            if provider is None:
                raise LookupError(f"No token provider named {request.token_source!r} is registered")
            headers["Authorization"] = f"Bearer {provider()}"
        response = httpx.request(
            request.method,
            request.url,
            content=request.content,
            headers=headers,
            timeout=request.timeout if request.timeout is not None else 100.0,
            follow_redirects=False,
        )
        return HttpResponse(
            status_code=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            content=response.text,
        )

    http_request.__annotations__ = {"ctx": Any, "request": HttpRequest, "return": HttpResponse}
    return http_request


def retry_after(response: HttpResponse, default: timedelta) -> timedelta:
    """The delay a 202 response asks for (``Retry-After`` in seconds), else ``default``."""
    value = response.header("retry-after")
    if value is not None:
        try:
            return timedelta(seconds=max(0.0, float(value)))
        except ValueError:
            pass
    return default


class HttpTask(CompletableTask[HttpResponse]):
    """The task ``ctx.call_http`` returns: the request, then polling while it answers 202."""

    def __init__(
        self,
        run: Scheduler,
        request: HttpRequest,
        retry_policy: RetryPolicy | None,
        asynchronous_patterns: bool,
        poll_interval: timedelta,
    ) -> None:
        super().__init__()
        self._run = run
        self._request = request
        self._retry_policy = retry_policy
        self._asynchronous_patterns = asynchronous_patterns
        self._poll_interval = poll_interval
        self._url = request.url
        self._send(request)

    def _send(self, request: HttpRequest) -> None:
        self._url = request.url
        attempt = self._run.call_activity(HTTP_ACTIVITY, request, self._retry_policy)
        attempt.add_done_callback(self._on_child_completed)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self.is_complete:
            return
        if child.is_failed:
            exc = child.get_exception()
            assert exc is not None
            self._set_exception(exc)
            return
        response = child._result
        if not isinstance(response, HttpResponse):  # an activity result decoded without a hint
            response = JsonDataConverter().from_json_value(response, HttpResponse)
        location = response.header("location")
        if self._asynchronous_patterns and response.status_code == 202 and location:
            poll = HttpRequest(
                method="GET",
                url=urljoin(self._url, location),
                headers=self._request.headers,
                timeout=self._request.timeout,
                token_source=self._request.token_source,
            )
            timer = self._run.create_timer(retry_after(response, self._poll_interval))
            timer.add_done_callback(lambda _: self._send(poll))
            return
        self._set_result(response)


__all__ = [
    "HTTP_ACTIVITY",
    "HttpRequest",
    "HttpResponse",
    "HttpTask",
    "make_http_activity",
    "retry_after",
]
