"""Scenario 2, a singleton background job started over HTTP.

``POST /orchestrators/{name}/{instance_id}`` starts the instance and answers ``202 Accepted``
with its status-query and management URLs (and a ``Location`` header), or ``409 Conflict`` with
"An instance with ID '…' already exists." while it runs; a finished one is replaced. The check
and the create are one atomic step in the provider, so concurrent POSTs start it once.

    ostinato serve examples.singleton_http:app --port 8080
    curl -i -X POST localhost:8080/orchestrators/background_job/nightly --data '{"steps": 3}'
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()


@dataclass(frozen=True)
class Job:
    steps: int = 3
    step_seconds: float = 0.2


@app.activity
def do_step(ctx: ot.ActivityContext, step: int) -> str:
    return f"step {step} done"


@app.orchestrator
def background_job(ctx: ot.OrchestrationContext, job: Job | None) -> Generator[Any, Any, list[str]]:
    job = job or Job()
    done = []
    for step in range(job.steps):
        done.append((yield ctx.call_activity(do_step, input=step)))
        ctx.set_custom_status({"completed_steps": step + 1})
        yield ctx.create_timer(timedelta(seconds=job.step_seconds))
    return done


@contextmanager
def serve(provider: ot.StorageProvider) -> Iterator[str]:
    """Run the HTTP management API and a worker in this process; yields the base URL."""
    import uvicorn
    from ostinato.http import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(provider, app=app), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    with ot.Worker(app, provider):
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join()


def main(provider: ot.StorageProvider | None = None, *, timeout: float = 30) -> list[int]:
    """Start the job twice while it runs (202, then 409), wait for it, start it again (202)."""
    import httpx

    provider = provider or ot.provider_from_config()
    codes = []
    with serve(provider) as base, httpx.Client(base_url=base, timeout=10) as http:
        url = "/orchestrators/background_job/nightly-job"
        first = http.post(url, json={"steps": 2, "step_seconds": 0.2})
        codes.append(first.status_code)
        codes.append(http.post(url, json={"steps": 1}).status_code)
        status_url = first.headers["Location"]
        deadline = time.monotonic() + timeout
        while http.get(status_url).status_code == 202:
            if time.monotonic() > deadline:
                raise TimeoutError("the job did not finish")
            time.sleep(0.05)
        codes.append(http.post(url, json={"steps": 1, "step_seconds": 0}).status_code)
    return codes


if __name__ == "__main__":
    print(main())  # [202, 409, 202]
