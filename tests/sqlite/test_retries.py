"""Transient-error retries (``RetriesTransientErrors``) on a real database.

The provider under test is the SQLite provider whose transactions the database "rolls back"
as a deadlock victim would be: the toolkit's statements run, then the transaction ends with
:class:`TransientDatabaseError` and is rolled back (as PostgreSQL and SQL Server do to one of
two deadlocked transactions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from ostinato.history import OrchestratorStarted, TaskCompleted
from ostinato.provider import OrchestrationCheckpoint, OrchestrationMessage, ReuseIdPolicy
from ostinato.relational import (
    CreateRequest,
    RetriesTransientErrors,
    Transaction,
    TransientDatabaseError,
)
from ostinato.sqlite import SqliteProvider

from .helpers import LONG, create, record, start


class DeadlockingProvider(RetriesTransientErrors, SqliteProvider):
    """The next ``fail`` write transactions are rolled back as deadlock victims."""

    retry_delay = 0.0
    fail = 0
    transactions = 0

    @contextlib.contextmanager
    def transaction(self, durable: bool) -> Iterator[Transaction]:
        with super().transaction(durable) as transaction:
            yield transaction
            self.transactions += 1
            if self.fail:
                self.fail -= 1
                raise TransientDatabaseError("deadlock victim (simulated by the test)")


@pytest.fixture
def provider(db_path: Path) -> Iterator[DeadlockingProvider]:
    p = DeadlockingProvider(db_path, synchronous="NORMAL")
    p.setup()
    yield p
    p.close()


def _event(instance_id: str, n: int) -> OrchestrationMessage:
    return OrchestrationMessage(
        instance_id=instance_id, event=TaskCompleted(task_scheduled_id=n, result=str(n))
    )


def test_a_call_runs_again_until_its_transaction_commits(provider: DeadlockingProvider) -> None:
    create(provider, "a")
    provider.fail = 2
    message = _event("a", 1)
    provider.send_message(message)
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    assert [m.message_id for m in item.messages][1:] == [message.message_id]  # once


def test_after_max_retries_the_error_is_raised_and_nothing_was_committed(
    provider: DeadlockingProvider,
) -> None:
    create(provider, "a")
    provider.fail = provider.max_retries + 1
    with pytest.raises(TransientDatabaseError):
        provider.send_message(_event("a", 1))
    assert provider.fail == 0
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None and len(item.messages) == 1  # only the start


@pytest.mark.parametrize(
    ("fail", "transactions"),
    [
        # The batch's first transaction fails, its second (one savepoint per item) commits:
        # the call is done, and must not run again (its items' locks are gone by then).
        (1, 2),
        # Both fail: the call runs again, and its next first transaction commits.
        (2, 3),
    ],
)
def test_a_group_commit_runs_again_only_if_its_last_transaction_failed(
    provider: DeadlockingProvider, fail: int, transactions: int
) -> None:
    for iid in ("a", "b"):
        create(provider, iid)
    items = provider.lock_next_orchestration_work_items("w", LONG, 2)
    assert len(items) == 2
    batch = [
        (item, OrchestrationCheckpoint(instance=None, new_history=[OrchestratorStarted()]))
        for item in items
    ]
    provider.fail, provider.transactions = fail, 0
    assert provider.complete_orchestration_work_items(batch) == [None, None]
    assert provider.transactions == transactions
    for iid in ("a", "b"):
        assert len(provider.get_history(iid)) == 1  # applied exactly once
    assert provider.lock_next_orchestration_work_item("w", LONG) is None  # messages consumed


def _requests(*ids: str) -> list[CreateRequest]:
    return [(rec, start(rec), ReuseIdPolicy.ERROR_IF_EXISTS) for rec in map(record, ids)]


def test_a_bulk_create_runs_its_rolled_back_requests_again(provider: DeadlockingProvider) -> None:
    provider.fail, provider.transactions = 2, 0
    assert provider.create_instances(_requests("a", "b", "c")) == [None, None, None]
    assert provider.transactions == 3  # two rolled back, the third committed all three
    items = provider.lock_next_orchestration_work_items("w", LONG, 10)
    assert sorted(item.instance_id for item in items) == ["a", "b", "c"]
    assert all(len(item.messages) == 1 for item in items)  # each start written once


def test_a_bulk_create_still_rolled_back_after_max_retries_reports_it_per_request(
    provider: DeadlockingProvider,
) -> None:
    provider.fail = provider.max_retries + 1
    results = provider.create_instances(_requests("a", "b"))
    assert [type(error) for error in results] == [TransientDatabaseError] * 2
    assert provider.fail == 0
    assert provider.get_instance("a") is None and provider.get_instance("b") is None
    assert provider.create_instances(_requests("a", "b")) == [None, None]  # nothing half-done
