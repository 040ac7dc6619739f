"""Export, import, verify and migrate whole task hubs through any two providers.

The source of an export or a migration must be **quiesced**: no worker running on it, so
nothing changes while it is read. :func:`check_quiesced` asks the provider which workers it
sees (:meth:`~ostinato.provider.StorageProvider.active_workers`) and refuses if any; a
provider that cannot tell is trusted, and the tools say so.

A migration reads the source once, completes each snapshot with what its history owes
(:mod:`ostinato.transfer.pending`), writes it to the destination, then reads the destination
back and compares every migrated instance (record, history digest, pending work) and the
totals: the **verification pass**. The source is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, OstinatoError
from ostinato.provider import InstanceSnapshot, StorageProvider
from ostinato.status import OrchestrationStatus
from ostinato.transfer.format import Counts, Header, history_digest
from ostinato.transfer.pending import complete_pending
from ostinato.transfer.stream import TransferWriter


class NotQuiescedError(OstinatoError):
    """Workers are running on the task hub to export or migrate from."""

    def __init__(self, workers: Collection[str]) -> None:
        self.workers = sorted(workers)
        shown = ", ".join(self.workers[:5]) + (" ..." if len(self.workers) > 5 else "")
        super().__init__(
            f"{len(self.workers)} worker(s) are running on the source task hub ({shown}); "
            "stop every worker first (or pass force to export anyway)"
        )


def check_quiesced(provider: StorageProvider, *, force: bool = False) -> bool | None:
    """Refuse (``NotQuiescedError``) if ``provider`` sees running workers, unless ``force``.

    Returns ``True`` if it sees none, ``None`` if it cannot tell (the caller should say that
    the user must make sure no worker runs), ``False`` if forced past running workers.
    """
    workers = provider.active_workers()
    if workers is None:
        return None
    if workers:
        if not force:
            raise NotQuiescedError(workers)
        return False
    return True


def _source(provider: StorageProvider) -> dict[str, str]:
    source = {"provider": type(provider).__name__}
    hub = getattr(provider, "task_hub", None)
    if isinstance(hub, str):
        source["task_hub"] = hub
    return source


@dataclass
class ExportReport:
    """What an export wrote: the counts, and how many pending items it added from histories."""

    counts: Counts = field(default_factory=Counts)
    derived: int = 0
    quiesced: bool | None = None


def snapshots_of(
    provider: StorageProvider,
    statuses: Collection[OrchestrationStatus] | None = None,
    report: ExportReport | None = None,
) -> Iterator[InstanceSnapshot]:
    """The provider's state, completed from histories (see :mod:`ostinato.transfer.pending`);
    with ``statuses``, only instances in them (ids with no record then left out)."""
    for snapshot in provider.export_state():
        if statuses is not None and (
            snapshot.record is None or snapshot.record.runtime_status not in statuses
        ):
            continue
        completed, added = complete_pending(snapshot)
        if report is not None:
            report.derived += added
            report.counts = report.counts.add(completed)
        yield completed


def export_hub(
    provider: StorageProvider,
    writer: TransferWriter,
    *,
    statuses: Collection[OrchestrationStatus] | None = None,
    force: bool = False,
) -> ExportReport:
    """Write the task hub's state to ``writer`` (closing it writes the trailer)."""
    report = ExportReport(quiesced=check_quiesced(provider, force=force))
    writer.write_all(snapshots_of(provider, statuses, report))
    return report


def export_header(provider: StorageProvider) -> Header:
    return Header(exported_at=utcnow(), source=_source(provider))


