"""Retry policies for activities and sub-orchestrations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ostinato.errors import FailureDetails


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed activity or sub-orchestration is retried.

    Attempt ``n`` (counting from 1) that fails is retried after
    ``first_retry_interval * backoff_coefficient ** (n - 1)``, capped at
    ``max_retry_interval``, as a durable timer; at most ``max_number_of_attempts`` attempts
    run in all, and none starts once ``retry_timeout`` has passed since the first. ``handle``,
    if given, decides from the failure details whether a failure is retried at all.
    """

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta | None = None
    retry_timeout: timedelta | None = None
    handle: Callable[[FailureDetails], bool] | None = None

    def __post_init__(self) -> None:
        if self.first_retry_interval <= timedelta(0):
            raise ValueError("first_retry_interval must be positive")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")

    def next_delay(
        self, attempt: int, first_attempt_at: datetime, now: datetime, failure: FailureDetails
    ) -> timedelta | None:
        """The delay before the next attempt after attempt ``attempt`` failed, or ``None``."""
        if attempt >= self.max_number_of_attempts:
            return None
        if self.handle is not None and not self.handle(failure):
            return None
        delay = self.first_retry_interval * (self.backoff_coefficient ** (attempt - 1))
        if self.max_retry_interval is not None and delay > self.max_retry_interval:
            delay = self.max_retry_interval
        if self.retry_timeout is not None and now + delay > first_attempt_at + self.retry_timeout:
            return None
        return delay


__all__ = [
    "RetryPolicy",
]
