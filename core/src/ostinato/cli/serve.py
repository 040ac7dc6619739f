"""``ostinato serve MODULE:APP``: the HTTP management API and a worker in one process.

Needs the extra ``ostinato[http]`` (Starlette + uvicorn). uvicorn handles Ctrl-C and SIGTERM:
it stops accepting requests, finishes the ones in flight, and then the worker stops
gracefully (in-flight work gets ``--grace-period`` seconds; anything unfinished is handed to
another worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import click

from ostinato.cli.base import EXIT_ERROR, configure_logging, fail, load_app, say, state_of
from ostinato.runtime.worker import Worker


def _import_server() -> Any:
    """uvicorn, after checking that the ``http`` extra (uvicorn + Starlette) is installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as exc:
        if str(exc.name).split(".")[0] not in ("starlette", "uvicorn"):
            raise
        fail(
            f"ostinato serve needs {exc.name!r}: install it with pip install 'ostinato[http]'",
            EXIT_ERROR,
        )
    return uvicorn


def _server_class(uvicorn: Any) -> Any:
    """uvicorn's ``Server``, exiting 0 after a graceful stop on SIGINT/SIGTERM.

    (uvicorn re-raises the signal once it has shut down; like ``ostinato worker``, ``serve``
    treats a requested stop as success.)
    """

    class Server(uvicorn.Server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


@click.command()
@click.argument("target", metavar="MODULE:APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--api-key",
    envvar="OSTINATO_API_KEY",
    metavar="KEY",
    help="Require this key (x-api-key header or Bearer token). Env: OSTINATO_API_KEY.",
)
@click.option("--base-path", default="", metavar="PATH", help="Prefix for every route, e.g. /api.")
@click.option(
    "--worker/--no-worker",
    "run_worker",
    default=True,
    show_default=True,
    help="Also run a worker for MODULE:APP in this process.",
)
@click.option(
    "--max-concurrent-orchestrations", type=click.IntRange(min=1), default=100, show_default=True
)
@click.option(
    "--max-concurrent-activities", type=click.IntRange(min=1), default=100, show_default=True
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds in-flight work gets to finish on stop.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@click.pass_context
def serve(
    ctx: click.Context,
    target: str,
    host: str,
    port: int,
    api_key: str | None,
    base_path: str,
    run_worker: bool,
    max_concurrent_orchestrations: int,
    max_concurrent_activities: int,
    grace_period: float,
    log_level: str,
) -> None:
    """Serve the HTTP management API for MODULE:APP, with a worker, until Ctrl-C or SIGTERM.

    Endpoints: POST /orchestrators/{name}[/{id}], GET /instances[/{id}], POST
    /instances/{id}/raiseEvent/{event}|terminate|suspend|resume, DELETE /instances[/{id}],
    GET /openapi.json (all under --base-path).
    """
    uvicorn = _import_server()
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ostinato.http import create_app
    from ostinato.http.app import normalize_base_path

    app = load_app(target)
    state = state_of(ctx)
    config = state.config()
    provider = state.provider()
    configure_logging(log_level)
    api = create_app(provider, api_key=api_key or None, base_path=base_path, app=app)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        worker: Worker | None = None
        if run_worker:
            worker = Worker(
                app,
                provider,
                max_concurrent_orchestrations=max_concurrent_orchestrations,
                max_concurrent_activities=max_concurrent_activities,
                grace_period=grace_period,
            )
            await asyncio.to_thread(worker.start)
            say(
                f"Worker {worker.worker_id} serving {len(app.orchestrators)} orchestrators and"
                f" {len(app.activities)} activities from {target} on {config.provider}."
            )
        try:
            yield
        finally:
            if worker is not None:
                say("Stopping the worker: finishing in-flight work...")
                await asyncio.to_thread(worker.stop)
                say("Worker stopped.")

    server_app = Starlette(routes=[Mount("", app=api)], lifespan=lifespan)
    server = _server_class(uvicorn)(
        uvicorn.Config(
            server_app,
            host=host,
            port=port,
            lifespan="on",
            log_level=log_level.lower(),
            timeout_graceful_shutdown=max(grace_period, 1.0),
        )
    )
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        say(f"Warning: serving on {host} without --api-key: anyone who reaches it can use it.")
    schema_path = f"{normalize_base_path(base_path)}/openapi.json"
    say(f"HTTP API for {target} (pid {os.getpid()}); OpenAPI schema at {schema_path}")
    server.run()
    if not server.started:
        fail(f"The HTTP server could not start on {host}:{port}")
