"""``ostinato export``, ``ostinato import`` and ``ostinato migrate``: moving task hubs.

The file format is :mod:`ostinato.transfer.format`; docs/migration.md walks through a move.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from ostinato.cli import render
from ostinato.cli.base import STATUS, fail, flatten_statuses, json_option, state_of
from ostinato.config import load_config
from ostinato.provider import StorageProvider
from ostinato.transfer import Counts, TransferFormatError, TransferReader, TransferWriter
from ostinato.transfer.operations import (
    ImportReport,
    MigrationReport,
    export_header,
    export_hub,
    import_hub,
    migrate,
)


def _say(message: str) -> None:
    click.echo(message, err=True)


@contextlib.contextmanager
def _unsupported() -> Iterator[None]:
    """A provider without export/import support: one line, not a traceback."""
    try:
        yield
    except NotImplementedError as exc:
        fail(f"{exc} (the provider does not implement export_state/import_snapshot)")


def _quiesced_note(quiesced: bool | None) -> str:
    if quiesced is None:
        return (
            "This provider cannot tell whether workers are running: make sure every worker "
            "of the task hub is stopped, or the copy may miss their last steps."
        )
    if quiesced:
        return "No worker is running on the task hub (checked)."
    return "Workers are running on the task hub (--force): the copy may miss their last steps."


def _counts_text(counts: Counts) -> str:
    return (
        f"{counts.instances} instances, {counts.entities} entities, "
        f"{counts.history_events} history events, {counts.messages} messages, "
        f"{counts.timers} timers, {counts.activity_tasks} activity tasks"
    )


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file next to ``path`` renamed over it once complete."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@click.command("export")
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Only instances in these statuses (default: everything, entities included).",
)
@click.option("--to", "to_path", metavar="FILE.jsonl", help="Write here (default: stdout).")
@click.option("--force", is_flag=True, help="Export even while workers are running.")
@json_option
@click.pass_context
def export_command(
    ctx: click.Context,
    statuses: tuple[list[Any], ...],
    to_path: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Export the task hub to a JSON Lines file (instances with their histories, pending
    messages and timers, activity tasks, entities).

    Stop the task hub's workers first: the command refuses while it sees any running
    (unless --force). The format is documented in docs/migration.md.
    """
    if as_json and to_path in (None, "-"):
        fail("--json prints a summary on stdout; give --to FILE for the export itself", 2)
    provider = state_of(ctx).provider()
    wanted = flatten_statuses(statuses)
    with (
        _unsupported(),
        _output(to_path) as stream,
        TransferWriter(stream, export_header(provider)) as writer,
    ):
        report = export_hub(provider, writer, statuses=wanted, force=force)
    if as_json:
        click.echo(
            render.dumps_json(
                {
                    "counts": writer.counts.to_dict(),
                    "derived_from_history": report.derived,
                    "quiesced": report.quiesced,
                    "file": to_path,
                }
            )
        )
        return
    _say(_quiesced_note(report.quiesced))
    where = f" to {to_path}" if to_path not in (None, "-") else ""
    _say(f"Exported {_counts_text(writer.counts)}{where}.")


@click.command("import")
@click.argument("path", metavar="FILE.jsonl")
@click.option(
    "--skip-existing", is_flag=True, help="Leave ids the task hub already holds (default: error)."
)
@json_option
@click.pass_context
def import_command(ctx: click.Context, path: str, skip_existing: bool, as_json: bool) -> None:
    """Import an export file into the task hub (ids it already holds are refused).

    Run it before starting the hub's workers. Every instance is tried: one that fails is
    reported and the rest are imported.
    """
    provider = state_of(ctx).provider()
    provider.setup()
    try:
        stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        fail(f"Cannot read {path}: {exc.strerror}")
    report = ImportReport()
    with stream, _unsupported():
        try:
            import_hub(provider, TransferReader(stream), skip_existing=skip_existing, report=report)
        except TransferFormatError as exc:
            _say(f"Imported {_counts_text(report.imported)} before the error.")
            fail(f"{path}: {exc}")
    if as_json:
        click.echo(
            render.dumps_json(
                {
                    "imported": report.imported.to_dict(),
                    "existing": report.existing,
                    "failed": report.failed,
                }
            )
        )
    else:
        _say(f"Imported {_counts_text(report.imported)}.")
        if report.existing:
            _say(f"Left {len(report.existing)} ids the task hub already held.")
        for instance_id, reason in report.failed.items():
            _say(f"Not imported: {instance_id!r}: {reason}")
    if report.failed:
        fail(f"{len(report.failed)} instance(s) were not imported")


