"""Contract tests of the optional operations methods: state export and import (moving task
hubs), named leases (one worker per hub for background jobs) and the backlog count.

A provider that keeps a method's default (``NotImplementedError`` for export/import, a lease
that admits everyone, no backlog) has the tests of that method skipped, with the reason.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError
from ostinato.history import (
    EventRaised,
    OrchestratorStarted,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.provider import (
    InstanceSnapshot,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus
from ostinato.transfer.operations import Fingerprint, snapshots_of

from ostinato_conformance.base import ConformanceTestBase, ProviderFactory
from ostinato_conformance.support import (
    activity_task,
    create,
    lock_orchestration,
)


def _overrides(provider: StorageProvider, name: str) -> bool:
    return getattr(type(provider), name) is not getattr(StorageProvider, name)


def _mid_flight(provider: StorageProvider) -> None:
    """A running instance waiting on an activity and a timer, a pending one, a finished one,
    and an event for an id that has no instance yet."""
    running = create(provider, "running")
    item = lock_orchestration(provider)
    assert item is not None and item.instance_id == "running"
    fire_at = utcnow() + timedelta(hours=1)
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=running.with_changes(
                runtime_status=OrchestrationStatus.RUNNING, history_size=4
            ),
            new_history=[
                *(m.event for m in item.messages),
                OrchestratorStarted(),
                TaskScheduled(task_id=0, name="conformance_activity", input='"x"'),
                TimerCreated(task_id=1, fire_at=fire_at),
            ],
            activity_tasks=[activity_task(running, 0, '"x"')],
            messages=[
                OrchestrationMessage(
                    "running",
                    TimerFired(timestamp=fire_at, timer_id=1, fire_at=fire_at),
                    execution_id=running.execution_id,
                    visible_at=fire_at,
                )
            ],
        ),
    )
    create(provider, "pending", input='"later"')
    provider.send_message(OrchestrationMessage("orphan", EventRaised(name="early", input="1")))


class ProviderOperationsTests(ConformanceTestBase):
    """Export/import, leases and the backlog, for providers that implement them."""

    def _requires_transfer(self, provider: StorageProvider) -> None:
        if not (_overrides(provider, "export_state") and _overrides(provider, "import_snapshot")):
            pytest.skip("the provider does not implement export_state/import_snapshot")

    def test_exported_state_imports_into_a_fresh_hub_unchanged(
        self, provider: StorageProvider, new_provider: ProviderFactory
    ) -> None:
        self._requires_transfer(provider)
        _mid_flight(provider)
        exported = list(snapshots_of(provider))
        assert [s.instance_id for s in exported] == ["orphan", "pending", "running"]
        running = exported[2]
        assert len(running.history) == 4 and len(running.activity_tasks) == 1
        assert [type(m.event) for m in running.messages] == [TimerFired]
        destination = new_provider()
        for snapshot in exported:
            destination.import_snapshot(snapshot)
        again = list(snapshots_of(destination))
        assert [Fingerprint.of(s) for s in again] == [Fingerprint.of(s) for s in exported]
        assert again[2].history == running.history
        assert again[2].record == running.record
        # Imported work is deliverable: the pending instance's start and the orphan event.
        item = lock_orchestration(destination)
        assert item is not None and item.instance_id in {"orphan", "pending"}

    def test_import_refuses_an_id_the_hub_holds(self, provider: StorageProvider) -> None:
        self._requires_transfer(provider)
        create(provider, "taken")
        snapshot = next(s for s in snapshots_of(provider) if s.instance_id == "taken")
        with pytest.raises(InstanceAlreadyExistsError):
            provider.import_snapshot(snapshot)
        assert isinstance(snapshot, InstanceSnapshot)
        assert [s.instance_id for s in snapshots_of(provider)] == ["taken"]

    def test_a_lease_has_one_owner_at_a_time(self, provider: StorageProvider) -> None:
        if not _overrides(provider, "acquire_lease"):
            pytest.skip("the provider keeps the default lease (admits every caller)")
        long = timedelta(seconds=60)
        assert provider.acquire_lease("job", "a", long)
        assert not provider.acquire_lease("job", "b", long)
        assert provider.acquire_lease("job", "a", long)
        provider.release_lease("job", "b")
        assert not provider.acquire_lease("job", "b", long)
        provider.release_lease("job", "a")
        assert provider.acquire_lease("job", "b", timedelta(milliseconds=1))
        time.sleep(0.05)
        assert provider.acquire_lease("job", "a", long)  # expired: taken over

    def test_backlog_counts_ready_orchestrations(self, provider: StorageProvider) -> None:
        if provider.backlog() is None:
            pytest.skip("the provider does not count its backlog")
        assert provider.backlog() == {"orchestrations": 0, "activities": 0}
        for n in range(3):
            create(provider, f"queued-{n}")
        assert provider.backlog() == {"orchestrations": 3, "activities": 0}