@dataclass
class ImportReport:
    """What an import wrote, what it left because the id was taken, and what failed."""

    imported: Counts = field(default_factory=Counts)
    existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def import_hub(
    provider: StorageProvider,
    snapshots: Iterable[InstanceSnapshot],
    *,
    skip_existing: bool = False,
    on_instance: Callable[[InstanceSnapshot], None] | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Write every snapshot to ``provider``. An id the destination already holds is an error
    (listed in ``failed``), or with ``skip_existing`` left as it is (listed in ``existing``);
    one instance's failure never stops the others. Pass ``report`` to keep what was done
    when reading ``snapshots`` raises (a damaged file)."""
    report = report if report is not None else ImportReport()
    for snapshot in snapshots:
        try:
            provider.import_snapshot(snapshot)
        except InstanceAlreadyExistsError:
            if skip_existing:
                report.existing.append(snapshot.instance_id)
            else:
                report.failed[snapshot.instance_id] = "the destination already holds this id"
            continue
        except Exception as exc:  # noqa: BLE001 - reported per instance, the rest go on
            report.failed[snapshot.instance_id] = f"{type(exc).__name__}: {exc}"
            continue
        report.imported = report.imported.add(snapshot)
        if on_instance is not None:
            on_instance(snapshot)
    return report


@dataclass(frozen=True)
class Fingerprint:
    """What verification compares per instance: record essentials, history digest, and how
    much work is pending (message ids may differ: a store may re-create them)."""

    name: str | None
    status: str | None
    execution_id: str | None
    history_sha256: str
    messages: int
    timers: int
    activity_tasks: int

    @classmethod
    def of(cls, snapshot: InstanceSnapshot) -> Fingerprint:
        record = snapshot.record
        timers = sum(1 for m in snapshot.messages if m.visible_at is not None)
        return cls(
            name=None if record is None else record.name,
            status=None if record is None else record.runtime_status.value,
            execution_id=None if record is None else record.execution_id,
            history_sha256=history_digest(snapshot.history),
            messages=len(snapshot.messages) - timers,
            timers=timers,
            activity_tasks=len(snapshot.activity_tasks),
        )


@dataclass
class Verification:
    """The verification pass: per-instance mismatches and the totals on both sides."""

    expected: Counts = field(default_factory=Counts)
    found: Counts = field(default_factory=Counts)
    missing: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched and self.expected == self.found


def verify(expected: dict[str, Fingerprint], destination: StorageProvider) -> Verification:
    """Read ``destination`` back and compare each expected instance's fingerprint."""
    result = Verification()
    seen: set[str] = set()
    for snapshot in snapshots_of(destination):
        want = expected.get(snapshot.instance_id)
        if want is None:
            continue  # state the destination had before: not ours to check
        seen.add(snapshot.instance_id)
        result.found = result.found.add(snapshot)
        got = Fingerprint.of(snapshot)
        if got != want:
            diffs = [
                f"{name} {getattr(want, name)!r} != {getattr(got, name)!r}"
                for name in want.__dataclass_fields__
                if getattr(want, name) != getattr(got, name)
            ]
            result.mismatched[snapshot.instance_id] = "; ".join(diffs)
    result.missing = sorted(set(expected) - seen)
    return result


@dataclass
class MigrationReport:
    """A migration's outcome (a dry run imports and verifies nothing)."""

    dry_run: bool
    quiesced: bool | None
    source: Counts = field(default_factory=Counts)
    derived: int = 0
    conflicts: list[str] = field(default_factory=list)
    imported: ImportReport | None = None
    verification: Verification | None = None
    started_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        if self.conflicts:
            return False
        return self.dry_run or (
            self.imported is not None
            and not self.imported.failed
            and self.verification is not None
            and self.verification.ok
        )


def migrate(
    source: StorageProvider,
    destination: StorageProvider,
    *,
    dry_run: bool = False,
    force: bool = False,
    on_instance: Callable[[InstanceSnapshot], None] | None = None,
) -> MigrationReport:
    """Move every instance of ``source`` (running ones included) to ``destination``, then
    verify. The source must be quiesced (``NotQuiescedError`` otherwise, unless ``force``)
    and is left unchanged; ids the destination already holds are conflicts and not moved.
    """
    report = MigrationReport(dry_run=dry_run, quiesced=check_quiesced(source, force=force))
    export = ExportReport()
    imported = ImportReport()
    expected: dict[str, Fingerprint] = {}
    expected_counts = Counts()
    for snapshot in snapshots_of(source, report=export):
        if destination.get_instance(snapshot.instance_id) is not None:
            report.conflicts.append(snapshot.instance_id)
            continue
        if dry_run:
            continue
        outcome = import_hub(destination, [snapshot], on_instance=on_instance)
        imported.failed.update(outcome.failed)
        if not outcome.failed:
            imported.imported = imported.imported.add(snapshot)
            expected[snapshot.instance_id] = Fingerprint.of(snapshot)
            expected_counts = expected_counts.add(snapshot)
    report.source, report.derived = export.counts, export.derived
    if dry_run:
        return report
    report.imported = imported
    report.verification = verify(expected, destination)
    report.verification.expected = expected_counts
    return report


__all__ = [
    "ExportReport",
    "Fingerprint",
    "ImportReport",
    "MigrationReport",
    "NotQuiescedError",
    "Verification",
    "check_quiesced",
    "export_header",
    "export_hub",
    "import_hub",
    "migrate",
    "snapshots_of",
    "verify",
]
