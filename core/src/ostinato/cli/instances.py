"""Starting and reading instances: ``start``, ``wait``, ``status``, ``history``, ``list``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from ostinato.cli import render
from ostinato.cli.base import (
    JSON,
    STATUS,
    WHEN,
    echo_json,
    fail,
    flatten_statuses,
    json_option,
    print_renderable,
    say,
    state_of,
)
from ostinato.client import Client
from ostinato.errors import InstanceNotFoundError, OrchestrationFailedError
from ostinato.history import HistoryEvent
from ostinato.status import OrchestrationState, OrchestrationStatus


# -- starting and reading --------------------------------------------------------------------
def _show_state(state: OrchestrationState, as_json: bool) -> None:
    if as_json:
        echo_json(render.state_to_json(state))
    else:
        print_renderable(render.state_table(state))


def _get_state(client: Client, instance_id: str) -> OrchestrationState:
    state = client.get_orchestration_state(instance_id)
    if state is None:
        raise InstanceNotFoundError(instance_id)
    return state


def _finish_wait(state: OrchestrationState, as_json: bool) -> None:
    _show_state(state, as_json)
    if state.runtime_status is OrchestrationStatus.FAILED:
        raise OrchestrationFailedError(state.instance_id, state.failure_details)
    if state.runtime_status is OrchestrationStatus.TERMINATED:
        fail(f"Orchestration {state.instance_id!r} was terminated")


@click.command()
@click.argument("name")
@click.option("--input", "input_", type=JSON, default=None, help="The input, as JSON.")
@click.option("--id", "instance_id", metavar="ID", help="Instance id (default: a random UUID).")
@click.option("--start-at", type=WHEN, default=None, help="Start later: ISO 8601 time.")
@click.option("--wait", is_flag=True, help="Wait for the instance to finish (needs a worker).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="With --wait: seconds to wait.",
)
@json_option
@click.pass_context
def start(
    ctx: click.Context,
    name: str,
    input_: Any,
    instance_id: str | None,
    start_at: datetime | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Start an orchestration NAME and print its instance id.

    With --wait, print its final state; the exit code is 1 if it failed or was terminated.
    """
    client = state_of(ctx).client()
    if start_at is not None and start_at <= datetime.now(UTC):
        start_at = None
    new_id = client.schedule_new_orchestration(
        name, input=input_, instance_id=instance_id, start_at=start_at
    )
    if wait:
        _finish_wait(client.wait_for_orchestration_completion(new_id, timeout=timeout), as_json)
    elif as_json:
        echo_json({"instance_id": new_id, "name": name})
    else:
        click.echo(new_id)
        say(f"Started orchestration {name!r} as instance {new_id!r}.")


@click.command("wait")
@click.argument("instance_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@json_option
@click.pass_context
def wait_command(ctx: click.Context, instance_id: str, timeout: float, as_json: bool) -> None:
    """Wait for an instance to finish and print its state.

    The exit code is 1 if it failed or was terminated.
    """
    client = state_of(ctx).client()
    _get_state(client, instance_id)
    _finish_wait(client.wait_for_orchestration_completion(instance_id, timeout=timeout), as_json)


@click.command()
@click.argument("instance_id", metavar="ID")
@json_option
@click.pass_context
def status(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show an instance's status, input, output and failure."""
    _show_state(_get_state(state_of(ctx).client(), instance_id), as_json)


@click.command()
@click.argument("instance_id", metavar="ID")
@json_option
@click.pass_context
def history(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show an instance's history table.

    Columns: event type, timestamp, name, input, result, status.
    """
    events: list[HistoryEvent] = state_of(ctx).client().get_orchestration_history(instance_id)
    rows = render.history_rows(events)
    if as_json:
        echo_json({"instance_id": instance_id, "events": [row.to_json() for row in rows]})
    else:
        print_renderable(render.history_table(rows))


@click.command("list")
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Only these statuses (repeatable, or comma-separated).",
)
@click.option("--name-prefix", metavar="PREFIX", help="Only orchestrations whose name starts so.")
@click.option("--id-prefix", metavar="PREFIX", help="Only instance ids that start so.")
@click.option("--created-from", type=WHEN, help="Created at or after (ISO 8601, or 7d ago).")
@click.option("--created-to", type=WHEN, help="Created at or before (ISO 8601, or 1h ago).")
@click.option("--page-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--continuation-token", metavar="TOKEN", help="Continue after a previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow continuation tokens to the end.")
@json_option
@click.pass_context
def list_command(
    ctx: click.Context,
    statuses: tuple[list[OrchestrationStatus], ...],
    name_prefix: str | None,
    id_prefix: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    page_size: int,
    continuation_token: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List instances, ordered by instance id, one page at a time."""
    client = state_of(ctx).client()
    states: list[OrchestrationState] = []
    token = continuation_token
    while True:
        page = client.query_instances(
            runtime_status=flatten_statuses(statuses),
            name_prefix=name_prefix,
            instance_id_prefix=id_prefix,
            created_from=created_from,
            created_to=created_to,
            page_size=page_size,
            continuation_token=token,
        )
        states.extend(page.items)
        token = page.continuation_token
        if not all_pages or token is None:
            break
    if as_json:
        echo_json(
            {
                "instances": [render.state_to_json(s) for s in states],
                "continuation_token": token,
            }
        )
        return
    if not states and token is None:
        click.echo("No instances.")
        return
    print_renderable(render.instances_table(states))
    if token is not None:
        say(f"More instances: pass --continuation-token {token}")
