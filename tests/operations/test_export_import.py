"""Export, import and migrate on the in-memory and SQLite providers, with a hub mid-flight."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.sqlite import SqliteProvider
from ostinato.transfer import TransferReader, TransferWriter, read_file, write_file
from ostinato.transfer.operations import (
    NotQuiescedError,
    export_header,
    export_hub,
    import_hub,
    migrate,
)

from . import scenario

MakeSqlite = Callable[..., SqliteProvider]


def _export_text(provider: ot.StorageProvider, **options: object) -> str:
    buffer = io.StringIO()
    with TransferWriter(buffer, export_header(provider)) as writer:
        export_hub(provider, writer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_export_then_import_completes_every_in_flight_instance(
    kind: str, make_sqlite: MakeSqlite
) -> None:
    def make(name: str) -> ot.StorageProvider:
        return ot.InMemoryProvider() if kind == "memory" else make_sqlite(name)

    source = make("source")
    scenario.start_in_flight(source, timer_seconds=2)
    text = _export_text(source)
    reader = TransferReader(text.splitlines())
    snapshots = list(reader)
    assert reader.counts is not None
    # Six orchestrations and one entity; the timer, the external event and the gated
    # activity are all in the file as pending work.
    assert reader.counts.instances == 6 and reader.counts.entities == 1
    assert reader.counts.timers >= 1 and reader.counts.activity_tasks == 1
    destination = make("destination")
    report = import_hub(destination, snapshots)
    assert not report.failed and report.imported == reader.counts
    assert scenario.finish(destination) == scenario.EXPECTED


def test_export_filters_by_status(make_sqlite: MakeSqlite) -> None:
    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    reader = TransferReader(
        _export_text(source, statuses={ot.OrchestrationStatus.COMPLETED}).splitlines()
    )
    assert [s.instance_id for s in reader] == ["done"]


def test_import_refuses_ids_the_destination_holds_and_goes_on(make_sqlite: MakeSqlite) -> None:
    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    snapshots = list(TransferReader(_export_text(source).splitlines()))
    destination = make_sqlite("destination")
    client = ot.Client(destination)
    client.schedule_new_orchestration(scenario.waits_for_event, instance_id="event")
    report = import_hub(destination, snapshots)
    assert list(report.failed) == ["event"]
    assert report.imported.instances == 5
    # The destination's own instance is untouched.
    state = client.get_orchestration_state("event")
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.PENDING
    skipped = import_hub(make_sqlite("third"), snapshots + snapshots[:1], skip_existing=True)
    assert skipped.existing == [snapshots[0].instance_id]


def test_migrate_moves_a_running_hub_and_verifies_it(make_sqlite: MakeSqlite) -> None:
    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    before = _export_text(source)
    destination = make_sqlite("destination")
    dry = migrate(source, destination, dry_run=True)
    assert dry.ok and dry.quiesced is True and dry.imported is None
    assert ot.Client(destination).get_orchestration_state("timer") is None
    report = migrate(source, destination)
    assert report.ok, report
    assert report.verification is not None
    assert report.verification.found == report.source
    assert report.source.instances == 6 and report.source.entities == 1
    # The source is left exactly as it was.
    assert _body(_export_text(source)) == _body(before)
    # A second migration finds every id taken.
    again = migrate(source, destination, dry_run=True)
    assert not again.ok and len(again.conflicts) == 7
    assert scenario.finish(destination) == scenario.EXPECTED


def _body(text: str) -> list[str]:
    return text.splitlines()[1:]  # the header holds the export time


def test_verification_catches_a_destination_that_differs(make_sqlite: MakeSqlite) -> None:
    from ostinato.transfer.operations import Fingerprint, verify

    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    snapshots = list(TransferReader(_export_text(source).splitlines()))
    destination = make_sqlite("destination")
    import_hub(destination, [s for s in snapshots if s.instance_id != "timer"])
    expected = {s.instance_id: Fingerprint.of(s) for s in snapshots}
    result = verify(expected, destination)
    assert result.missing == ["timer"] and not result.ok
    ot.Client(destination).raise_orchestration_event("event", "approve", data="early")
    result = verify(expected, destination)
    assert "event" in result.mismatched and "messages 0 != 1" in result.mismatched["event"]


def test_a_running_worker_blocks_export_and_migrate(make_sqlite: MakeSqlite) -> None:
    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    scenario.GATE.clear()
    scenario.ENTERED.clear()
    try:
        with ot.Worker(scenario.app, source, max_poll_interval=0.05, grace_period=0.2):
            # The worker takes the gated activity again and holds its lock while it runs.
            assert scenario.ENTERED.wait(30)
            assert source.active_workers()
            with pytest.raises(NotQuiescedError, match="stop every worker"):
                migrate(source, make_sqlite("destination"), dry_run=True)
            with pytest.raises(NotQuiescedError):
                _export_text(source)
            forced = migrate(source, make_sqlite("forced"), dry_run=True, force=True)
            assert forced.quiesced is False
    finally:
        scenario.GATE.set()


def test_file_round_trip_of_a_live_hub(make_sqlite: MakeSqlite, tmp_path: Path) -> None:
    source = make_sqlite("source")
    scenario.start_in_flight(source, timer_seconds=2)
    path = tmp_path / "hub.jsonl"
    path.write_text(_export_text(source), encoding="utf-8")
    header, snapshots = read_file(path)
    assert header.source["provider"] == "SqliteProvider"
    copy = tmp_path / "copy.jsonl"
    write_file(copy, snapshots, header)
    assert copy.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
