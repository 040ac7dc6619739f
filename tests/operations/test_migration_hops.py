"""Migration across providers: SQLite → PostgreSQL → Azure Storage (Azurite) → SQLite, with
instances waiting on timers, external events, activities and sub-orchestrations that then
complete on the last hub with the right results."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import ostinato as ot
import pytest
from ostinato.history import TimerFired
from ostinato.sqlite import SqliteProvider
from ostinato.transfer.operations import NotQuiescedError, migrate

from . import scenario
from .conftest import Factory

pytestmark = pytest.mark.slow


def _hop(source: ot.StorageProvider, destination: ot.StorageProvider) -> int:
    report = migrate(source, destination)
    assert report.quiesced is True
    assert report.ok, (report.imported, report.verification)
    assert report.source.instances == 6 and report.source.entities == 1
    assert report.verification is not None and report.verification.found == report.source
    return report.derived


def test_four_hops_complete_every_in_flight_instance(
    make_sqlite: Callable[..., SqliteProvider], make_postgres: Factory, make_azure: Factory
) -> None:
    first = make_sqlite("first")
    scenario.start_in_flight(first)
    hubs = [first, make_postgres(), make_azure(), make_sqlite("last")]
    for source, destination in itertools.pairwise(hubs):
        _hop(source, destination)
    assert scenario.finish(hubs[-1]) == scenario.EXPECTED


def test_a_timer_hidden_in_an_azure_queue_is_rebuilt_from_history(
    make_sqlite: Callable[..., SqliteProvider], make_azure: Factory
) -> None:
    first = make_sqlite("first")
    scenario.start_in_flight(first, timer_seconds=600)
    azure = make_azure()
    assert _hop(first, azure) == 0  # SQLite exports its timers as they are
    last = make_sqlite("last")
    # The queue hides the timer until it is due: the history says it is owed.
    assert _hop(azure, last) == 1
    (snapshot,) = [s for s in last.export_state() if s.instance_id == "timer"]
    (timer,) = snapshot.messages
    assert isinstance(timer.event, TimerFired)
    assert timer.visible_at is not None
    created = ot.Client(first).get_orchestration_history("timer")
    fire_at = next(e.fire_at for e in created if hasattr(e, "fire_at"))
    assert timer.visible_at == fire_at
    assert fire_at - snapshot.record.created_at > timedelta(seconds=500)  # type: ignore[union-attr]


def test_a_running_azure_worker_blocks_migration(
    make_azure: Factory, make_sqlite: Callable[..., SqliteProvider]
) -> None:
    azure = make_azure()
    with ot.Worker(scenario.app, azure, max_poll_interval=0.05):
        # The worker's heartbeat is written by its first poll, on its own thread.
        deadline = time.monotonic() + 30
        while not azure.active_workers():
            assert time.monotonic() < deadline, "the running worker never showed up"
            threading.Event().wait(0.05)
        with pytest.raises(NotQuiescedError):
            migrate(azure, make_sqlite("destination"), dry_run=True)
