"""uvicorn settings that bound what one client can hold: connections, time, header size.

uvicorn offers a connection limit (``limit_concurrency``: requests beyond it are answered
``503``), an idle timeout (``timeout_keep_alive``) and a header size limit (h11's
``max_incomplete_event_size``). It has no timeout for a request head that is never completed,
so a client could hold connections open forever by sending nothing (or a byte now and then):
:class:`HeaderTimeoutProtocol` is uvicorn's h11 protocol closing a connection whose request
head has not arrived within ``header_timeout`` seconds of the connection or of the previous
answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ServerLimits:
    """Per-server bounds (see the module docstring)."""

    #: Seconds a client has to send a complete request head.
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection stays open.
    idle_timeout: int = 5
    #: Connections (and requests in progress) at once; beyond it requests get ``503``.
    max_connections: int = 1000
    #: The largest request head (request line and headers), in bytes.
    max_header_size: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_connections < 1 or self.max_header_size < 1024:
            raise ValueError("max_connections must be >= 1 and max_header_size >= 1024")


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that don't send a request head in time."""

    header_timeout: float = ServerLimits.header_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)  # type: ignore[arg-type]
        self._update_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _update_header_timer(self) -> None:
        waiting_for_head = self.conn.their_state is h11.IDLE
        if waiting_for_head and self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_expired)
        elif not waiting_for_head:
            self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.debug("Closing a connection that sent no request head in time")
            self.transport.close()


def uvicorn_config(
    app: ASGIApp, *, host: str, port: int, limits: ServerLimits | None = None, **options: Any
) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving ``app`` within ``limits`` (other options passed on)."""
    limits = limits or ServerLimits()
    protocol = type(
        "HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": limits.header_timeout}
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.idle_timeout,
        h11_max_incomplete_event_size=limits.max_header_size,
        **options,
    )


__all__ = ["HeaderTimeoutProtocol", "ServerLimits", "uvicorn_config"]
