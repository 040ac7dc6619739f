"""Helpers of the HTTP API tests: uvicorn in a thread, and a small client for the API."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import ostinato as ot
import uvicorn
from starlette.types import ASGIApp


class ServerThread:
    """uvicorn serving ``asgi`` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, asgi: ASGIApp) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(asgi, lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def poll_until_done(http: httpx.Client, url: str, timeout: float = 20) -> httpx.Response:
    """GET the status ``url`` until it answers 200 (the instance has finished)."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(url)
        if response.status_code == 200:
            return response
        assert response.status_code == 202, response.text
        assert time.monotonic() < deadline, f"gave up polling {url}: {response.text}"
        time.sleep(0.02)


@dataclass
class Api:
    """A running API: its base URL, an httpx client for it, and the provider behind it."""

    url: str
    http: httpx.Client
    provider: ot.StorageProvider
    provider_name: str
    headers: dict[str, str] = field(default_factory=dict)

    def new_id(self, prefix: str = "job") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def start(self, name: str, instance_id: str | None = None, **kwargs: Any) -> httpx.Response:
        path = f"/orchestrators/{name}" + (f"/{instance_id}" if instance_id is not None else "")
        return self.http.post(path, **kwargs)

    def status(self, instance_id: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/instances/{instance_id}", params=params)

    def poll(
        self,
        url: str,
        until: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
        timeout: float = 20,
    ) -> httpx.Response:
        """GET ``url`` until ``until(response)`` (default: a 200), as a client would poll."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(url)
            if until(response):
                return response
            assert time.monotonic() < deadline, f"gave up polling {url}: {response.text}"
            time.sleep(0.02)

    def wait_status(self, instance_id: str, runtime_status: str) -> httpx.Response:
        return self.poll(
            f"/instances/{instance_id}",
            lambda r: r.status_code in (200, 202) and r.json()["runtimeStatus"] == runtime_status,
        )
