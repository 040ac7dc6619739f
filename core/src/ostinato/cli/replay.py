"""``ostinato replay``: check the current code against recorded histories."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ostinato.cli.base import (
    STATUS,
    echo_json,
    fail,
    flatten_statuses,
    json_option,
    load_app,
    state_of,
)
from ostinato.client import Client
from ostinato.status import OrchestrationStatus
from ostinato.testing.replayer import Replayer, ReplayOutcome

EXIT_DIVERGED = 1


@click.command("replay")
@click.argument("instance_ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--app", "target", required=True, metavar="MODULE:APP", help="The app with the new code."
)
@click.option(
    "--from",
    "source",
    metavar="FILE.jsonl",
    type=click.Path(exists=True, dir_okay=False),
    help="Replay the orchestrations of an export file (ostinato export) instead of the hub.",
)
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Replay every instance of the hub with this status (e.g. running; repeatable).",
)
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    instance_ids: Sequence[str],
    target: str,
    source: str | None,
    statuses: Sequence[list[OrchestrationStatus]],
    as_json: bool,
) -> None:
    """Replay recorded histories against the app's current code.

    Each instance's history is re-run as a worker would after a deployment; an instance whose
    code no longer matches its history is reported with the first divergence, and the exit
    code is 1. Give instance ids (or --status) to replay from the configured task hub, or
    --from FILE.jsonl (optionally with ids, to pick some) to replay an export.
    """
    replayer = Replayer(load_app(target))
    if source is not None:
        outcomes = replayer.replay_file(source)
        if instance_ids:
            wanted = set(instance_ids)
            outcomes = [o for o in outcomes if o.instance_id in wanted]
            missing = wanted - {o.instance_id for o in outcomes}
            if missing:
                fail(f"{source} has no orchestration {', '.join(map(repr, sorted(missing)))}")
    else:
        with_status = flatten_statuses(statuses)
        if not instance_ids and not with_status:
            fail("Give instance ids or --status to replay, or --from FILE.jsonl", 2)
        client = state_of(ctx).client()
        ids = list(instance_ids) + (_ids_with_status(client, with_status) if with_status else [])
        outcomes = replayer.replay_all(
            (iid, client.get_orchestration_history(iid)) for iid in dict.fromkeys(ids)
        )
    _report(outcomes, as_json)
    if any(not o.ok for o in outcomes):
        ctx.exit(EXIT_DIVERGED)


def _ids_with_status(client: Client, statuses: list[OrchestrationStatus]) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = client.query_instances(
            runtime_status=statuses, continuation_token=token, fetch_payloads=False
        )
        ids.extend(state.instance_id for state in page.items)
        token = page.continuation_token
        if token is None:
            return ids


def _report(outcomes: list[ReplayOutcome], as_json: bool) -> None:
    if as_json:
        echo_json(
            [
                {
                    "instance_id": o.instance_id,
                    "name": o.name,
                    "ok": o.ok,
                    "error": None if o.error is None else str(o.error),
                }
                for o in outcomes
            ]
        )
        return
    for outcome in outcomes:
        if outcome.error is None:
            click.echo(f"ok        {outcome.instance_id} ({outcome.name})")
        else:
            click.echo(f"DIVERGES  {outcome.instance_id} ({outcome.name}): {outcome.error}")
    diverged = sum(1 for o in outcomes if not o.ok)
    click.echo(f"{len(outcomes)} replayed, {diverged} diverged", err=True)


__all__ = ["replay"]
