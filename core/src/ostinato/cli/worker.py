"""``ostinato worker``: run a worker for an app until stopped."""

from __future__ import annotations

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
from ostinato.runtime.worker import Worker


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
    log_level: str,
    as_json: bool,
) -> None:
    """Run a worker for MODULE:APP until Ctrl-C or SIGTERM.

    Stopping is graceful: no new work is taken and in-flight work gets --grace-period seconds;
    anything unfinished is handed to another worker. A second Ctrl-C stops at once (nothing is
    lost: unfinished work is retried when its lock expires).
    """
    app = load_app(target)
    state = state_of(ctx)
    config = state.config()
    provider = state.provider()
    configure_logging(log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            say("Stopping now.")
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        w = Worker(
            app,
            provider,
            max_concurrent_orchestrations=max_concurrent_orchestrations,
            max_concurrent_activities=max_concurrent_activities,
            grace_period=grace_period,
        )
        w.start()
        info = {
            "event": "started",
            "worker_id": w.worker_id,
            "app": target,
            "provider": config.provider,
            "task_hub": task_hub_of(config),
            "orchestrators": sorted(app.orchestrators),
            "activities": sorted(app.activities),
            "pid": os.getpid(),
        }
        if as_json:
            echo_json_line(info)
        else:
            hub = f", task hub {task_hub_of(config)!r}" if task_hub_of(config) else ""
            orchestrators = ", ".join(sorted(app.orchestrators)) or "none"
            activities = ", ".join(a for a in sorted(app.activities) if "." not in a) or "none"
            say(
                f"Worker {w.worker_id} running {target} on {config.provider}{hub}"
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
        echo_json_line({"event": "stopped", "worker_id": w.worker_id})
    else:
        say("Worker stopped.")
