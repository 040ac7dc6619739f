"""Transient-error retries for server databases (deadlock victims, serialization failures).

A provider maps its driver's "the database rolled this transaction back, run it again" errors
to :class:`TransientDatabaseError` and mixes :class:`RetriesTransientErrors` in before
:class:`~ostinato.relational.provider.RelationalProvider`::

    class MyProvider(RetriesTransientErrors, RelationalProvider): ...

Every contract call then runs again, with jittered exponential back-off, while its
transaction fails transiently. Group-commit calls report failures per item instead of raising;
for them the toolkit returns how the call's last transaction ended
(:class:`~ostinato.relational.provider.BatchOutcome`), and only a failed *last* transaction is
retried: a batch whose first attempt failed but whose second committed is never re-applied.
Bulk creates report per request too; a request that failed transiently was not written (its
transaction, or its savepoint, was rolled back), so those requests run again, in their order.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from ostinato.errors import ProviderError
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityClaim,
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ReuseIdPolicy,
)
from ostinato.relational.provider import BatchOutcome, CreateRequest
from ostinato.status import OrchestrationStatus

__all__ = ["RetriesTransientErrors", "TransientDatabaseError"]

T = TypeVar("T")

log = logging.getLogger("ostinato.relational")


class TransientDatabaseError(ProviderError):
    """The database rolled a transaction back (deadlock, serialization failure, lock
    timeout); running it again is safe."""


class RetriesTransientErrors:
    """Mixin: every contract call is retried while its transaction fails transiently."""

    #: How many times a call runs again after its first attempt.
    max_retries: int = 5
    #: The first back-off, in seconds (doubled each time, jittered).
    retry_delay: float = 0.005
    #: The longest back-off, in seconds.
    retry_max_delay: float = 1.0

    def _retrying(self, call: Callable[[], T]) -> T:
        """Run ``call`` (one provider operation); run it again while it fails transiently."""
        return self._retry(lambda: (call(), None))

    def _retrying_batch(self, call: Callable[[], BatchOutcome]) -> list[Exception | None]:
        """Run ``call`` (a group commit); run it again while its last transaction failed
        transiently."""

        def attempt() -> tuple[list[Exception | None], Exception | None]:
            outcome = call()
            return outcome.errors, outcome.failure

        return self._retry(attempt)

    def _backoff(self, attempt: int, delay: float) -> float:
        """Sleep before running attempt ``attempt + 1``; return the next delay."""
        log.debug("Retrying a transaction the database rolled back (attempt %d)", attempt + 1)
        time.sleep(delay * (0.5 + random.random()))
        return min(delay * 2, self.retry_max_delay)

    def _retry(self, call: Callable[[], tuple[T, BaseException | None]]) -> T:
        """Run ``call``, which returns its result and how its last transaction failed
        (``None``: it committed); run it again while that, or what it raises, is a
        :class:`TransientDatabaseError`."""
        delay = self.retry_delay
        for attempt in range(self.max_retries + 1):
            last = attempt >= self.max_retries
            try:
                result, failure = call()
            except TransientDatabaseError:
                if last:
                    raise
            else:
                if last or not isinstance(failure, TransientDatabaseError):
                    return result
            delay = self._backoff(attempt, delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the contract, each call retried ---------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.create_instance(record, start, policy))

    def create_instances(self, requests: Sequence[CreateRequest]) -> list[Exception | None]:
        parent: Any = super()
        results: list[Exception | None] = parent.create_instances(requests)
        delay = self.retry_delay
        for attempt in range(self.max_retries):
            again = [
                i for i, error in enumerate(results) if isinstance(error, TransientDatabaseError)
            ]
            if not again:
                break
            delay = self._backoff(attempt, delay)
            retried = parent.create_instances([requests[i] for i in again])
            for index, error in zip(again, retried, strict=True):
                results[index] = error
        return results

    def send_message(self, message: OrchestrationMessage) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.send_message(message))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        parent: Any = super()
        record: InstanceRecord | None = self._retrying(lambda: parent.get_instance(instance_id))
        return record

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        parent: Any = super()
        return self._retrying(lambda: parent.get_history(instance_id))

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        parent: Any = super()
        return self._retrying(lambda: parent.query_instances(query))

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        parent: Any = super()
        purged: bool = self._retrying(lambda: parent.purge_instance(instance_id, only_if_status))
        return purged

    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        parent: Any = super()
        return self._retrying(
            lambda: parent.lock_next_orchestration_work_items(worker_id, lock_timeout, max_count)
        )

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        parent: Any = super()
        return self._retrying_batch(lambda: parent._complete_orchestrations(batch))

    def complete_and_claim_activities(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim,
    ) -> list[Exception | None]:
        parent: Any = super()
        return self._retrying_batch(lambda: parent._complete_orchestrations(batch, claim))

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.abandon_orchestration_work_item(item, delay))

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.renew_orchestration_work_item_lock(item, lock_timeout))

    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        parent: Any = super()
        return self._retrying(
            lambda: parent.lock_next_activity_work_items(worker_id, lock_timeout, max_count)
        )

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        parent: Any = super()
        return self._retrying_batch(lambda: parent._complete_activities(batch))

    def complete_activities_and_claim(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim,
    ) -> list[Exception | None]:
        parent: Any = super()
        return self._retrying_batch(lambda: parent._complete_activities(batch, claim))

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.abandon_activity_work_item(item, delay))

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.renew_activity_work_item_lock(item, lock_timeout))
