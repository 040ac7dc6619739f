"""``schedule_new_orchestrations``: many starts in one provider call, one result per item."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.provider import InstanceRecord, OrchestrationMessage, ReuseIdPolicy
from ostinato.sqlite import SqliteProvider

app = ot.App()


@app.orchestrator
def double(ctx: ot.OrchestrationContext, n: int) -> int:
    return n * 2
    yield  # a generator


class BatchOnlySqlite(SqliteProvider):
    """Fails one-by-one creates once ``batch_only`` is set: a batch must take the batched path."""

    batch_only = False

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        if self.batch_only:
            raise AssertionError("create_instances fell back to one create_instance per item")
        super().create_instance(record, start, policy)


@pytest.fixture(params=["memory", "sqlite"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> ot.StorageProvider:
    if request.param == "memory":
        return ot.InMemoryProvider()
    return BatchOnlySqlite(tmp_path / "bulk.db")


def test_each_item_gets_its_result_and_the_valid_ones_run(provider: ot.StorageProvider) -> None:
    client = ot.Client(provider)
    client.schedule_new_orchestration(double, input=0, instance_id="taken")
    if isinstance(provider, BatchOnlySqlite):
        provider.batch_only = True
    items: list[Any] = [ot.NewOrchestration(double, input=n) for n in range(200)]
    items[5] = ot.NewOrchestration(double, input=5, instance_id="bad\x00id")
    items[6] = ot.NewOrchestration(double, input=object())  # not serializable
    items[7] = ot.NewOrchestration(double, input=7, start_at=datetime(2030, 1, 1))  # naive
    items[8] = ot.NewOrchestration("double", input=8, instance_id="taken")
    items[9] = ot.NewOrchestration("double", input=9, instance_id="twice")
    items[10] = ot.NewOrchestration("double", input=10, instance_id="twice")
    items[11] = "double"  # not a NewOrchestration
    items[12] = ot.NewOrchestration(double, input=12, reuse_id_policy="error_if_exists")  # type: ignore[arg-type]

    results = client.schedule_new_orchestrations(items)

    outcomes = [r.outcome for r in results]
    assert outcomes[5:8] == [ot.StartOutcome.INVALID] * 3
    assert outcomes[12] is ot.StartOutcome.INVALID and isinstance(results[12].error, TypeError)
    assert results[5].instance_id == "bad\x00id" and results[5].error is not None
    assert outcomes[8] is ot.StartOutcome.ALREADY_EXISTS and results[8].instance_id == "taken"
    assert outcomes[9:12] == [
        ot.StartOutcome.CREATED,
        ot.StartOutcome.ALREADY_EXISTS,
        ot.StartOutcome.INVALID,
    ]
    created = [r for r in results if r.created]
    assert len(created) == 200 - 7
    assert len({r.instance_id for r in created}) == len(created)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        for result in created:
            assert result.instance_id is not None
            state = client.wait_for_orchestration_completion(result.instance_id, timeout=60)
            assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
    twice = client.get_orchestration_state("twice")
    assert twice is not None and twice.output == 18
    taken = client.get_orchestration_state("taken")
    assert taken is not None and taken.output == 0


def test_the_async_client_starts_in_bulk(provider: ot.StorageProvider) -> None:
    async def main() -> list[ot.StartResult]:
        client = ot.AsyncClient(provider)
        return await client.schedule_new_orchestrations(
            [ot.NewOrchestration(double, input=n, instance_id=f"a{n}") for n in range(3)]
        )

    results = asyncio.run(main())
    assert [(r.instance_id, r.created) for r in results] == [(f"a{n}", True) for n in range(3)]
    assert ot.Client(provider).schedule_new_orchestrations([]) == []