def _provider_from(path: str) -> StorageProvider:
    if not Path(path).exists():
        fail(f"Configuration file {path!r} does not exist", 2)
    return load_config(path).create()


def _report_json(report: MigrationReport) -> dict[str, Any]:
    verification = report.verification
    return {
        "ok": report.ok,
        "dry_run": report.dry_run,
        "quiesced": report.quiesced,
        "source": report.source.to_dict(),
        "derived_from_history": report.derived,
        "conflicts": report.conflicts,
        "imported": None if report.imported is None else report.imported.imported.to_dict(),
        "failed": {} if report.imported is None else report.imported.failed,
        "verification": None
        if verification is None
        else {
            "ok": verification.ok,
            "expected": verification.expected.to_dict(),
            "found": verification.found.to_dict(),
            "missing": verification.missing,
            "mismatched": verification.mismatched,
        },
    }


@click.command("migrate")
@click.option("--from", "from_path", required=True, metavar="CONFIG", help="Source config file.")
@click.option("--to", "to_path", required=True, metavar="CONFIG", help="Destination config file.")
@click.option("--dry-run", is_flag=True, help="Read the source and check for conflicts only.")
@click.option("--force", is_flag=True, help="Migrate even while workers run on the source.")
@json_option
def migrate_command(
    from_path: str, to_path: str, dry_run: bool, force: bool, as_json: bool
) -> None:
    """Move a whole task hub, running instances included, to another provider or hub.

    Stop every worker of the source first (the command refuses while it sees any). The
    source is read once and left unchanged; the destination is read back and checked
    instance by instance (history SHA-256, pending work) and in total. Start the
    destination's workers once it reports success.
    """
    source = _provider_from(from_path)
    try:
        destination = _provider_from(to_path)
        try:
            destination.setup()
            with _unsupported():
                report = migrate(source, destination, dry_run=dry_run, force=force)
        finally:
            destination.close()
    finally:
        source.close()
    if as_json:
        click.echo(render.dumps_json(_report_json(report)))
    else:
        _say(_quiesced_note(report.quiesced))
        _say(f"Source: {_counts_text(report.source)}.")
        if report.derived:
            _say(f"{report.derived} pending timers/activities were rebuilt from histories.")
        if report.conflicts:
            _say(
                f"{len(report.conflicts)} ids already exist in the destination and were not "
                f"moved: {', '.join(report.conflicts[:10])}"
            )
        if report.imported is not None:
            _say(f"Imported {_counts_text(report.imported.imported)}.")
            for instance_id, reason in report.imported.failed.items():
                _say(f"Not imported: {instance_id!r}: {reason}")
        if report.verification is not None:
            v = report.verification
            if v.ok:
                _say("Verified: every instance's history digest and pending work match.")
            for instance_id in v.missing:
                _say(f"Missing in the destination: {instance_id!r}")
            for instance_id, what in v.mismatched.items():
                _say(f"Differs in the destination: {instance_id!r}: {what}")
        if dry_run:
            _say("Dry run: nothing was written.")
    if not report.ok:
        fail("The migration did not complete cleanly (see above)")


__all__ = ["export_command", "import_command", "migrate_command"]
