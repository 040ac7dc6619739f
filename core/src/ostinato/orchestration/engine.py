"""The replay engine: drives an orchestrator generator from its history, sans I/O.

An :class:`OrchestrationRun` is one execution of one orchestrator. ``replay(history)`` re-runs
the code against recorded events (matching every scheduling call against the history, so
diverging code raises :class:`NonDeterminismError`); ``step(events, now)`` applies newly
arrived events and returns what to persist. A run can be kept between steps (the worker's
cache), so a busy instance isn't replayed from scratch on each new event.

A step's history is written in the order of the Durable Task history table: the received
events (with their own timestamps), ``OrchestratorStarted``, the new scheduling events,
``OrchestratorCompleted``, then ``ExecutionCompleted`` or ``ContinueAsNew`` if the execution
ended. The step's time (``current_utc_datetime``) is its ``OrchestratorStarted`` timestamp.

Deduplication lives here so that providers need only at-least-once delivery: completions
for tasks that are not open are ignored, a second ``ExecutionStarted`` is dropped, and
suspend/resume that change nothing are ignored. Ignored events are not written to history.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ostinato.converter import DataConverter
from ostinato.errors import FailureDetails, NonDeterminismError, SerializationError
from ostinato.history import (
    ContinueAsNew,
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.orchestration.actions import (
    SCHEDULING_EVENTS,
    Ending,
    Origin,
    SchedulingEvent,
    StepResult,
    continued_execution_id,
    ending_messages,
    outbound,
)
from ostinato.orchestration.app import App, name_of
from ostinato.orchestration.call_http import HttpRequest, HttpResponse, HttpTask
from ostinato.orchestration.context import OrchestrationContext
from ostinato.orchestration.entities import EntityId, EntityLock, as_entity_id
from ostinato.orchestration.retrying import RetryingTask
from ostinato.orchestration.task import CompletableTask, Task, failed_error
from ostinato.retry import RetryPolicy
from ostinato.status import OrchestrationStatus

#: Namespace of the deterministic UUIDs of ``ctx.new_uuid()`` and generated sub-orchestration ids.
UUID_NAMESPACE = uuid.UUID("9e8a4b64-3c1f-4c2a-a1d5-7f0f3c8e9b21")


def describe(event: HistoryEvent) -> str:
    """A short human description of a scheduling event, for error messages."""
    if isinstance(event, TaskScheduled):
        return f"call_activity({event.name!r})"
    if isinstance(event, SubOrchestrationInstanceCreated):
        return f"call_sub_orchestrator({event.name!r})"
    if isinstance(event, TimerCreated):
        return "create_timer()"
    if isinstance(event, EventSent):
        return f"send_event({event.instance_id!r}, {event.name!r})"
    if isinstance(event, EntityOperationCalled):
        return f"call_entity({event.entity_id!r}, {event.name!r})"
    if isinstance(event, EntityOperationSignaled):
        return f"signal_entity({event.entity_id!r}, {event.name!r})"
    if isinstance(event, EntityLockRequested):
        return f"lock_entities({', '.join(map(repr, event.entity_ids))})"
    if isinstance(event, EntityUnlockSent):
        return f"unlock({', '.join(map(repr, event.entity_ids))})"
    return type(event).__name__


@dataclass
class _OpenTask:
    """A scheduled task waiting for its completion event."""

    kind: type[HistoryEvent]  # the scheduling event type
    on_success: Callable[[str | None], None]
    on_failure: Callable[[FailureDetails], None]
    held: bool = False  # its completion arrived while suspended and awaits resume


class OrchestrationRun:
    """One execution of an orchestrator, driven by history events."""

    def __init__(self, app: App, instance_id: str, converter: DataConverter) -> None:
        self.app = app
        self.instance_id = instance_id
        self.converter = converter
        self.ctx = OrchestrationContext(self)
        self.history: list[HistoryEvent] = []
        self.name = ""
        self.execution_id = ""
        self.version: str | None = None
        self.tags: dict[str, str] | None = None
        #: Version for sub-orchestrations when neither the call nor this instance has one.
        self.default_version: str | None = None
        self.input: str | None = None
        self.parent: ParentInstance | None = None
        #: The W3C traceparent its ExecutionStarted carried (OpenTelemetry), passed on to the
        #: sub-orchestrations it starts and the execution it continues as.
        self.trace_context: str | None = None
        self.status = OrchestrationStatus.PENDING
        self.custom_status: str | None = None
        self.output: str | None = None
        self.failure: FailureDetails | None = None
        self.current_time = datetime.min.replace(tzinfo=UTC)
        self.is_replaying = False
        self.started = False
        self.ended: ExecutionCompleted | ContinueAsNew | None = None
        self.end_recorded = False
        self._generator: Generator[Any, Any, Any] | None = None
        self._waiting_on: Task[Any] | None = None
        self._sequence = 0
        self._uuid_counter = 0
        self._pending: dict[int, SchedulingEvent] = {}
        self._open: dict[int, _OpenTask] = {}
        self._sub_orchestrations: dict[int, str] = {}
        self._event_waiters: dict[str, deque[CompletableTask[Any]]] = {}
        self._event_buffer: dict[str, deque[EventRaised]] = {}
        self._suspended = False
        self._held: list[HistoryEvent] = []
        self._continue_as_new: tuple[str | None, bool] | None = None
        self._terminate_children: list[str] = []
        self._held_locks: EntityLockRequested | None = None
        self._carried_over: list[HistoryEvent] = []
        self._closing = False
        #: The divergence that :meth:`replay` found between the code and the history, if any.
        self.divergence: NonDeterminismError | None = None
        #: ``is_patched`` answers given in this execution, by patch name.
        self._patches: dict[str, bool] = {}
        #: Patches recorded in the history up to the end of the step being replayed.
        self._recorded_patches: frozenset[str] = frozenset()
        #: Patches first answered true in the current step (recorded at its end).
        self._new_patches: list[str] = []
        self._refusal: Exception | None = None
        #: The execution as the sender of its actions (see :meth:`_origin`).
        self._sender: Origin | None = None

    # -- replay ---------------------------------------------------------------------------
    @property
    def open_tasks(self) -> int:
        """How many scheduled tasks (activities, timers, sub-orchestrations, entity calls)
        await their completion event."""
        return len(self._open)

    def replay(self, history: Sequence[HistoryEvent]) -> None:
        """Re-run the code against ``history`` (a committed history of this execution)."""
        step_times: list[datetime | None] = [None] * len(history)
        step_ends: list[int] = [len(history)] * len(history)
        upcoming: datetime | None = None
        end = len(history)
        for i in range(len(history) - 1, -1, -1):
            event = history[i]
            if isinstance(event, OrchestratorStarted):
                upcoming = event.timestamp
            elif isinstance(event, OrchestratorCompleted):
                end = i
            step_times[i] = upcoming
            step_ends[i] = end
        patches_until = _patches_until(history)
        self.is_replaying = True
        try:
            for index, (event, step_time) in enumerate(zip(history, step_times, strict=True)):
                self._recorded_patches = patches_until[step_ends[index]]
                if isinstance(event, OrchestratorStarted):
                    self.current_time = event.timestamp
                elif isinstance(event, SCHEDULING_EVENTS):
                    self._match_recorded(event)
                elif isinstance(event, OrchestratorCompleted):
                    self._check_step_complete()
                elif isinstance(event, ExecutionCompleted | ContinueAsNew):
                    self.ended = event
                    self.end_recorded = True
                    self.status = (
                        event.status
                        if isinstance(event, ExecutionCompleted)
                        else OrchestrationStatus.CONTINUED_AS_NEW
                    )
                else:
                    if step_time is not None:
                        self.current_time = step_time
                    self._apply(event)
        except NonDeterminismError as exc:
            self.divergence = exc
            if not self._failed_by_code():
                self._fail(exc)  # else the code's own exception is the cause: keep it
            self._pending.clear()
        finally:
            self.is_replaying = False
        self.history = list(history)

    def _match_recorded(self, event: SchedulingEvent) -> None:
        action = self._pending.pop(event.task_id, None)
        if action is None:
            raise NonDeterminismError(
                f"Orchestration '{self.instance_id}' history has {describe(event)} as task "
                f"{event.task_id}, but the orchestrator code no longer schedules it"
            )
        if type(action) is not type(event) or _identity(action) != _identity(event):
            raise NonDeterminismError(
                f"Orchestration '{self.instance_id}': task {event.task_id} was "
                f"{describe(event)} in history, but the orchestrator code now does "
                f"{describe(action)}"
            )

    def _check_step_complete(self) -> None:
        if self._pending and self.ended is None:
            first = self._pending[min(self._pending)]
            raise NonDeterminismError(
                f"Orchestration '{self.instance_id}': the orchestrator code now does "
                f"{describe(first)} as task {first.task_id}, which its history doesn't have"
            )

    # -- a new step -----------------------------------------------------------------------
    def step(self, events: Sequence[HistoryEvent], now: datetime) -> StepResult:
        """Apply newly received ``events`` at time ``now`` and return what to persist.

        Events that are duplicates or no longer apply are dropped. If nothing applies the
        result is empty (nothing to write).
        """
        result = StepResult()
        self.is_replaying = False
        self.current_time = max(now, self.current_time)
        # Replay itself failed (the code no longer matches its history): the events that
        # brought this step are still recorded, before the failure, but not applied.
        failed_in_replay = self.ended is not None and not self.end_recorded
        for event in _start_first(events):
            if failed_in_replay:
                if self._accepts(event):
                    result.new_events.append(event)
                continue
            if self.ended is not None:
                if isinstance(self.ended, ContinueAsNew) and isinstance(event, _INSTANCE_EVENTS):
                    self._carried_over.append(event)  # for the next execution
                continue
            if not self._accepts(event):
                continue
            result.new_events.append(event)
            try:
                self._apply(event)
            except NonDeterminismError as exc:
                self._fail(exc)
        must_record_end = self.ended is not None and not self.end_recorded
        if not result.new_events and not self._pending and not must_record_end:
            return result
        result.new_events.append(OrchestratorStarted(timestamp=self.current_time))
        if self._pending:
            origin = self._origin()
            for task_id in sorted(self._pending):
                action = self._pending[task_id]
                result.new_events.append(action)
                outbound(action, origin, result)
            self._pending.clear()
        patches = None
        if self._new_patches:
            patches = tuple(self._new_patches)
            self._new_patches.clear()
        result.new_events.append(
            OrchestratorCompleted(timestamp=self.current_time, patches=patches)
        )
        if self.ended is not None and not self.end_recorded:
            self.end_recorded = True
            if self.ended.timestamp < self.current_time:  # decided in replay: record it now
                self.ended = dataclasses.replace(self.ended, timestamp=self.current_time)
            result.new_events.append(self.ended)
            result.messages.extend(ending_messages(self._origin(), self._ending(self.ended)))
        self.history.extend(result.new_events)
        return result

    def _accepts(self, event: HistoryEvent) -> bool:
        if isinstance(event, ExecutionStarted):
            return not self.started
        if not self.started:
            return False
        if isinstance(event, TaskCompleted | TaskFailed):
            return self._is_open(event.task_scheduled_id, TaskScheduled)
        if isinstance(event, SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed):
            return self._is_open(event.task_scheduled_id, SubOrchestrationInstanceCreated)
        if isinstance(event, TimerFired):
            return self._is_open(event.timer_id, TimerCreated)
        if isinstance(event, EntityOperationCompleted | EntityOperationFailed):
            return self._is_open(event.task_scheduled_id, EntityOperationCalled)
        if isinstance(event, EntityLockGranted):
            return self._is_open(event.task_scheduled_id, EntityLockRequested)
        if isinstance(event, ExecutionSuspended):
            return not self._suspended
        if isinstance(event, ExecutionResumed):
            return self._suspended
        return isinstance(event, EventRaised | ExecutionTerminated | ExecutionRewound)

    def _is_open(self, task_id: int, kind: type[HistoryEvent]) -> bool:
        entry = self._open.get(task_id)
        return entry is not None and entry.kind is kind and not entry.held

    # -- applying events ------------------------------------------------------------------
    def _apply(self, event: HistoryEvent) -> None:
        if self._suspended and not isinstance(
            event, ExecutionResumed | ExecutionTerminated | ExecutionSuspended
        ):
            self._held.append(event)
            entry = self._open.get(_completed_task_id(event) or -1)
            if entry is not None:
                entry.held = True
            return
        if isinstance(event, ExecutionStarted):
            self._start(event)
        elif isinstance(
            event,
            TaskCompleted | SubOrchestrationInstanceCompleted | EntityOperationCompleted,
        ):
            entry = self._open.pop(event.task_scheduled_id, None)
            if entry is not None:
                entry.on_success(event.result)
        elif isinstance(event, TaskFailed | SubOrchestrationInstanceFailed | EntityOperationFailed):
            entry = self._open.pop(event.task_scheduled_id, None)
            if entry is not None:
                entry.on_failure(event.failure)
        elif isinstance(event, TimerFired | EntityLockGranted):
            task_id = event.timer_id if isinstance(event, TimerFired) else event.task_scheduled_id
            entry = self._open.pop(task_id, None)
            if entry is not None:
                entry.on_success(None)
        elif isinstance(event, EventRaised):
            self._deliver_event(event)
        elif isinstance(event, ExecutionSuspended):
            self._suspended = True
            self.status = OrchestrationStatus.SUSPENDED
        elif isinstance(event, ExecutionResumed):
            self._suspended = False
            self.status = OrchestrationStatus.RUNNING
            held, self._held = self._held, []
            for entry in self._open.values():
                entry.held = False
            for held_event in held:
                if self.ended is None:
                    self._apply(held_event)
        elif isinstance(event, ExecutionTerminated):
            self._terminate(event)
        self._resume()

    def _start(self, event: ExecutionStarted) -> None:
        self.started = True
        self._sender = None  # made again from what the start sets
        self.trace_context = event.trace_context
        self.name = event.name
        self.execution_id = event.execution_id
        self.input = event.input
        self.parent = event.parent
        self.version = event.version
        self.tags = event.tags
        self.status = OrchestrationStatus.RUNNING
        if self._refusal is not None:
            self._fail(self._refusal)
            return
        registration = self.app.orchestrators.get(event.name)
        if registration is None:
            self._fail(
                LookupError(f"No orchestrator named {event.name!r} is registered with this worker")
            )
            return
        try:
            value = self.converter.loads(event.input, registration.input_type)
            result = registration.fn(self.ctx, value)
        except BaseException as exc:  # noqa: BLE001 - user code never stops the worker's thread
            self._fail(exc)
            return
        if inspect.isgenerator(result):
            self._generator = result
            self._advance(result.send, None)
        else:
            self._finish(result)

    def _resume(self) -> None:
        while (
            self.ended is None
            and self._generator is not None
            and self._waiting_on is not None
            and self._waiting_on._complete
        ):
            task, gen = self._waiting_on, self._generator
            self._waiting_on = None
            if task._exception is not None:
                self._advance(gen.throw, task._exception)
            else:
                self._advance(gen.send, task._result)

    def _advance(self, resume: Callable[[Any], Any], value: Any) -> None:
        try:
            yielded = resume(value)
        except StopIteration as stop:
            self._finish(stop.value)
            return
        except NonDeterminismError:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code never stops the worker's thread
            self._fail(exc)
            return
        if self._continue_as_new is not None:
            self._finish(None)
            return
        if not isinstance(yielded, Task):
            self._fail(
                TypeError(
                    "Orchestrators must yield tasks (from ctx.call_activity, ctx.create_timer, "
                    f"when_all, ...), not {type(yielded).__name__}"
                )
            )
            return
        self._waiting_on = yielded

    def _close_generator(self) -> None:
        gen, self._generator = self._generator, None
        self._waiting_on = None
        if gen is not None:
            # Code run by close() (finally blocks, `with` exits) must not schedule anything;
            # locks still held are released by the ending's messages.
            self._closing = True
            try:
                gen.close()
            except BaseException:  # noqa: BLE001 - code after termination is not ours to run
                pass

    def _finish(self, value: Any) -> None:
        if self._continue_as_new is not None:
            new_input, _ = self._continue_as_new
            self._close_generator()
            self.status = OrchestrationStatus.CONTINUED_AS_NEW
            self.ended = ContinueAsNew(
                timestamp=self.current_time,
                input=new_input,
                new_execution_id=continued_execution_id(self.instance_id, self.execution_id),
            )
            return
        try:
            output = self.converter.dumps(value)
        except SerializationError as exc:
            self._fail(exc)
            return
        self._close_generator()
        self.output = output
        self.status = OrchestrationStatus.COMPLETED
        self.ended = ExecutionCompleted(
            timestamp=self.current_time, status=OrchestrationStatus.COMPLETED, result=output
        )

    def _failed_by_code(self) -> bool:
        """Whether the code raised in this replay (its end not recorded in the history yet)."""
        return (
            self.ended is not None
            and not self.end_recorded
            and self.status is OrchestrationStatus.FAILED
            and self.failure is not None
            and self.failure.error_type != NonDeterminismError.__name__
        )

    def _fail(self, exc: BaseException) -> None:
        self._close_generator()
        self.failure = _with_yield_hint(FailureDetails.from_exception(exc))
        self.status = OrchestrationStatus.FAILED
        self.ended = ExecutionCompleted(
            timestamp=self.current_time, status=OrchestrationStatus.FAILED, failure=self.failure
        )

    def fail(self, exc: Exception) -> None:
        """Fail this execution with ``exc`` instead of running more of its code (at its start,
        if it has not started yet); the next step records the failure."""
        if self.ended is not None:
            return
        if self.started:
            self._fail(exc)
        else:
            self._refusal = exc

    def is_patched(self, name: str) -> bool:
        """True if this execution takes the patched path named ``name`` (see the context)."""
        decided = self._patches.get(name)
        if decided is None:
            if self.is_replaying:
                decided = name in self._recorded_patches
            else:
                decided = True
                self._new_patches.append(name)
            self._patches[name] = decided
        return decided

    def _terminate(self, event: ExecutionTerminated) -> None:
        self._close_generator()
        self._pending.clear()
        if event.recursive:
            self._terminate_children = [
                self._sub_orchestrations[task_id]
                for task_id, entry in self._open.items()
                if entry.kind is SubOrchestrationInstanceCreated
            ]
        self.output = event.output
        self.status = OrchestrationStatus.TERMINATED
        self.ended = ExecutionCompleted(
            timestamp=self.current_time, status=OrchestrationStatus.TERMINATED, result=event.output
        )

    def _deliver_event(self, event: EventRaised) -> None:
        key = event.name.casefold()
        waiters = self._event_waiters.get(key)
        if waiters:
            waiter = waiters.popleft()
            self._complete_with_payload(waiter, event.input, None)
        else:
            self._event_buffer.setdefault(key, deque()).append(event)

    def _complete_with_payload(
        self, task: CompletableTask[Any], payload: str | None, hint: Any
    ) -> None:
        try:
            value = self.converter.loads(payload, hint)
        except SerializationError as exc:
            task._set_exception(exc)
            return
        task._set_result(value)

    # -- scheduling (called through OrchestrationContext) ---------------------------------
    def _next_task_id(self) -> int:
        task_id = self._sequence
        self._sequence += 1
        return task_id

    def _encode(self, value: Any, what: str) -> str | None:
        try:
            return self.converter.dumps(value)
        except SerializationError as exc:
            raise SerializationError(f"The input of {what} cannot be serialized: {exc}") from None

    def call_activity(
        self,
        activity: Callable[..., Any] | str,
        input: Any,
        retry_policy: RetryPolicy | None,
        return_type: Any = None,
    ) -> Task[Any]:
        name = name_of(activity)
        payload = self._encode(input, f"activity {name!r}")
        hint = return_type or self.app.output_type_of_activity(activity, name)

        def schedule() -> Task[Any]:
            task_id = self._next_task_id()
            self._pending[task_id] = TaskScheduled(
                timestamp=self.current_time, task_id=task_id, name=name, input=payload
            )
            return self._open_task(task_id, TaskScheduled, hint, f"Activity {name!r}")

        if retry_policy is None:
            return schedule()
        return RetryingTask(self, schedule, retry_policy)

    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., Any] | str,
        input: Any,
        instance_id: str | None,
        retry_policy: RetryPolicy | None,
        version: str | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        from ostinato.ids import validate_instance_id

        name = name_of(orchestrator)
        child_version = version or self.version or self.default_version
        payload = self._encode(input, f"sub-orchestration {name!r}")
        hint = return_type or self.app.output_type_of_orchestrator(orchestrator, name)
        if instance_id is not None:
            validate_instance_id(instance_id)

        def schedule() -> Task[Any]:
            task_id = self._next_task_id()
            child_id = instance_id or str(
                uuid.uuid5(
                    UUID_NAMESPACE, f"{self.instance_id}\x1f{self.execution_id}\x1f{task_id}"
                )
            )
            self._pending[task_id] = SubOrchestrationInstanceCreated(
                timestamp=self.current_time,
                task_id=task_id,
                name=name,
                instance_id=child_id,
                input=payload,
                version=child_version,
            )
            self._sub_orchestrations[task_id] = child_id
            return self._open_task(
                task_id, SubOrchestrationInstanceCreated, hint, f"Sub-orchestration {name!r}"
            )

        if retry_policy is None:
            return schedule()
        return RetryingTask(self, schedule, retry_policy)

    def _open_task(
        self, task_id: int, kind: type[HistoryEvent], hint: Any, label: str
    ) -> CompletableTask[Any]:
        task: CompletableTask[Any] = CompletableTask()

        def on_failure(details: FailureDetails) -> None:
            task._set_exception(failed_error(label, details))

        self._open[task_id] = _OpenTask(
            kind=kind,
            on_success=lambda payload: self._complete_with_payload(task, payload, hint),
            on_failure=on_failure,
        )
        return task

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]:
        if isinstance(fire_at, timedelta):
            fire_at = self.current_time + fire_at
        elif fire_at.tzinfo is None:
            raise ValueError("create_timer needs an aware datetime (e.g. with tzinfo=timezone.utc)")
        task_id = self._next_task_id()
        self._pending[task_id] = TimerCreated(
            timestamp=self.current_time, task_id=task_id, fire_at=fire_at
        )
        return self._open_task(task_id, TimerCreated, None, "Timer")

    def wait_for_external_event(self, name: str) -> CompletableTask[Any]:
        key = name.casefold()
        task: CompletableTask[Any] = CompletableTask()
        buffered = self._event_buffer.get(key)
        if buffered:
            self._complete_with_payload(task, buffered.popleft().input, None)
        else:
            self._event_waiters.setdefault(key, deque()).append(task)
        return task

    # -- entities and HTTP ----------------------------------------------------------------
    def call_entity(self, entity: EntityId | str, operation: str, input: Any) -> Task[Any]:
        entity_id = as_entity_id(entity)
        payload = self._encode(input, f"entity operation {operation!r}")
        hint = None
        registration = self.app.entities.get(entity_id.name)
        if registration is not None:
            hint = registration.output_type
        task_id = self._next_task_id()
        self._pending[task_id] = EntityOperationCalled(
            timestamp=self.current_time,
            task_id=task_id,
            entity_id=entity_id.instance_id,
            name=operation,
            input=payload,
        )
        return self._open_task(
            task_id, EntityOperationCalled, hint, f"Entity operation {entity_id}.{operation}"
        )

    def signal_entity(
        self,
        entity: EntityId | str,
        operation: str,
        input: Any,
        scheduled_time: datetime | None = None,
    ) -> None:
        entity_id = as_entity_id(entity)
        payload = self._encode(input, f"entity operation {operation!r}")
        task_id = self._next_task_id()
        self._pending[task_id] = EntityOperationSignaled(
            timestamp=self.current_time,
            task_id=task_id,
            entity_id=entity_id.instance_id,
            name=operation,
            input=payload,
            scheduled_at=scheduled_time,
        )

    def lock_entities(self, entities: Sequence[EntityId | str]) -> Task[EntityLock]:
        if self._held_locks is not None:
            raise RuntimeError("lock_entities cannot be nested: this orchestration holds locks")
        if not entities:
            raise ValueError("lock_entities needs at least one entity")
        ids = tuple(sorted({as_entity_id(e).instance_id for e in entities}))
        task_id = self._next_task_id()
        request = EntityLockRequested(
            timestamp=self.current_time,
            task_id=task_id,
            entity_ids=ids,
            critical_section_id=self.new_uuid(),
        )
        self._pending[task_id] = request
        task: CompletableTask[EntityLock] = CompletableTask()

        def granted(_: str | None) -> None:
            self._held_locks = request
            task._set_result(EntityLock(request.entity_ids, lambda: self.release_locks(request)))

        def refused(details: FailureDetails) -> None:  # pragma: no cover - entities never refuse
            task._set_exception(failed_error("lock_entities", details))

        self._open[task_id] = _OpenTask(EntityLockRequested, granted, refused)
        return task

    def release_locks(self, request: EntityLockRequested) -> None:
        if self._held_locks is not request or self.ended is not None or self._closing:
            return
        self._held_locks = None
        task_id = self._next_task_id()
        self._pending[task_id] = EntityUnlockSent(
            timestamp=self.current_time,
            task_id=task_id,
            entity_ids=request.entity_ids,
            critical_section_id=request.critical_section_id,
        )

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
    ) -> Task[HttpResponse]:
        if content is not None and not isinstance(content, str):
            content = self.converter.dumps(content)
            headers = {"Content-Type": "application/json", **(headers or {})}
        request = HttpRequest(
            method=method.upper(),
            url=url,
            content=content,
            headers=dict(headers or {}),
            timeout=timeout,
            token_source=token_source,
        )
        return HttpTask(self, request, retry_policy, asynchronous_patterns, poll_interval)

    def send_event(self, instance_id: str, name: str, data: Any) -> None:
        from ostinato.ids import validate_instance_id

        validate_instance_id(instance_id)
        payload = self._encode(data, f"event {name!r}")
        task_id = self._next_task_id()
        self._pending[task_id] = EventSent(
            timestamp=self.current_time,
            task_id=task_id,
            instance_id=instance_id,
            name=name,
            input=payload,
        )

    def continue_as_new(self, new_input: Any, save_events: bool) -> None:
        self._continue_as_new = (self._encode(new_input, "continue_as_new"), save_events)

    def set_custom_status(self, value: Any) -> None:
        self.custom_status = self._encode(value, "set_custom_status")

    def new_uuid(self) -> str:
        self._uuid_counter += 1
        name = f"{self.instance_id}_{self.current_time.isoformat()}_{self._uuid_counter}"
        return str(uuid.uuid5(UUID_NAMESPACE, name))

    # -- outbound actions ------------------------------------------------------------------
    def _origin(self) -> Origin:
        """The execution as the sender of its actions, at the step's time: made once, as
        everything in it but the time is set by the start, which the next steps reuse."""
        origin = self._sender
        if origin is not None:
            origin.time = self.current_time
            return origin
        self._sender = origin = Origin(
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            name=self.name,
            parent=self.parent,
            time=self.current_time,
            version=self.version,
            tags=self.tags,
            trace_context=self.trace_context,
        )
        return origin

    def _ending(self, ended: ExecutionCompleted | ContinueAsNew) -> Ending:
        held, self._held_locks = self._held_locks, None
        save_events = self._continue_as_new is not None and self._continue_as_new[1]
        buffered = (
            [e for events in self._event_buffer.values() for e in events] if save_events else []
        )
        return Ending(
            ended=ended,
            output=self.output,
            held_locks=held,
            terminate_children=self._terminate_children,
            carried_over=self._carried_over,
            buffered_events=buffered,
        )


#: Names of the task types, as they appear in the messages of errors about using one as a value.
_TASK_TYPE_NAMES = ("Task", "CompletableTask", "WhenAllTask", "WhenAnyTask", "CompositeTask")
YIELD_HINT = (
    "hint: a task was used as a value; did you forget `yield`? Write "
    "`result = yield ctx.call_activity(...)`"
)


def _with_yield_hint(details: FailureDetails) -> FailureDetails:
    """``details`` with :data:`YIELD_HINT` added when the error is about a task used as a value
    (returned, serialized, added to, subscripted...) instead of being yielded."""
    if details.error_type not in ("TypeError", "AttributeError", "SerializationError"):
        return details
    if not any(
        f"'{name}'" in details.message or f"type {name} " in details.message
        for name in _TASK_TYPE_NAMES
    ):
        return details
    return dataclasses.replace(details, message=f"{details.message} ({YIELD_HINT})")


def _patches_until(history: Sequence[HistoryEvent]) -> list[frozenset[str]]:
    """For each index ``i`` (and ``len(history)``): the patches recorded by the
    ``OrchestratorCompleted`` events at indexes up to ``i``."""
    found: set[str] = set()
    until: list[frozenset[str]] = []
    current: frozenset[str] = frozenset()
    for event in history:
        if isinstance(event, OrchestratorCompleted) and event.patches:
            found.update(event.patches)
            current = frozenset(found)
        until.append(current)
    until.append(current)
    return until


def _identity(event: HistoryEvent) -> tuple[Any, ...]:
    """What must match between a recorded scheduling event and the code's action."""
    return (getattr(event, "name", None), getattr(event, "entity_id", None))


def _completed_task_id(event: HistoryEvent) -> int | None:
    if isinstance(
        event,
        TaskCompleted
        | TaskFailed
        | SubOrchestrationInstanceCompleted
        | SubOrchestrationInstanceFailed
        | EntityOperationCompleted
        | EntityOperationFailed
        | EntityLockGranted,
    ):
        return event.task_scheduled_id
    if isinstance(event, TimerFired):
        return event.timer_id
    return None


#: Events addressed to the instance rather than to one execution of it.
_INSTANCE_EVENTS = (EventRaised, ExecutionTerminated, ExecutionSuspended, ExecutionResumed)


def _start_first(events: Sequence[HistoryEvent]) -> Sequence[HistoryEvent]:
    """``ExecutionStarted`` events first, the rest in arrival order."""
    if len(events) < 2:  # in order already (a step's usual case: one message)
        return events
    starts = [e for e in events if isinstance(e, ExecutionStarted)]
    if not starts:
        return list(events)
    return starts + [e for e in events if not isinstance(e, ExecutionStarted)]


__all__ = [
    "UUID_NAMESPACE",
    "OrchestrationRun",
    "describe",
]
