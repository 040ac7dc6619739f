"""Durable tasks: what orchestrator code yields, and the ``when_all``/``when_any`` combinators."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from ostinato.errors import TaskFailedError
from ostinato.retry import RetryPolicy

T = TypeVar("T")


class Task(Generic[T]):
    """A durable operation whose result an orchestrator waits for with ``yield``."""

    def __init__(self) -> None:
        self._complete = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Task[Any]], None]] = []

    @property
    def is_complete(self) -> bool:
        """True once the task has a result or an error."""
        return self._complete

    @property
    def is_failed(self) -> bool:
        """True if the task completed with an error."""
        return self._exception is not None

    def get_result(self) -> T:
        """The task's result; raises its error if it failed, ``ValueError`` if not done."""
        if not self._complete:
            raise ValueError("The task has not completed yet")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    def get_exception(self) -> BaseException | None:
        """The task's error, if it failed."""
        return self._exception

    def add_done_callback(self, fn: Callable[[Task[Any]], None]) -> None:
        """Call ``fn(task)`` when the task completes (combinators, retries and polling)."""
        self._callbacks.append(fn)

    def _set_result(self, result: Any) -> None:
        if self._complete:
            return
        self._complete = True
        self._result = result
        for callback in self._callbacks:
            callback(self)

    def _set_exception(self, exc: BaseException) -> None:
        if self._complete:
            return
        self._complete = True
        self._exception = exc
        for callback in self._callbacks:
            callback(self)


class CompletableTask(Task[T]):
    """A task completed by the replay engine when its history event arrives."""


class CompositeTask(Task[T]):
    """A task made of other tasks."""

    def __init__(self, tasks: Iterable[Task[Any]]) -> None:
        super().__init__()
        self._tasks: list[Task[Any]] = list(tasks)
        for task in self._tasks:
            if not isinstance(task, Task):
                raise TypeError(f"when_all/when_any take tasks, not {type(task).__name__}")
            task.add_done_callback(self._on_child_completed)

    def _start(self) -> None:
        for task in self._tasks:
            if task.is_complete:
                self._on_child_completed(task)
                if self.is_complete:
                    break

    def _on_child_completed(self, child: Task[Any]) -> None:
        raise NotImplementedError


class WhenAllTask(CompositeTask[list[T]]):
    """Completes with all children's results (in order); fails on the first failure."""

    def __init__(self, tasks: Iterable[Task[T]]) -> None:
        super().__init__(tasks)
        self._done_count = 0
        if not self._tasks:
            self._set_result([])
        else:
            self._start()

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self.is_complete:
            return
        if child.is_failed:
            exc = child.get_exception()
            assert exc is not None
            self._set_exception(exc)
            return
        self._done_count += 1
        if self._done_count == len(self._tasks):
            self._set_result([t._result for t in self._tasks])


class WhenAnyTask(CompositeTask[Task[Any]]):
    """Completes with the first child task to complete (the task itself, not its result)."""

    def __init__(self, tasks: Iterable[Task[Any]]) -> None:
        super().__init__(tasks)
        if not self._tasks:
            raise ValueError("when_any needs at least one task")
        self._start()

    def _on_child_completed(self, child: Task[Any]) -> None:
        if not self.is_complete:
            self._set_result(child)


#: The return annotation of an orchestrator that returns ``R``: a generator that yields
#: tasks and is sent their results (``Any``: a ``yield`` cannot be typed per task).
Orchestration: TypeAlias = Generator[Task[Any], Any, T]


def when_all(tasks: Iterable[Task[T]]) -> WhenAllTask[T]:
    """A task that completes when all ``tasks`` complete, with the list of their results."""
    return WhenAllTask(tasks)


def when_any(tasks: Iterable[Task[Any]]) -> WhenAnyTask:
    """A task that completes when any of ``tasks`` completes, with that task as its result."""
    return WhenAnyTask(tasks)


class Scheduler(Protocol):
    """What a task that schedules further work (retries, HTTP polling) needs from its run."""

    @property
    def current_time(self) -> datetime: ...

    def call_activity(
        self, activity: Callable[..., Any] | str, input: Any, retry_policy: RetryPolicy | None
    ) -> Task[Any]: ...

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]: ...


def failed_error(name: str, details: Any) -> TaskFailedError:
    return TaskFailedError(f"{name} failed: {details.error_type}: {details.message}", details)


__all__ = [
    "CompletableTask",
    "CompositeTask",
    "Orchestration",
    "Scheduler",
    "Task",
    "WhenAllTask",
    "WhenAnyTask",
    "failed_error",
    "when_all",
    "when_any",
]
