"""Concurrent creates on one SQLite provider share a transaction (and its sync)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.relational.grouping import CallGroup
from ostinato.relational.provider import CreateRequest
from ostinato.sqlite import SqliteProvider

HOLD = "hold-the-first-batch"


def recording(provider: SqliteProvider) -> list[list[str]]:
    """Record each batch's instance ids; the batch creating ``HOLD`` waits a moment, so the
    creates started meanwhile queue up behind it and form the next batch."""
    batches: list[list[str]] = []
    inner = provider._create_many

    def run(requests: Sequence[CreateRequest]) -> list[Exception | None]:
        ids = [record.instance_id for record, _, _ in requests]
        batches.append(ids)
        if HOLD in ids:
            time.sleep(0.3)
        return inner(requests)

    provider._creates = CallGroup(run)
    return batches


def start_behind_a_held_batch(client: ot.Client, ids: list[str]) -> list[BaseException | None]:
    """Create ``HOLD``, then, while its batch waits, ``ids`` from one thread each."""
    outcomes: list[BaseException | None] = [None] * len(ids)

    def create(index: int) -> None:
        try:
            client.schedule_new_orchestration("anything", instance_id=ids[index])
        except Exception as exc:
            outcomes[index] = exc

    holder = threading.Thread(
        target=client.schedule_new_orchestration, args=("anything",), kwargs={"instance_id": HOLD}
    )
    holder.start()
    time.sleep(0.1)  # the holder's batch is running
    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(ids))]
    for thread in threads:
        thread.start()
    holder.join()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.fixture
def durable(db_path: Path) -> Iterator[SqliteProvider]:
    provider = SqliteProvider(db_path)  # synchronous=FULL: the setting grouping pays off in
    provider.setup()
    yield provider
    provider.close()


def test_concurrent_creates_run_as_one_batch(durable: SqliteProvider) -> None:
    batches = recording(durable)
    client = ot.Client(durable)
    ids = [f"grouped-{n}" for n in range(6)]
    assert start_behind_a_held_batch(client, ids) == [None] * 6
    assert batches[0] == [HOLD]
    assert sorted(batches[1]) == ids  # all six in one transaction
    for instance_id in [HOLD, *ids]:
        state = client.get_orchestration_state(instance_id)
        assert state is not None and state.runtime_status is ot.OrchestrationStatus.PENDING


def test_a_conflict_fails_only_its_own_create(durable: SqliteProvider) -> None:
    client = ot.Client(durable)
    client.schedule_new_orchestration("anything", instance_id="taken", input="first")
    batches = recording(durable)
    outcomes = start_behind_a_held_batch(client, ["a", "taken", "b"])
    assert sorted(batches[1]) == ["a", "b", "taken"]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ot.InstanceAlreadyExistsError)
    taken = client.get_orchestration_state("taken")
    assert taken is not None and taken.input == "first"  # untouched
    assert client.get_orchestration_state("a") is not None
    assert client.get_orchestration_state("b") is not None


def test_one_id_created_concurrently_in_one_batch_has_one_winner(
    durable: SqliteProvider,
) -> None:
    client = ot.Client(durable)
    batches = recording(durable)
    outcomes = start_behind_a_held_batch(client, ["same"] * 5)
    assert batches[1] == ["same"] * 5
    assert outcomes.count(None) == 1
    assert all(isinstance(o, ot.InstanceAlreadyExistsError) for o in outcomes if o is not None)


def test_many_concurrent_starts_all_land(durable: SqliteProvider) -> None:
    client = ot.Client(durable)
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda _: client.schedule_new_orchestration("anything"), range(400)))
    assert len(set(ids)) == 400
    page = client.query_instances(page_size=1000, fetch_payloads=False)
    assert {state.instance_id for state in page.items} == set(ids)
    assert durable.wal_syncs < 400  # they shared syncs
