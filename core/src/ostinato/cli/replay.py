"""``ostinato replay``: check the current code against recorded histories."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ostinato.cli.commands import _echo_json, _state, fail, json_option, load_app
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
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    instance_ids: Sequence[str],
    target: str,
    source: str | None,
    as_json: bool,
) -> None:
    """Replay recorded histories against the app's current code.

    Each instance's history is re-run as a worker would after a deployment; an instance whose
    code no longer matches its history is reported with the first divergence, and the exit
    code is 1. Give instance ids to replay from the configured task hub, or --from FILE.jsonl
    (optionally with ids, to pick some) to replay an export.
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
        if not instance_ids:
            fail("Give instance ids to replay, or --from FILE.jsonl", 2)
        client = _state(ctx).client()
        outcomes = replayer.replay_all(
            (iid, client.get_orchestration_history(iid)) for iid in instance_ids
        )
    _report(outcomes, as_json)
    if any(not o.ok for o in outcomes):
        ctx.exit(EXIT_DIVERGED)


def _report(outcomes: list[ReplayOutcome], as_json: bool) -> None:
    if as_json:
        _echo_json(
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
