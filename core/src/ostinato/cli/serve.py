"""``ostinato serve MODULE:APP``: the HTTP management API and a worker in one process.

Needs the extra ``ostinato[http]`` (Starlette + uvicorn). uvicorn handles Ctrl-C and SIGTERM:
it stops accepting requests, finishes the ones in flight, and then the worker stops
gracefully (in-flight work gets ``--grace-period`` seconds; anything unfinished is handed to
another worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import click

from ostinato.cli.base import (
    EXIT_ERROR,
    EXIT_USAGE,
    configure_logging,
    fail,
    load_app,
    say,
    state_of,
)
from ostinato.runtime.worker import Worker


def _import_server() -> None:
    """Check that the ``http`` extra (uvicorn + Starlette) is installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        if str(exc.name).split(".")[0] not in ("starlette", "uvicorn"):
            raise
        fail(
            f"ostinato serve needs {exc.name!r}: install it with pip install 'ostinato[http]'",
            EXIT_ERROR,
        )


_INSECURE_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  WARNING: --insecure-no-auth: serving {host} WITHOUT AUTHENTICATION.
!!  Anyone who can reach this address can start, terminate and purge instances.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to bind) is the loopback interface only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bound_host_names(host: str, loopback_names: tuple[str, ...]) -> tuple[str, ...]:
    """The ``Host`` names clients may use to reach a server bound to ``host``.

    A loopback address: the loopback names. A wildcard address (``0.0.0.0``, ``::``): the
    loopback names, this machine's name and its addresses. Anything else: that name.
    """
    if is_loopback(host):
        return loopback_names
    if host in ("0.0.0.0", "::", ""):
        names = [*loopback_names, socket.gethostname(), socket.getfqdn()]
        with contextlib.suppress(OSError):
            names.extend(socket.gethostbyname_ex(socket.gethostname())[2])
        return tuple(dict.fromkeys(n.lower() for n in names if n))
    return (host.strip("[]").lower(),)


def _secret() -> bytes | None:
    """``OSTINATO_HTTP_SECRET``, shared by replicas so their paging tokens and sessions agree."""
    value = os.environ.get("OSTINATO_HTTP_SECRET")
    return value.encode("utf-8") if value else None


def _server_class() -> Any:
    import uvicorn

    """uvicorn's ``Server``, exiting 0 after a graceful stop on SIGINT/SIGTERM.

    (uvicorn re-raises the signal once it has shut down; like ``ostinato worker``, ``serve``
    treats a requested stop as success.)
    """

    class Server(uvicorn.Server):
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
    "--api-keys-file",
    envvar="OSTINATO_API_KEYS_FILE",
    metavar="PATH",
    help="TOML file of [[keys]] (name, key or key_env, scopes). Env: OSTINATO_API_KEYS_FILE."
    " One full-access key can also come from OSTINATO_API_KEY.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve a non-loopback address without API keys: anyone who reaches it can do anything.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name clients use (repeatable; *.example.com, or * for any)."
    " Default: the names of the address bound.",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Another browser origin that may call the API (repeatable), e.g. https://ops.example.com.",
)
@click.option(
    "--max-body-size",
    type=click.IntRange(min=0),
    default=None,
    help="Largest request body in bytes (413 beyond).  [default: 16 MiB]",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds a client has to send a request's headers.  [default: 10]",
)
@click.option(
    "--idle-timeout",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds an idle keep-alive connection stays open.  [default: 5]",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Connections at once; requests beyond get 503.  [default: 1000]",
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
    api_keys_file: str | None,
    insecure_no_auth: bool,
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    max_body_size: int | None,
    header_timeout: float | None,
    idle_timeout: int | None,
    max_connections: int | None,
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

    Keys come from --api-keys-file or the environment, never from the command line. Bound
    to a loopback address, the API may run without keys (for development; Host and Origin
    checks still apply); on any other address it refuses to start without keys unless
    --insecure-no-auth is given.
    """
    _import_server()
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ostinato.http import create_app
    from ostinato.http.app import normalize_base_path
    from ostinato.http.limits import DEFAULT_MAX_BODY_SIZE
    from ostinato.http.security import LOOPBACK_HOSTS, keys_from_environment
    from ostinato.http.server import ServerLimits, uvicorn_config

    try:
        keys = keys_from_environment(os.environ, api_keys_file)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    loopback = is_loopback(host)
    if not keys and not loopback and not insecure_no_auth:
        fail(
            f"Refusing to serve {host} without API keys: anyone who reaches it could start, "
            "terminate and purge instances. Give keys (OSTINATO_API_KEY, or "
            "--api-keys-file / OSTINATO_API_KEYS_FILE), bind 127.0.0.1, or pass "
            "--insecure-no-auth if the network itself is trusted.",
            EXIT_USAGE,
        )
    app = load_app(target)
    state = state_of(ctx)
    config = state.config()
    provider = state.provider()
    configure_logging(log_level)
    hosts = allowed_hosts or bound_host_names(host, LOOPBACK_HOSTS)
    api = create_app(
        provider,
        keys=keys,
        allowed_hosts=hosts,
        allowed_origins=allowed_origins,
        secret=_secret(),
        max_body_size=DEFAULT_MAX_BODY_SIZE if max_body_size is None else max_body_size,
        base_path=base_path,
        app=app,
    )

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
    defaults = ServerLimits()
    limits = ServerLimits(
        header_timeout=header_timeout or defaults.header_timeout,
        idle_timeout=idle_timeout or defaults.idle_timeout,
        max_connections=max_connections or defaults.max_connections,
    )
    server = _server_class()(
        uvicorn_config(
            server_app,
            host=host,
            port=port,
            limits=limits,
            lifespan="on",
            log_level=log_level.lower(),
            timeout_graceful_shutdown=max(grace_period, 1.0),
        )
    )
    if keys:
        say(f"API keys: {', '.join(k.name for k in keys)}")
    elif insecure_no_auth and not loopback:
        say(_INSECURE_BANNER.format(host=host))
    else:
        say("No API keys: serving loopback only, for local development.")
    say(f"Allowed Host names: {', '.join(hosts)}")
    schema_path = f"{normalize_base_path(base_path)}/openapi.json"
    say(f"HTTP API for {target} (pid {os.getpid()}); OpenAPI schema at {schema_path}")
    server.run()
    if not server.started:
        fail(f"The HTTP server could not start on {host}:{port}")
