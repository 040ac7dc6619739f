"""Turns an orchestration work item into a checkpoint: the core's side of a step.

This is where the core applies its delivery rules, so providers need only at-least-once
delivery:

* ``ExecutionStarted`` is applied first; a duplicate start (same execution, or an instance
  that is already running another execution) is dropped;
* messages addressed to another execution than the current one are dropped;
* a finished instance never runs again: messages for it are consumed and dropped;
* messages for an instance whose start is not visible yet (``start_at``, or the next
  execution's start after ``continue_as_new`` on a store that writes the two separately) are
  deferred.

It also owns the run cache: runs of busy instances are kept between steps (bounded, least
recently used first out) so a new event costs one step, not a replay of the whole history.
A run is taken out of the cache while a step is in flight and put back only after the
checkpoint committed, so a lost lock or failed commit can never leave a stale run behind.

A provider may make a checkpoint visible, and so unlock its instance, a moment before the
call that commits it returns (SQLite's group commit syncs after releasing the write lock).
Another worker thread can then lock the instance's next message while the run is still out
of the cache. Such a step waits (briefly, :data:`HANDOFF_WAIT` at most) for the step in
flight to be committed or dropped, and so finds the run in the cache instead of replaying
the whole history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ostinato.converter import DataConverter
from ostinato.errors import FailureDetails, SerializationError
from ostinato.history import (
    ExecutionRewound,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
)
from ostinato.orchestration.actions import continued_execution_id
from ostinato.orchestration.app import App
from ostinato.orchestration.engine import OrchestrationRun
from ostinato.orchestration.entities import EntityProcessor, is_entity_instance
from ostinato.orchestration.rewind import plan_rewind
from ostinato.provider import (
    ActivityTask,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    StorageProvider,
)
from ostinato.runtime import telemetry
from ostinato.runtime.ending import starts_new_execution
from ostinato.status import OrchestrationStatus
from ostinato.versioning import VersionFailure, VersioningOptions

#: How long messages for a not-yet-started instance wait before they are looked at again.
DEFER_DELAY = timedelta(seconds=1)
#: Seconds a step waits for another thread's step of the same instance to be committed or
#: dropped before it replays the history instead.
HANDOFF_WAIT = 1.0


class CorruptHistory(Exception):
    """The instance's stored history cannot be decoded (the message says why)."""


@dataclass
class ProcessedStep:
    """An orchestration step processed and not yet committed: its work item, the checkpoint
    to commit, and the run to cache if the commit succeeds."""

    item: OrchestrationWorkItem
    checkpoint: OrchestrationCheckpoint
    run: OrchestrationRun | None
    #: While the step is in flight: the thread that processed it (see the module doc).
    thread: int | None = None
    #: Called once the checkpoint committed (telemetry: the spans and counts of the step).
    on_commit: Callable[[], None] | None = None


