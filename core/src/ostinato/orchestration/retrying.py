"""Retries: the task user code sees for a call with a retry policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ostinato.errors import FailureDetails
from ostinato.orchestration.task import CompletableTask, Scheduler, Task
from ostinato.retry import RetryPolicy

__all__ = ["RetryingTask"]


class RetryingTask(CompletableTask[Any]):
    """The task user code sees for a call with a retry policy; attempts happen underneath."""

    def __init__(
        self,
        run: Scheduler,
        schedule: Callable[[], Task[Any]],
        policy: RetryPolicy,
    ) -> None:
        super().__init__()
        self._run = run
        self._schedule = schedule
        self._policy = policy
        self._attempt = 0
        self._first_attempt_at = run.current_time
        self._next_attempt()

    def _next_attempt(self) -> None:
        self._attempt += 1
        attempt = self._schedule()
        attempt.add_done_callback(self._on_child_completed)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self.is_complete:
            return
        if not child.is_failed:
            self._set_result(child._result)
            return
        exc = child.get_exception()
        details = getattr(exc, "details", None)
        if isinstance(details, FailureDetails):
            delay = self._policy.next_delay(
                self._attempt, self._first_attempt_at, self._run.current_time, details
            )
            if delay is not None:
                timer = self._run.create_timer(delay)
                timer.add_done_callback(lambda _: self._next_attempt())
                return
        assert exc is not None
        self._set_exception(exc)
