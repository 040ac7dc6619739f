"""``ostinato rewind`` and ``ostinato restart``: run failed or finished instances again."""

from __future__ import annotations

import click

from ostinato.cli.base import echo_json, fail, json_option, state_of


def _done(as_json: bool, instance_id: str, action: str, message: str) -> None:
    if as_json:
        echo_json({"instance_id": instance_id, "action": action, "ok": True})
    else:
        click.echo(message)


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@click.pass_context
def rewind(ctx: click.Context, instance_id: str, reason: str | None, as_json: bool) -> None:
    """Run a FAILED instance again from its last step that did not fail (after a fix)."""
    try:
        state_of(ctx).client().rewind_orchestration(instance_id, reason=reason)
    except ValueError as exc:
        fail(str(exc))
    _done(as_json, instance_id, "rewind", f"Rewinding {instance_id!r}.")


@click.command()
@click.argument("instance_id", metavar="ID")
@click.option(
    "--same-id", is_flag=True, help="Replace the (finished) instance instead of starting a new one."
)
@json_option
@click.pass_context
def restart(ctx: click.Context, instance_id: str, same_id: bool, as_json: bool) -> None:
    """Start an instance's orchestration again with the same input (a new id by default)."""
    new_id = (
        state_of(ctx)
        .client()
        .restart_orchestration(instance_id, restart_with_new_instance_id=not same_id)
    )
    _done(as_json, new_id, "restart", f"Restarted {instance_id!r} as {new_id!r}.")


__all__ = ["restart", "rewind"]
