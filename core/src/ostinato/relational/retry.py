"""Transient-error retries for server databases (deadlock victims, serialization failures).

A provider maps its driver's "the database rolled this transaction back, run it again" errors
to :class:`TransientDatabaseError` and mixes :class:`RetriesTransientErrors` in before
:class:`~ostinato.relational.provider.RelationalProvider`::

    class MyProvider(RetriesTransientErrors, RelationalProvider): ...

Every contract call then runs again, with jittered exponential back-off, while its
transaction fails transiently. Group-commit calls report failures per item instead of raising,
so the provider's ``_write`` tells the mixin how its last transaction ended
(:meth:`RetriesTransientErrors._record_transaction`), and only a failed *last* transaction is
retried: a batch whose first attempt failed but whose second committed is never re-applied.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from ostinato.errors import ProviderError
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ReuseIdPolicy,
)
from ostinato.status import OrchestrationStatus

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

    _retry_state: threading.local | None = None

    def _last_failure(self) -> BaseException | None:
        state = self._retry_state
        return getattr(state, "failed", None) if state is not None else None

    def _record_transaction(self, failure: BaseException | None) -> None:
        """Called by the provider's ``_write`` with how its transaction ended."""
        if self._retry_state is None:
            self._retry_state = threading.local()
        self._retry_state.failed = failure

    def _retrying(self, call: Callable[[], T]) -> T:
        """Run ``call`` (one provider operation); run it again while it fails transiently."""
        delay = self.retry_delay
        for attempt in range(self.max_retries + 1):
            self._record_transaction(None)
            try:
                result = call()
            except TransientDatabaseError:
                if attempt >= self.max_retries:
                    raise
            else:
                if (
                    not isinstance(self._last_failure(), TransientDatabaseError)
                    or attempt >= self.max_retries
                ):
                    return result
            log.debug("Retrying a transaction the database rolled back (attempt %d)", attempt + 1)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.retry_max_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the contract, each call retried ---------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        parent: Any = super()
        self._retrying(lambda: parent.create_instance(record, start, policy))

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
        return self._retrying(lambda: parent.complete_orchestration_work_items(batch))

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
        return self._retrying(lambda: parent.complete_activity_work_items(batch))

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
