"""``ostinato dead-letters list|show|retry|delete``: records the provider moved aside because
they could not be decoded (see :class:`~ostinato.provider.DeadLetter`)."""

from __future__ import annotations

import click
from rich.table import Table

from ostinato.cli import render
from ostinato.cli.base import (
    EXIT_ERROR,
    echo_json,
    fail,
    json_option,
    print_renderable,
    say,
    state_of,
)
from ostinato.provider import DeadLetter


@click.group("dead-letters")
def dead_letters() -> None:
    """Records moved aside because they could not be decoded (their instance failed).

    A dead letter keeps the record exactly as it was stored. `retry` puts it back where it
    came from (e.g. after upgrading the code that could not read it); `delete` drops it.
    """


@dead_letters.command("list")
@click.option("--instance", "instance_id", metavar="ID", help="Only this instance's.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@click.pass_context
def list_command(ctx: click.Context, instance_id: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first."""
    letters = state_of(ctx).client().list_dead_letters(instance_id=instance_id, limit=limit)
    if as_json:
        echo_json({"dead_letters": [_summary(letter) for letter in letters]})
        return
    if not letters:
        say("No dead letters.")
        return
    table = Table("ID", "Kind", "Instance", "Created", "Reason")
    for letter in letters:
        table.add_row(
            letter.id,
            letter.kind.value,
            letter.instance_id,
            render.format_time(letter.created_at),
            letter.reason,
        )
    print_renderable(table)


@dead_letters.command()
@click.argument("dead_letter_id", metavar="ID")
@json_option
@click.pass_context
def show(ctx: click.Context, dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter with the record as it was stored."""
    letter = state_of(ctx).client().get_dead_letter(dead_letter_id)
    if letter is None:
        fail(f"No dead letter with ID {dead_letter_id!r}", EXIT_ERROR)
    if as_json:
        echo_json(letter.to_dict())
        return
    click.echo(f"Dead letter {letter.id} ({letter.kind.value}) of instance {letter.instance_id!r}")
    click.echo(f"Created: {render.format_time(letter.created_at)}")
    click.echo(f"Reason: {letter.reason}")
    click.echo("Record:")
    click.echo(letter.body)


@dead_letters.command()
@click.argument("dead_letter_id", metavar="ID")
@json_option
@click.pass_context
def retry(ctx: click.Context, dead_letter_id: str, as_json: bool) -> None:
    """Put a dead letter back where it came from."""
    if not state_of(ctx).client().retry_dead_letter(dead_letter_id):
        fail(f"No dead letter with ID {dead_letter_id!r}", EXIT_ERROR)
    _done(as_json, dead_letter_id, "retry", f"Put dead letter {dead_letter_id} back.")


@dead_letters.command()
@click.argument("dead_letter_id", metavar="ID")
@json_option
@click.pass_context
def delete(ctx: click.Context, dead_letter_id: str, as_json: bool) -> None:
    """Delete a dead letter for good."""
    if not state_of(ctx).client().delete_dead_letter(dead_letter_id):
        fail(f"No dead letter with ID {dead_letter_id!r}", EXIT_ERROR)
    _done(as_json, dead_letter_id, "delete", f"Deleted dead letter {dead_letter_id}.")


def _summary(letter: DeadLetter) -> dict[str, object]:
    data = letter.to_dict()
    del data["body"]
    return data


def _done(as_json: bool, dead_letter_id: str, action: str, message: str) -> None:
    if as_json:
        echo_json({"id": dead_letter_id, "action": action, "ok": True})
    else:
        click.echo(message)


__all__ = ["dead_letters"]
