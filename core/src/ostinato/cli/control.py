"""Changing instances: ``raise-event``, ``terminate``, ``suspend``, ``resume``, ``purge``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ostinato.cli import render
from ostinato.cli.base import (
    EXIT_USAGE,
    JSON,
    STATUS,
    WHEN,
    echo_json,
    fail,
    flatten_statuses,
    json_option,
    state_of,
)
from ostinato.provider import StorageProvider
from ostinato.runtime.retention import RetentionPolicy, parse_duration, purge_expired
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus


class DurationParam(click.ParamType):  # type: ignore[type-arg]
    """A duration: a number and s, m, h, d or w (``90m``, ``7d``)."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationParam()


# -- signalling ------------------------------------------------------------------------------
def _done(as_json: bool, instance_id: str, action: str, message: str) -> None:
    if as_json:
        echo_json({"instance_id": instance_id, "action": action, "ok": True})
    else:
        click.echo(message)


@click.command("raise-event")
@click.argument("instance_id", metavar="ID")
@click.argument("event_name", metavar="NAME")
@click.option("--data", type=JSON, default=None, help="The event's data, as JSON.")
@json_option
@click.pass_context
def raise_event(
    ctx: click.Context, instance_id: str, event_name: str, data: Any, as_json: bool
) -> None:
    """Send event NAME (with --data) to an instance."""
    state_of(ctx).client().raise_orchestration_event(instance_id, event_name, data=data)
    _done(as_json, instance_id, "raise-event", f"Raised event {event_name!r} on {instance_id!r}.")


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option("--output", type=JSON, default=None, help="The instance's output, as JSON.")
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="Terminate its sub-orchestrations too.",
)
@json_option
@click.pass_context
def terminate(
    ctx: click.Context, instance_id: str, output: Any, recursive: bool, as_json: bool
) -> None:
    """Terminate an instance."""
    state_of(ctx).client().terminate_orchestration(instance_id, output=output, recursive=recursive)
    _done(as_json, instance_id, "terminate", f"Terminating {instance_id!r}.")


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@click.pass_context
def suspend(ctx: click.Context, instance_id: str, reason: str | None, as_json: bool) -> None:
    """Suspend an instance: its events wait until it is resumed."""
    state_of(ctx).client().suspend_orchestration(instance_id, reason=reason)
    _done(as_json, instance_id, "suspend", f"Suspending {instance_id!r}.")


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@click.pass_context
def resume(ctx: click.Context, instance_id: str, reason: str | None, as_json: bool) -> None:
    """Resume a suspended instance."""
    state_of(ctx).client().resume_orchestration(instance_id, reason=reason)
    _done(as_json, instance_id, "resume", f"Resuming {instance_id!r}.")


# -- purging ---------------------------------------------------------------------------------
@click.command()
@click.argument("instance_id", metavar="[ID]", required=False)
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Bulk: only these finished statuses (default: completed, failed, terminated).",
)
@click.option("--created-after", type=WHEN, help="Bulk: created at or after (ISO 8601 or 7d).")
@click.option("--created-before", type=WHEN, help="Bulk: created at or before (ISO 8601 or 7d).")
@click.option(
    "--older-than",
    type=DURATION,
    help="Bulk: finished more than this long ago (90m, 12h, 7d), as retention does.",
)
@click.option("--all", "purge_all", is_flag=True, help="Bulk: every finished instance.")
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="With ID: purge its sub-orchestrations too.",
)
@json_option
@click.pass_context
def purge(
    ctx: click.Context,
    instance_id: str | None,
    statuses: tuple[list[OrchestrationStatus], ...],
    created_after: datetime | None,
    created_before: datetime | None,
    older_than: timedelta | None,
    purge_all: bool,
    recursive: bool,
    as_json: bool,
) -> None:
    """Delete finished instances, one by ID or in bulk.

    Bulk purges take filters and show a progress bar.

    Only COMPLETED, FAILED and TERMINATED instances are ever purged.
    """
    bulk = (
        bool(statuses)
        or created_after is not None
        or created_before is not None
        or older_than is not None
        or purge_all
    )
    if instance_id is not None and bulk:
        fail("Give an instance ID or bulk filters, not both", EXIT_USAGE)
    if instance_id is None and not bulk:
        fail(
            "Give an instance ID, or filters for a bulk purge"
            " (--status, --created-before, --created-after, --older-than, or --all)",
            EXIT_USAGE,
        )
    client = state_of(ctx).client()
    if instance_id is not None:
        deleted = client.purge_orchestration(instance_id, recursive=recursive)
        count = deleted.deleted_instance_count
    else:
        wanted = flatten_statuses(statuses)
        active = [s for s in wanted or () if not s.is_terminal]
        if active:
            fail(
                "Only finished instances can be purged; not " + ", ".join(s.value for s in active),
                EXIT_USAGE,
            )
        if older_than is not None:
            if created_after is not None or created_before is not None:
                fail("--older-than does not combine with --created-after/--created-before", 2)
            count = purge_older_than(client.provider, older_than, wanted, not as_json)
        else:
            with _progress(enabled=not as_json) as on_progress:
                result = client.purge_orchestrations_by(
                    created_time_from=created_after,
                    created_time_to=created_before,
                    runtime_status=wanted,
                    on_progress=on_progress,
                )
            count = result.deleted_instance_count
    if as_json:
        echo_json({"deleted_instance_count": count})
    else:
        click.echo(f"Purged {count} instance{'s' if count != 1 else ''}.")


def purge_older_than(
    provider: StorageProvider,
    age: timedelta,
    statuses: list[OrchestrationStatus] | None,
    show_progress: bool,
) -> int:
    """Purge, in batches, finished instances that finished more than ``age`` ago; then give
    the space back. Returns how many were purged."""
    wanted = frozenset(statuses) if statuses else TERMINAL_STATUSES
    policy = RetentionPolicy.older_than(age, wanted)
    now = datetime.now(UTC)
    count = 0
    with _progress(enabled=show_progress) as on_progress:
        while True:
            purged = purge_expired(provider, policy, now=now, limit=500)
            count += purged
            on_progress(count)
            if purged < 500:
                break
    if count:
        provider.reclaim_space()
    return count


class _ProgressContext:
    """A spinner with the running count on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = None
        err = render.console(stderr=True)
        if enabled and err.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("Purging finished instances: {task.completed} deleted"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
        self.task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self.progress is None:
            return lambda count: None
        self.progress.start()
        self.task = self.progress.add_task("purge", total=None)
        progress = self.progress

        def update(count: int) -> None:
            progress.update(self.task, completed=count)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(enabled: bool) -> _ProgressContext:
    return _ProgressContext(enabled)
