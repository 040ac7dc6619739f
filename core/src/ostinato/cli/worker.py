"""``ostinato worker``: run a worker for an app until stopped."""

from __future__ import annotations

import functools
import os
import signal
import threading
from types import FrameType

import click

from ostinato.cli.base import (
    EXIT_INTERRUPTED,
    configure_logging,
    echo_json_line,
    json_option,
    load_app,
    say,
    state_of,
    task_hub_of,
)
from ostinato.config import retention_from_config
from ostinato.runtime.supervisor import WorkerSupervisor, default_processes
from ostinato.runtime.worker import Worker, WorkerOptions
from ostinato.versioning import VersionFailure, VersioningOptions, VersionMatch
from ostinato.worker_settings import load_worker_settings


@click.command()
@click.argument("target", metavar="MODULE:APP")
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
@click.option("--version", "version", help="The orchestration version this app's code is.")
@click.option(
    "--version-match",
    type=click.Choice(["any", "strict", "current-or-older"], case_sensitive=False),
    default="any",
    show_default=True,
    help="Which instance versions to run (strict and current-or-older need --version).",
)
@click.option(
    "--on-version-mismatch",
    type=click.Choice(["reject", "fail"], case_sensitive=False),
    default="reject",
    show_default=True,
    help="Give other versions back to the queue, or fail them.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes sharing the task hub [default: the number of CPUs, at most 2 on"
    " SQLite; 1 for a provider that cannot share a task hub between processes].",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a work item's lock lasts unless renewed (a dead worker's work comes back "
    "after it) [default: [worker] lock_timeout in the config, else 15].",
)
@click.option(
    "--max-delivery-attempts",
    type=click.IntRange(min=1),
    default=None,
    help="Deliveries of one work item before it is failed as poison "
    "[default: [worker] max_delivery_attempts in the config, else 5].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@json_option
@click.pass_context
def worker(
    ctx: click.Context,
    target: str,
    max_concurrent_orchestrations: int,
    max_concurrent_activities: int,
    grace_period: float,
    version: str | None,
    version_match: str,
    on_version_mismatch: str,
    processes: int | None,
    lock_timeout: float | None,
    max_delivery_attempts: int | None,
    log_level: str,
    as_json: bool,
) -> None:
    """Run a worker for MODULE:APP until Ctrl-C or SIGTERM.

    Stopping is graceful: no new work is taken and in-flight work gets --grace-period seconds;
    anything unfinished is handed to another worker. A second Ctrl-C stops at once (nothing is
    lost: unfinished work is retried when its lock expires).

    With several --processes, this process supervises that many worker processes on the same
    task hub: it restarts one that dies and stops them all gracefully on Ctrl-C or SIGTERM.
    """
    try:
        versioning = VersioningOptions(
            version=version,
            match=VersionMatch(version_match.lower().replace("-", "_")),
            on_mismatch=VersionFailure(on_version_mismatch.lower()),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = load_app(target)
    state = state_of(ctx)
    config = state.config()
    provider = state.provider()
    if processes is None:
        processes = default_processes(provider.capabilities)
    settings = load_worker_settings(
        config.config_file, lock_timeout=lock_timeout, max_delivery_attempts=max_delivery_attempts
    )
    configure_logging(log_level)
    stop = threading.Event()
    w: Worker | WorkerSupervisor | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            say("Stopping now.")
            if isinstance(w, WorkerSupervisor):
                w.kill()
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    options: WorkerOptions = {
        "max_concurrent_orchestrations": max_concurrent_orchestrations,
        "max_concurrent_activities": max_concurrent_activities,
        "grace_period": grace_period,
        "lock_timeout": settings.lock_timeout,
        "max_delivery_attempts": settings.max_delivery_attempts,
        "retention": retention_from_config(state.config_path),
        "versioning": versioning,
    }
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if processes == 1:
            w = Worker(app, provider, **options)
            worker_id = w.worker_id
            w.start()
            pids = [os.getpid()]
        else:
            state.close()  # each child opens its own
            w = WorkerSupervisor(
                functools.partial(load_app, target), config.create, processes=processes, **options
            )
            worker_id = f"supervisor:{os.getpid()}"
            w.start()
            pids = w.pids
        info = {
            "event": "started",
            "worker_id": worker_id,
            "app": target,
            "provider": config.provider,
            "task_hub": task_hub_of(config),
            "orchestrators": sorted(app.orchestrators),
            "activities": sorted(app.activities),
            "version": version,
            "version_match": versioning.match.value,
            "pid": os.getpid(),
            "processes": processes,
            "worker_pids": pids,
        }
        if as_json:
            echo_json_line(info)
        else:
            hub = f", task hub {task_hub_of(config)!r}" if task_hub_of(config) else ""
            orchestrators = ", ".join(sorted(app.orchestrators)) or "none"
            activities = ", ".join(a for a in sorted(app.activities) if "." not in a) or "none"
            how = f" in {processes} processes" if processes > 1 else ""
            say(
                f"Worker {worker_id} running {target} on {config.provider}{hub}{how}"
                f" (orchestrators: {orchestrators}; activities: {activities})."
                " Press Ctrl+C to stop."
            )
        while not stop.wait(0.2):
            pass
        if not as_json:
            say("Stopping: finishing in-flight work (Ctrl+C again to stop at once)...")
        w.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        echo_json_line({"event": "stopped", "worker_id": worker_id})
    else:
        say("Worker stopped.")
