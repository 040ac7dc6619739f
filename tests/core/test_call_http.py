"""ctx.call_http against a real HTTP server started by the test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ostinato as ot
import pytest
from ostinato.history import TimerCreated

from .conftest import WorkerFactory, run_to_completion

polls: dict[str, int] = {}
seen_auth: list[str | None] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        seen_auth.append(self.headers.get("Authorization"))
        if self.path == "/ok":
            self._send(200, {"site": "up"})
        elif self.path == "/bad":
            self._send(400, {"error": "bad request"})
        elif self.path == "/boom":
            self._send(503, {"error": "unavailable"})
        elif self.path.startswith("/slow"):
            time.sleep(1.0)
            self._send(200, {})
        elif self.path.startswith("/job/"):
            job = self.path.removeprefix("/job/")
            polls[job] = polls.get(job, 0) + 1
            if polls[job] < 3:
                self._send(
                    202, {"status": "running"}, {"Location": f"/job/{job}", "Retry-After": "0.1"}
                )
            else:
                self._send(200, {"status": "done", "polls": polls[job]})
        else:
            self._send(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if self.path == "/start":
            job = body["job"]
            self._send(
                202,
                {"accepted": True},
                {"Location": f"http://127.0.0.1:{self.server.server_port}/job/{job}"},
            )
        else:
            self._send(200, {"echo": body, "type": self.headers.get("Content-Type")})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


app = ot.App()


@app.token_provider("test-token")
def token() -> str:
    return "secret-token"


@app.orchestrator
def check_site(ctx: ot.OrchestrationContext, url: str) -> Any:
    response = yield ctx.call_http("GET", url)
    return [response.status_code, response.json()]


@app.orchestrator
def post_and_poll(ctx: ot.OrchestrationContext, args: tuple[str, str]) -> Any:
    base, job = args
    response = yield ctx.call_http("POST", f"{base}/start", content={"job": job})
    return [response.status_code, response.json()]


@app.orchestrator
def with_options(ctx: ot.OrchestrationContext, args: tuple[str, str]) -> Any:
    base, case = args
    if case == "timeout":
        try:
            yield ctx.call_http("GET", f"{base}/slow", timeout=0.2)
        except ot.TaskFailedError as exc:
            return exc.details.error_type
    if case == "token":
        response = yield ctx.call_http("GET", f"{base}/ok", token_source="test-token")
        return response.status_code
    if case == "no-poll":
        response = yield ctx.call_http(
            "POST", f"{base}/start", content={"job": "np"}, asynchronous_patterns=False
        )
        return response.status_code
    if case == "echo":
        response = yield ctx.call_http("POST", f"{base}/echo", content=[1, "two"])
        return response.json()
    if case == "unreachable":
        policy = ot.RetryPolicy(timedelta(milliseconds=10), max_number_of_attempts=3)
        try:
            yield ctx.call_http("GET", "http://127.0.0.1:9/", retry_policy=policy)
        except ot.TaskFailedError as exc:
            return exc.details.error_type
    return None


def test_success_and_error_statuses_are_responses(
    server: str, client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        ok = run_to_completion(client, check_site, input=f"{server}/ok")
        bad = run_to_completion(client, check_site, input=f"{server}/bad")
        boom = run_to_completion(client, check_site, input=f"{server}/boom")
    assert ok.output == [200, {"site": "up"}]
    assert bad.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert bad.output == [400, {"error": "bad request"}]
    assert boom.output == [503, {"error": "unavailable"}]


def test_202_with_location_is_polled_on_durable_timers(
    server: str, client: ot.Client, worker: WorkerFactory
) -> None:
    with worker(app):
        state = run_to_completion(client, post_and_poll, input=(server, "j1"))
    assert state.output == [200, {"status": "done", "polls": 3}]
    timers = [
        e
        for e in client.get_orchestration_history(state.instance_id)
        if isinstance(e, TimerCreated)
    ]
    # One timer before each poll: the POST's 202 has no Retry-After (default interval), the
    # two 202s of the polls ask for 0.1 s.
    delays = [t.fire_at - t.timestamp for t in timers]
    assert delays == [timedelta(seconds=1), timedelta(seconds=0.1), timedelta(seconds=0.1)]


def test_options_timeout_token_polling_off_json_body_and_retries(
    server: str, client: ot.Client, worker: WorkerFactory
) -> None:
    seen_auth.clear()
    with worker(app):
        results = {
            case: run_to_completion(client, with_options, input=(server, case)).output
            for case in ("timeout", "token", "no-poll", "echo", "unreachable")
        }
    assert results["timeout"] == "ReadTimeout"
    assert results["token"] == 200 and "Bearer secret-token" in seen_auth
    assert results["no-poll"] == 202
    assert results["echo"] == {"echo": [1, "two"], "type": "application/json"}
    assert results["unreachable"] == "ConnectError"
