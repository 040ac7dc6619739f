"""Scenario 5, CheckSiteAvailable: a durable HTTP GET from an orchestrator.

``ctx.call_http`` runs the request in a built-in activity, so it is recorded in history and
never repeated on replay. A ``400`` (or any status) comes back as a response, not an exception,
and a ``202 Accepted`` with a ``Location`` header is polled on durable timers until the final
answer.

    ostinato worker examples.check_site_available:app
    ostinato start check_site_available --input '"https://example.com"' --wait
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ostinato as ot

app = ot.App()


@app.orchestrator
def check_site_available(ctx: ot.OrchestrationContext, url: str) -> Generator[Any, Any, str]:
    response: ot.HttpResponse = yield ctx.call_http("GET", url)
    if response.status_code >= 400:
        return f"{url} is unavailable: HTTP {response.status_code}"
    return f"{url} is available: HTTP {response.status_code}"


class _DemoSite(BaseHTTPRequestHandler):
    """A local site: ``/`` is up, ``/missing`` answers 400, ``/slow`` answers 202 twice."""

    polls = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, headers = 200, {}
        if self.path == "/missing":
            status = 400
        elif self.path == "/slow":
            type(self).polls += 1
            if type(self).polls < 3:
                status, headers = 202, {"Location": "/slow", "Retry-After": "0.1"}
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def demo_site() -> Iterator[str]:
    """Serve :class:`_DemoSite` on a free local port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DemoSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def main(provider: ot.StorageProvider | None = None, *, timeout: float = 30) -> list[str]:
    """Check three pages of a local demo site: up, missing (400) and slow (202, polled)."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with demo_site() as site, ot.Worker(app, provider):
        ids = [
            client.schedule_new_orchestration(check_site_available, input=f"{site}{path}")
            for path in ("/", "/missing", "/slow")
        ]
        return [
            ot.raise_if_failed(client.wait_for_orchestration_completion(i, timeout=timeout)).output
            for i in ids
        ]


if __name__ == "__main__":
    for line in main():
        print(line)
