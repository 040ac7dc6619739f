"""The contexts handed to orchestrator and activity code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, overload

from ostinato.history import ParentInstance
from ostinato.orchestration.call_http import HttpResponse
from ostinato.orchestration.entities import EntityId, EntityLock
from ostinato.orchestration.task import CompletableTask, Scheduler, Task
from ostinato.retry import RetryPolicy

__all__ = ["ActivityContext", "OrchestrationContext", "OrchestrationDriver", "ReplaySafeLogger"]


class OrchestrationDriver(Scheduler, Protocol):
    """The engine side of an :class:`OrchestrationContext`: one execution being replayed.

    The replay engine's ``OrchestrationRun`` implements it; the context forwards each user
    call to it, so the context stays a thin, documented facade.
    """

    instance_id: str
    execution_id: str
    name: str
    parent: ParentInstance | None
    is_replaying: bool

    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., Any] | str,
        input: Any,
        instance_id: str | None,
        retry_policy: RetryPolicy | None,
    ) -> Task[Any]: ...

    def wait_for_external_event(self, name: str) -> CompletableTask[Any]: ...

    def send_event(self, instance_id: str, name: str, data: Any) -> None: ...

    def call_entity(self, entity: EntityId | str, operation: str, input: Any) -> Task[Any]: ...

    def signal_entity(
        self,
        entity: EntityId | str,
        operation: str,
        input: Any,
        scheduled_time: datetime | None,
    ) -> None: ...

    def lock_entities(self, entities: Sequence[EntityId | str]) -> Task[EntityLock]: ...

    def call_http(
        self,
        method: str,
        url: str,
        content: Any,
        headers: dict[str, str] | None,
        timeout: float | None,
        retry_policy: RetryPolicy | None,
        asynchronous_patterns: bool,
        token_source: str | None,
        poll_interval: timedelta,
    ) -> Task[HttpResponse]: ...

    def continue_as_new(self, new_input: Any, save_events: bool) -> None: ...

    def set_custom_status(self, value: Any) -> None: ...

    def new_uuid(self) -> str: ...


R = TypeVar("R")


class OrchestrationContext:
    """What orchestrator code uses to schedule durable work.

    Everything here is deterministic on replay: times come from history, ids from the
    instance id and a counter, and scheduling calls are matched against the recorded history.
    """

    def __init__(self, run: OrchestrationDriver) -> None:
        self._run = run

    @property
    def instance_id(self) -> str:
        """The orchestration instance's id."""
        return self._run.instance_id

    @property
    def execution_id(self) -> str:
        """The id of the current execution (changes on ``continue_as_new``)."""
        return self._run.execution_id

    @property
    def parent_instance_id(self) -> str | None:
        """The id of the parent orchestration, for a sub-orchestration."""
        parent = self._run.parent
        return parent.instance_id if parent else None

    @property
    def name(self) -> str:
        """The orchestrator's registered name."""
        return self._run.name

    @property
    def current_utc_datetime(self) -> datetime:
        """The current time as recorded in history (deterministic on replay)."""
        return self._run.current_time

    @property
    def is_replaying(self) -> bool:
        """True while the code is re-running steps already recorded in history."""
        return self._run.is_replaying

    # The task's type follows the activity's return annotation (an ``async def`` activity's
    # awaited result); by name it is ``Task[Any]``. See docs/typing.md for what ``yield`` gives.
    @overload
    def call_activity(
        self,
        activity: Callable[..., Coroutine[Any, Any, R]],
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[R]: ...
    @overload
    def call_activity(
        self,
        activity: Callable[..., R],
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[R]: ...
    @overload
    def call_activity(
        self, activity: str, *, input: Any = None, retry_policy: RetryPolicy | None = None
    ) -> Task[Any]: ...

    def call_activity(
        self,
        activity: Callable[..., Any] | str,
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[Any]:
        """Schedule an activity; ``yield`` the task for its result."""
        return self._run.call_activity(activity, input, retry_policy)

    @overload
    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., Generator[Any, Any, R]],
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[R]: ...
    @overload
    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., R],
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[R]: ...
    @overload
    def call_sub_orchestrator(
        self,
        orchestrator: str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[Any]: ...

    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., Any] | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Task[Any]:
        """Start a sub-orchestration; ``yield`` the task for its output.

        Without ``instance_id`` a deterministic id derived from this instance is used.
        """
        return self._run.call_sub_orchestrator(orchestrator, input, instance_id, retry_policy)

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]:
        """A durable timer: ``yield`` it to sleep until ``fire_at`` (or for a duration)."""
        return self._run.create_timer(fire_at)

    def wait_for_external_event(self, name: str) -> CompletableTask[Any]:
        """A task completed by the next event called ``name`` (names are case-insensitive).

        Events that arrived earlier are buffered; several waits on one name consume them in
        arrival order.
        """
        return self._run.wait_for_external_event(name)

    def send_event(self, instance_id: str, name: str, *, data: Any = None) -> None:
        """Raise event ``name`` on another instance (fire and forget)."""
        self._run.send_event(instance_id, name, data)

    def call_entity(
        self, entity_id: EntityId | str, operation: str, input: Any = None
    ) -> Task[Any]:
        """Run ``operation`` on an entity; ``yield`` the task for its result."""
        return self._run.call_entity(entity_id, operation, input)

    def signal_entity(
        self,
        entity_id: EntityId | str,
        operation: str,
        input: Any = None,
        *,
        scheduled_time: datetime | None = None,
    ) -> None:
        """Send ``operation`` to an entity without waiting (optionally at ``scheduled_time``)."""
        self._run.signal_entity(entity_id, operation, input, scheduled_time)

    def lock_entities(self, *entity_ids: EntityId | str) -> Task[EntityLock]:
        """Lock entities for a critical section: ``with (yield ctx.lock_entities(a, b)):``.

        Locks are taken in a global order (no deadlocks between orchestrations), held across
        activities and timers, and released when the block is left or the orchestration ends.
        While held, other orchestrations' operations on those entities wait.
        """
        return self._run.lock_entities(entity_ids)

    def call_http(
        self,
        method: str,
        url: str,
        *,
        content: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        asynchronous_patterns: bool = True,
        token_source: str | None = None,
        poll_interval: timedelta = timedelta(seconds=1),
    ) -> Task[HttpResponse]:
        """A durable HTTP request; ``yield`` it for the :class:`HttpResponse`.

        4xx/5xx answers are responses, not errors. ``202 Accepted`` with a ``Location`` is
        polled with durable timers (``Retry-After`` honoured) unless ``asynchronous_patterns``
        is false. ``timeout`` is per request, in seconds; ``token_source`` names a token
        provider registered with ``@app.token_provider``.
        """
        return self._run.call_http(
            method,
            url,
            content,
            headers,
            timeout,
            retry_policy,
            asynchronous_patterns,
            token_source,
            poll_interval,
        )

    def continue_as_new(self, new_input: Any, *, save_events: bool = False) -> None:
        """Restart this orchestration with ``new_input`` and an empty history.

        Return from the orchestrator right after calling it. With ``save_events``, external
        events received but not yet consumed are delivered to the new execution.
        """
        self._run.continue_as_new(new_input, save_events)

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON-serializable status value that clients can read."""
        self._run.set_custom_status(value)

    def new_uuid(self) -> str:
        """A UUID that is the same on every replay of this point of the code."""
        return self._run.new_uuid()

    def create_replay_safe_logger(self, logger: logging.Logger) -> logging.LoggerAdapter[Any]:
        """A logger that stays silent while the orchestration replays."""
        return ReplaySafeLogger(logger, self)


class ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Drops records logged while the orchestration is replaying."""

    def __init__(self, logger: logging.Logger, ctx: OrchestrationContext) -> None:
        super().__init__(logger, {"instance_id": ctx.instance_id})
        self._ctx = ctx

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return not self._ctx.is_replaying and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)


class ActivityContext:
    """What activity code gets: which orchestration called it and which task it is."""

    def __init__(self, instance_id: str, execution_id: str, task_id: int, name: str) -> None:
        self.instance_id = instance_id
        self.orchestration_id = instance_id
        self.execution_id = execution_id
        self.task_id = task_id
        self.name = name

    def __repr__(self) -> str:
        return (
            f"ActivityContext({self.name!r}, instance_id={self.instance_id!r}, "
            f"task_id={self.task_id})"
        )