class RunCache:
    """A bounded LRU map of instance id to its live run and the instance record its last
    step committed (not locked itself: the processor uses it under its own lock)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._runs: OrderedDict[str, tuple[OrchestrationRun, InstanceRecord | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def take(self, record: InstanceRecord | None) -> OrchestrationRun | None:
        """Remove and return the cached run for ``record`` if it is still current."""
        if record is None:
            return None
        run, _ = self._runs.pop(record.instance_id, (None, None))
        if (
            run is not None
            and run.execution_id == record.execution_id
            and len(run.history) == record.history_size
        ):
            self.hits += 1
            return run
        self.misses += 1
        return None

    def peek(self, instance_id: str) -> tuple[OrchestrationRun, InstanceRecord | None] | None:
        """The cached run of ``instance_id`` and the record its last step committed (``None``
        if not known), left in the cache; ``None`` if none is cached."""
        return self._runs.get(instance_id)

    def put(self, run: OrchestrationRun, record: InstanceRecord | None = None) -> None:
        if self.max_size <= 0:
            return
        self._runs[run.instance_id] = (run, record)
        self._runs.move_to_end(run.instance_id)
        while len(self._runs) > self.max_size:
            self._runs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._runs)


class OrchestrationProcessor:
    """Runs orchestration steps for one app against one provider."""

    def __init__(
        self,
        app: App,
        provider: StorageProvider,
        converter: DataConverter,
        cache_size: int,
        versioning: VersioningOptions | None = None,
    ) -> None:
        self.app = app
        self.versioning = versioning
        self.provider = provider
        self.converter = converter
        self.cache = RunCache(cache_size)
        self.entities = EntityProcessor(app, converter)
        #: Steps in flight (processed, not yet committed or dropped) by instance id.
        self._in_flight: dict[str, ProcessedStep] = {}
        #: Guards ``_in_flight`` and ``cache``; notified when a step that another thread waits
        #: for settles.
        self._settled_lock = threading.Lock()  # entered directly: a C call, no Python call
        self._settled = threading.Condition(self._settled_lock)
        self._waiters = 0

    def process(self, item: OrchestrationWorkItem) -> ProcessedStep:
        """Compute the checkpoint for ``item`` (reads history only on a cache miss).

        Report the step's fate with :meth:`committed` or :meth:`dropped`.
        """
        return self._in_flight_now(self._process(item))

    def _in_flight_now(self, step: ProcessedStep) -> ProcessedStep:
        """Note ``step`` as in flight (if it has a run) until it is committed or dropped."""
        if step.run is not None:
            step.thread = threading.get_ident()
            with self._settled_lock:
                self._in_flight[step.item.instance_id] = step
        return step

    def speculate(self, result: OrchestrationMessage) -> ProcessedStep | None:
        """The step an activity ``result`` brings its instance, computed from the cached run
        while no one holds the instance (its checkpoint stands only if the stored record is
        still the cached one: see :class:`~ostinato.provider.ResultStep`); ``None`` if no
        run of the instance is cached, a step of it is in flight, or the run awaits other
        tasks too (a fan-in: one step takes its results together, once they wait).

        ``step.item`` stands in for a work item: it holds no lock and is never completed
        or abandoned. Report the step's fate with :meth:`committed` or :meth:`dropped`.
        """
        instance_id = result.instance_id
        with self._settled_lock:
            record = self._speculable(instance_id)
            run = self.cache.take(record) if record is not None else None
        if run is None or record is None:
            return None
        item = OrchestrationWorkItem(
            instance_id=instance_id,
            messages=[result],
            instance=record,
            lock_token="",
            locked_until=record.last_updated_at,
        )
        return self._in_flight_now(self._process(item, run))

    def may_speculate(self, instance_id: str) -> bool:
        """Whether :meth:`speculate` would compute a step for a result of ``instance_id``
        now (it may still not, should another thread take the run meanwhile)."""
        with self._settled_lock:
            return self._speculable(instance_id) is not None

    def _speculable(self, instance_id: str) -> InstanceRecord | None:
        """The record to compute a step of ``instance_id`` from without a lock, if one may
        be (call with the settled lock)."""
        if instance_id in self._in_flight or is_entity_instance(instance_id):
            return None
        cached = self.cache.peek(instance_id)
        if cached is None or cached[0].open_tasks != 1:
            return None
        record = cached[1]
        if record is None or record.runtime_status.is_terminal:
            return None
        return record

    def committed(self, step: ProcessedStep) -> None:
        """Record that ``step``'s checkpoint is durable: its run may be cached."""
        self._settle(step, step.run, step.checkpoint.instance or step.item.instance)
        if step.on_commit is not None:
            step.on_commit()

    def dropped(self, step: ProcessedStep) -> None:
        """Record that ``step`` was not committed (lock lost, commit failed): its run is gone."""
        self._settle(step, None)

    def _settle(
        self,
        step: ProcessedStep,
        run: OrchestrationRun | None,
        record: InstanceRecord | None = None,
    ) -> None:
        """``step`` is no longer in flight; ``run`` (if any) goes into the cache, with the
        ``record`` its step committed."""
        if step.thread is None and run is None:
            return  # a step without a run was never in flight
        with self._settled_lock:
            if run is not None:
                self.cache.put(run, record)
            if step.thread is not None:
                step.thread = None
                if self._in_flight.get(step.item.instance_id) is step:
                    del self._in_flight[step.item.instance_id]
                if self._waiters:
                    self._settled.notify_all()

    def _cached_run(self, record: InstanceRecord) -> OrchestrationRun | None:
        """The cached run of ``record``'s instance, if still current, once another thread's
        step of the instance is committed or dropped (waiting :data:`HANDOFF_WAIT` at most)."""
        with self._settled_lock:
            step = self._in_flight.get(record.instance_id)
            if step is not None and step.thread != threading.get_ident():
                self._waiters += 1
                try:
                    self._settled.wait_for(lambda: step.thread is None, HANDOFF_WAIT)
                finally:
                    self._waiters -= 1
            return self.cache.take(record)

    def _process(
        self, item: OrchestrationWorkItem, cached: OrchestrationRun | None = None
    ) -> ProcessedStep:
        if is_entity_instance(item.instance_id):
            checkpoint = self.entities.process(item.instance_id, item.instance, item.messages)
            return ProcessedStep(item, checkpoint, None)
        now = self.provider.now()
        record = item.instance
        messages = item.messages
        starts = [m for m in messages if isinstance(m.event, ExecutionStarted)]
        others = (
            [m for m in messages if not isinstance(m.event, ExecutionStarted)]
            if starts
            else messages
        )
        replies: list[OrchestrationMessage] = []

        start: ExecutionStarted | None = None
        for message in starts:
            event = message.event
            assert isinstance(event, ExecutionStarted)
            continues = _continues(item.instance_id, record, event)
            if self._same_call(item.instance_id, record, event):
                assert record is not None and event.parent is not None
                replies.extend(_outcome_for_parent(record, event.parent))
            elif continues and record is not None and not record.runtime_status.is_terminal:
                # The next execution's start, sent before the step that continues as new was
                # committed (a non-transactional store writes its messages first): it waits.
                replies.extend(_deferred([message], now))
            elif continues:
                pass  # the execution it continues ended otherwise (terminated meanwhile)
            elif start is None and starts_new_execution(record, event):
                start = event
            else:
                replies.extend(_refuse_start(item.instance_id, record, event))

        if start is not None:
            run = OrchestrationRun(self.app, item.instance_id, self.converter)
            reset = record is not None and (
                record.history_size > 0 or record.execution_id != start.execution_id
            )
            execution_id = start.execution_id
            events: list[HistoryEvent] = [start] + [
                m.event for m in others if m.execution_id in (None, execution_id)
            ]
            created_at = record.created_at if record is not None else now
        elif _rewinds(record, others):
            assert record is not None
            return self._rewind(item, record, others, replies, now)
        elif record is None or record.runtime_status.is_terminal:
            return ProcessedStep(
                item, OrchestrationCheckpoint(instance=None, messages=replies), None
            )
        elif record.history_size == 0:
            return ProcessedStep(item, self._not_started(record, others, replies, now), None)
        elif record.runtime_status is OrchestrationStatus.CONTINUED_AS_NEW:
            # The next execution's start is not visible yet (a store that commits the record
            # and the new start separately): keep the messages for it, drop the old one's.
            kept = [m for m in others if m.execution_id != record.execution_id]
            return ProcessedStep(
                item,
                OrchestrationCheckpoint(instance=None, messages=_deferred(kept, now) + replies),
                None,
            )
        else:
            run = cached or self._cached_run(record) or self._rebuild(item, record)
            reset = False
            execution_id = record.execution_id
            events = [m.event for m in others if m.execution_id in (None, execution_id)]
            created_at = record.created_at

        if self.versioning is not None:
            self._check_version(item.instance_id, run, start)
        observer = telemetry.current()
        if observer.enabled:
            trace_context = start.trace_context if start is not None else run.trace_context
            with observer.step_context(trace_context):
                result = run.step(events, now)
        else:  # no telemetry: not even a do-nothing context per step
            result = run.step(events, now)
        if not result.new_events:
            return ProcessedStep(
                item, OrchestrationCheckpoint(instance=None, messages=replies), run
            )
        checkpoint = OrchestrationCheckpoint(
            instance=self._record(item.instance_id, run, created_at, now),
            new_history=result.new_events,
            reset_history=reset,
            activity_tasks=result.activity_tasks,
            messages=result.messages + replies,
        )
        on_commit = (
            observer.step_finished(
                item.instance_id, run.name, run.trace_context, run.history, result.new_events
            )
            if observer.enabled
            else None
        )
        return ProcessedStep(
            item, checkpoint, None if run.ended is not None else run, on_commit=on_commit
        )

    def _same_call(
        self, instance_id: str, record: InstanceRecord | None, start: ExecutionStarted
    ) -> bool:
        """Whether ``start`` is a duplicate from the parent call that started this instance's
        current chain of executions, which has continued as new since.

        A retried parent step sends the child's start again (same derived execution id); by
        then the child may run a later execution of it, which keeps the parent. Only a start
        from another call (another parent, execution or task) runs the child again.
        """
        parent = start.parent
        if (
            parent is None
            or record is None
            or record.execution_id == start.execution_id
            or record.parent_instance_id != parent.instance_id
            or record.history_size == 0
        ):
            return False
        if record.runtime_status is OrchestrationStatus.CONTINUED_AS_NEW and (
            start.execution_id == continued_execution_id(instance_id, record.execution_id)
        ):
            return False  # the next execution of the chain itself
        try:
            events = self.provider.get_history(instance_id)
        except SerializationError:
            return False  # a corrupt history is dealt with when the instance runs
        first = next((e for e in events if isinstance(e, ExecutionStarted)), None)
        if first is None or first.parent is None:
            return False
        ours = first.parent
        return (ours.instance_id, ours.execution_id, ours.task_id) == (
            parent.instance_id,
            parent.execution_id,
            parent.task_id,
        )

    @staticmethod
    def _record(
        instance_id: str, run: OrchestrationRun, created_at: datetime, now: datetime
    ) -> InstanceRecord:
        """The instance record after a step of ``run``."""
        return InstanceRecord(
            instance_id=instance_id,
            name=run.name,
            execution_id=run.execution_id,
            runtime_status=run.status,
            created_at=created_at,
            last_updated_at=now,
            input=run.input,
            output=run.output,
            custom_status=run.custom_status,
            failure_details=run.failure,
            parent_instance_id=run.parent.instance_id if run.parent else None,
            history_size=len(run.history),
        )

    def _check_version(
        self, instance_id: str, run: OrchestrationRun, start: ExecutionStarted | None
    ) -> None:
        """Apply the worker's versioning to the step: raise ``VersionMismatchError`` to give the
        work back (``REJECT``), or fail the instance (``FAIL``)."""
        versioning = self.versioning
        assert versioning is not None
        run.default_version = versioning.default_version
        version = start.version if start is not None else run.version
        if versioning.accepts(version):
            return
        error = versioning.mismatch(instance_id, version)
        if versioning.on_mismatch is VersionFailure.REJECT:
            raise error
        run.fail(error)

    def _rewind(
        self,
        item: OrchestrationWorkItem,
        record: InstanceRecord,
        others: list[OrchestrationMessage],
        replies: list[OrchestrationMessage],
        now: datetime,
    ) -> ProcessedStep:
        """Run a FAILED execution again from its last step that did not fail."""
        plan = plan_rewind(self.provider.get_history(item.instance_id))
        rewound = next(m.event for m in others if isinstance(m.event, ExecutionRewound))
        run = OrchestrationRun(self.app, item.instance_id, self.converter)
        run.replay(plan.kept)
        observer = telemetry.current()
        with observer.step_context(run.trace_context):
            result = run.step([*plan.redeliver, rewound], now)
        execution_id = run.execution_id
        rerun = [
            ActivityTask(item.instance_id, execution_id, task.task_id, task.name, task.input)
            for task in plan.rerun
        ]
        children = [
            OrchestrationMessage(instance_id=child, event=ExecutionRewound(reason=rewound.reason))
            for child in plan.children
        ]
        checkpoint = OrchestrationCheckpoint(
            instance=self._record(item.instance_id, run, record.created_at, now),
            new_history=run.history,
            reset_history=True,
            activity_tasks=result.activity_tasks + rerun,
            messages=result.messages + children + replies,
        )
        on_commit = observer.step_finished(
            item.instance_id, run.name, run.trace_context, run.history, result.new_events
        )
        return ProcessedStep(
            item, checkpoint, None if run.ended is not None else run, on_commit=on_commit
        )

    def _rebuild(self, item: OrchestrationWorkItem, record: InstanceRecord) -> OrchestrationRun:
        try:
            history = self.provider.get_history(item.instance_id)
        except SerializationError as exc:
            raise CorruptHistory(str(exc)) from exc
        run = OrchestrationRun(self.app, item.instance_id, self.converter)
        run.replay(history)
        return run

    def _not_started(
        self,
        record: InstanceRecord,
        others: list[OrchestrationMessage],
        replies: list[OrchestrationMessage],
        now: datetime,
    ) -> OrchestrationCheckpoint:
        """Messages for an instance whose start message is not visible yet."""
        terminate = next(
            (m.event for m in others if isinstance(m.event, ExecutionTerminated)), None
        )
        if terminate is not None:
            assert isinstance(terminate, ExecutionTerminated)
            ended = record.with_changes(
                runtime_status=OrchestrationStatus.TERMINATED,
                output=terminate.output,
                last_updated_at=now,
            )
            return OrchestrationCheckpoint(instance=ended, messages=replies)
        return OrchestrationCheckpoint(instance=None, messages=_deferred(others, now) + replies)


