"""The defaults of the ``StorageProvider`` contract that a provider may rely on."""

from __future__ import annotations

from datetime import timedelta

import ostinato as ot
import pytest
from ostinato.provider import OrchestrationWorkItem, StorageProvider

SHORT = timedelta(seconds=5)


def test_a_provider_that_locks_in_batches_locks_one_as_a_batch_of_one() -> None:
    class Batches(ot.InMemoryProvider):
        lock_next_orchestration_work_item = StorageProvider.lock_next_orchestration_work_item

        def __init__(self) -> None:
            super().__init__()
            self.batches: list[int] = []

        def lock_next_orchestration_work_items(
            self, worker_id: str, lock_timeout: timedelta, max_count: int
        ) -> list[OrchestrationWorkItem]:
            self.batches.append(max_count)
            item = ot.InMemoryProvider.lock_next_orchestration_work_item(
                self, worker_id, lock_timeout
            )
            return [] if item is None else [item]

    provider = Batches()
    client = ot.Client(provider)
    iid = client.schedule_new_orchestration("orch")
    item = provider.lock_next_orchestration_work_item("w", SHORT)
    assert item is not None and item.instance_id == iid
    assert provider.lock_next_orchestration_work_item("w", SHORT) is None
    assert provider.batches == [1, 1]


def test_a_provider_that_locks_neither_one_nor_a_batch_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="must override lock_next_activity_work_item or"):

        class Neither(ot.InMemoryProvider):
            lock_next_activity_work_item = StorageProvider.lock_next_activity_work_item
            lock_next_activity_work_items = StorageProvider.lock_next_activity_work_items

    class Base(StorageProvider):  # still abstract: a base for providers may leave both
        pass

    assert "create_instance" in Base.__abstractmethods__
