"""``ostinato demo``: run HelloCities end to end and show its history."""

from __future__ import annotations

import json

import click

from ostinato.cli import render
from ostinato.cli.base import echo_json, json_option, print_renderable, say, state_of, task_hub_of
from ostinato.client import Client
from ostinato.errors import OrchestrationFailedError
from ostinato.runtime.worker import Worker
from ostinato.status import OrchestrationStatus


# -- demo ------------------------------------------------------------------------------------
@click.command()
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@json_option
@click.pass_context
def demo(ctx: click.Context, timeout: float, as_json: bool) -> None:
    """Run HelloCities end to end and show its history.

    Starts a worker in this process, runs the orchestration, prints the result and the
    history table. With no configuration this is SQLite in ./ostinato.db.
    """
    from ostinato.cli.demo import app, hello_cities

    state = state_of(ctx)
    config = state.config()
    provider = state.provider()
    client = Client(provider)
    with Worker(app, provider, max_poll_interval=0.05):
        instance_id = client.schedule_new_orchestration(hello_cities)
        final = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    rows = render.history_rows(client.get_orchestration_history(instance_id))
    if as_json:
        echo_json(render.state_to_json(final) | {"history": [row.to_json() for row in rows]})
    else:
        where = config.provider
        hub = task_hub_of(config)
        location = config.settings.get("path", config.defaults().get("path"))
        if location is not None:
            where += f" ({location})"
        if hub:
            where += f", task hub {hub!r}"
        say(f"Ran hello_cities as instance {instance_id!r} on {where}.")
        click.echo(f"Status: {final.runtime_status.value}")
        click.echo(f"Result: {json.dumps(final.output, ensure_ascii=False)}")
        print_renderable(render.history_table(rows, title=f"History of {instance_id}"))
    if final.runtime_status is not OrchestrationStatus.COMPLETED:
        raise OrchestrationFailedError(instance_id, final.failure_details)