def _deferred(messages: list[OrchestrationMessage], now: datetime) -> list[OrchestrationMessage]:
    """``messages`` again, visible :data:`DEFER_DELAY` after ``now``."""
    visible_at = now + DEFER_DELAY
    return [  # new messages (new ids): the originals are consumed with the work item
        OrchestrationMessage(
            instance_id=m.instance_id,
            event=m.event,
            execution_id=m.execution_id,
            visible_at=visible_at,
        )
        for m in messages
    ]


def _continues(instance_id: str, record: InstanceRecord | None, start: ExecutionStarted) -> bool:
    """True if ``start`` begins the execution that ``record``'s current one, not yet marked
    continued as new, would continue as (see :func:`continued_execution_id`)."""
    return (
        record is not None
        and record.runtime_status
        not in (OrchestrationStatus.CONTINUED_AS_NEW, OrchestrationStatus.PENDING)
        and start.execution_id == continued_execution_id(instance_id, record.execution_id)
    )


def _rewinds(record: InstanceRecord | None, messages: list[OrchestrationMessage]) -> bool:
    """True if ``messages`` rewind the FAILED execution ``record`` is of."""
    if record is None or record.runtime_status is not OrchestrationStatus.FAILED:
        return False
    return any(
        isinstance(m.event, ExecutionRewound) and m.execution_id in (None, record.execution_id)
        for m in messages
    )


def _refuse_start(
    instance_id: str, record: InstanceRecord | None, start: ExecutionStarted
) -> list[OrchestrationMessage]:
    """A dropped start: tell a waiting parent, unless it is a plain duplicate.

    A parent derives its child's execution id from (parent instance, execution, task id), so
    a start sent again by a retried parent step is a duplicate of the same execution: while
    that execution runs it will answer the parent itself; once it has ended, its outcome is
    sent to the parent again (the parent drops it if it had it already).
    """
    parent = start.parent
    if parent is None or record is None:
        return []
    if record.execution_id == start.execution_id:
        return _outcome_for_parent(record, parent)
    if record.runtime_status.is_terminal:
        return []
    failure = FailureDetails(
        "InstanceAlreadyExistsError", f"An instance with ID '{instance_id}' already exists."
    )
    return [
        OrchestrationMessage(
            instance_id=parent.instance_id,
            execution_id=parent.execution_id,
            event=SubOrchestrationInstanceFailed(task_scheduled_id=parent.task_id, failure=failure),
        )
    ]


def _outcome_for_parent(
    record: InstanceRecord, parent: ParentInstance
) -> list[OrchestrationMessage]:
    """The ended execution ``record``'s result, for the parent that started it."""
    status = record.runtime_status
    event: HistoryEvent
    if status is OrchestrationStatus.COMPLETED:
        event = SubOrchestrationInstanceCompleted(
            task_scheduled_id=parent.task_id, result=record.output
        )
    elif status in (OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED):
        failure = record.failure_details or FailureDetails(
            "OrchestrationTerminated", f"Orchestration '{record.instance_id}' was terminated"
        )
        event = SubOrchestrationInstanceFailed(task_scheduled_id=parent.task_id, failure=failure)
    else:
        return []  # still running (or continued as new): it answers the parent itself
    return [
        OrchestrationMessage(
            instance_id=parent.instance_id, execution_id=parent.execution_id, event=event
        )
    ]


__all__ = [
    "DEFER_DELAY",
    "HANDOFF_WAIT",
    "CorruptHistory",
    "OrchestrationProcessor",
    "ProcessedStep",
    "RunCache",
]
