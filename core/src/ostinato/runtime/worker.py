"""The worker: pulls work items from a provider and runs orchestrators and activities.

Work moves through plain threads, each doing as much of an item's path as it can, because on
CPython every hand-off between threads (or between a thread and an event loop) costs more
than a step of a small orchestration:

* a few **orchestration threads** take turns polling (one polls while the others process):
  the poller locks a batch of work items, lets the next thread poll, then processes the batch
  and commits its checkpoints itself. On a provider with eager activities
  (``ProviderCapabilities.eager_activities``) the commit also locks the activity tasks it
  schedules, as many as there are free activity slots, and the thread starts them at once:
  no poll, no hand-off through the dispatcher;
* one **activity dispatcher** thread locks activity work items while slots are free and hands
  each to the activity thread pool (sync activities) or to the event loop (``async def``);
* the thread that finishes an activity commits its result, together with the results that
  finished meanwhile (group commit: whoever finds no commit in progress commits the batch).
  On a provider with eager orchestrations (``ProviderCapabilities.eager_orchestrations``)
  that commit also locks the instances the results go to, while the worker has room for
  them, and the thread runs their next steps itself. With eager steps
  (``ProviderCapabilities.eager_steps``) it first computes, from the cached run, the step a
  result brings its instance, and commits the result with that step in one write, which
  applies the step only if nothing else happened to the instance meanwhile;
* one **renewer** thread keeps running activities' locks alive.

Idle threads wait on the provider's change signal (the same process's writes wake them at
once) and otherwise poll with a backoff up to ``max_poll_interval``.

Stopping is graceful: no new work is taken, in-flight work gets ``grace_period`` to finish,
and whatever is still running then is abandoned (its messages reappear for another worker),
so nothing is lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypedDict, Unpack

from ostinato.converter import DataConverter, default_converter
from ostinato.errors import FailureDetails, SerializationError, WorkItemLockLost, unstorable
from ostinato.history import ExecutionTerminated, TaskCompleted, TaskFailed
from ostinato.orchestration.app import App
from ostinato.orchestration.context import ActivityContext
from ostinato.orchestration.entities import is_entity_instance
from ostinato.provider import (
    ActivityClaim,
    ActivityWorkItem,
    InstanceRecord,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    ResultStep,
    StorageProvider,
    Work,
)
from ostinato.runtime import telemetry
from ostinato.runtime.ending import (
    failing_checkpoint,
    failure_notice,
    noticed_failure,
    terminating_checkpoint,
)
from ostinato.runtime.poison import DEFAULT_MAX_DELIVERY_ATTEMPTS, Isolation, poison_failure
from ostinato.runtime.polling import MIN_POLL_DELAY, PollLoop
from ostinato.runtime.processor import CorruptHistory, OrchestrationProcessor, ProcessedStep
from ostinato.runtime.retention import RetentionPolicy, RetentionSweeper
from ostinato.versioning import VersioningOptions, VersionMismatchError

log = logging.getLogger("ostinato.runtime.worker")

#: Threads that run synchronous activities when ``activity_threads`` is not given: the
#: standard library's thread-pool default (``ThreadPoolExecutor``), a few more than the CPUs.
#: Under the GIL, more threads than that mostly take turns; activities that wait on I/O for
#: long can have more (``activity_threads``) or be ``async def``.
DEFAULT_ACTIVITY_THREADS = min(32, (os.cpu_count() or 1) + 4)
#: Threads that take turns locking, processing and committing orchestration work items: one
#: polls while the other processes and commits (processing is Python, so more threads would
#: only take turns on the GIL; measured: two did more HelloCities per second than four).
ORCHESTRATION_THREADS = 2
#: How long a work item's lock lasts unless renewed (the worker renews held items' locks
#: every third of it): a crashed worker's items are handed out again after about this long.
DEFAULT_LOCK_TIMEOUT = timedelta(seconds=15)
#: How long an orchestration whose version this worker does not run waits before it is
#: handed out again (to any worker).
REJECT_DELAY = timedelta(seconds=1)
#: The writes that wake the orchestration loop (a timer may be due already, or soon: the
#: loop looks again for it too) and those that wake the activity loop, as sets of ``Work``
#: values, so a change is sorted by one lookup instead of flag operations.
_EVERY_WORK = [Work(value) for value in range(Work.ALL.value + 1)]
_WAKES_ORCHESTRATIONS = frozenset(w for w in _EVERY_WORK if w & (Work.ORCHESTRATIONS | Work.TIMERS))
_WAKES_ACTIVITIES = frozenset(w for w in _EVERY_WORK if Work.ACTIVITIES in w)


class _Threads:
    """A fixed set of threads running the callables handed to :meth:`submit`, in order.

    Lighter than a ``ThreadPoolExecutor`` for the worker's case (no future per call, the
    result goes elsewhere): one queue put per call.
    """

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._count = count
        for n in range(count):
            threading.Thread(target=self._run, name=f"{name}_{n}", daemon=True).start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._jobs.put((fn, args))

    def shutdown(self) -> None:
        """Let the threads end once they are idle (a running call is not interrupted)."""
        for _ in range(self._count):
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # a thread of the pool must not die
                log.exception("Unexpected error in a worker thread")


class _UndecodableTask(Exception):
    """An activity task whose stored input the converter cannot decode at all (a corrupt
    record, not a value of the wrong type): it goes to the dead letters, not to its code."""


class _RunningActivity:
    """An activity work item this worker holds, from lock to committed result."""

    __slots__ = ("future", "item", "renewed")

    def __init__(self, item: ActivityWorkItem) -> None:
        self.item = item
        self.future: concurrent.futures.Future[Any] | None = None
        #: When the lock was last taken or renewed (``time.monotonic()``).
        self.renewed = time.monotonic()


class AsyncWorker:
    """Runs an app's orchestrations and activities from ``provider``.

    Use ``async with AsyncWorker(app, provider):`` or ``await start()`` / ``await stop()``.
    The work runs on the worker's own threads (see the module doc); ``async def`` activities
    run on the event loop that started the worker.

    :param max_concurrent_orchestrations: orchestration work items held at once.
    :param max_concurrent_activities: activities running at once (sync ones on a thread,
        ``async def`` ones on the loop).
    :param activity_threads: threads running synchronous activities (default: the smaller of
        ``max_concurrent_activities`` and the standard library's thread-pool default, the
        number of CPUs plus 4, at most 32).
    :param lock_timeout: how long a work item's lock lasts; renewed while the item is held.
    :param max_delivery_attempts: deliveries of one work item before the core fails it instead
        of running it again (see :mod:`ostinato.poison`).
    :param max_poll_interval: longest wait between polls when no change signal arrives
        (writes by other processes are seen by polling unless the provider signals them).
    :param grace_period: seconds :meth:`stop` lets in-flight work finish.
    :param cache_size: runs of busy instances kept in memory between steps.
    :param batch_size: most work items locked in one provider call.
    :param versioning: which orchestration versions this worker runs (default: all).
    :param retention: purge finished instances older than this policy allows, in the
        background (one worker per task hub at a time; see :mod:`ostinato.runtime.retention`).
    """

    def __init__(
        self,
        app: App,
        provider: StorageProvider,
        *,
        max_concurrent_orchestrations: int = 100,
        max_concurrent_activities: int = 100,
        activity_threads: int | None = None,
        lock_timeout: timedelta = DEFAULT_LOCK_TIMEOUT,
        max_poll_interval: float = 1.0,
        grace_period: float = 30.0,
        max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS,
        cache_size: int = 1000,
        batch_size: int = 50,
        converter: DataConverter | None = None,
        worker_id: str | None = None,
        versioning: VersioningOptions | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        if max_concurrent_orchestrations < 1 or max_concurrent_activities < 1:
            raise ValueError("Concurrency limits must be at least 1")
        if activity_threads is None:
            activity_threads = min(max_concurrent_activities, DEFAULT_ACTIVITY_THREADS)
        if activity_threads < 1:
            raise ValueError("activity_threads must be at least 1")
        if max_delivery_attempts < 1:
            raise ValueError("max_delivery_attempts must be at least 1")
        self.app = app
        self.provider = provider
        self.converter = converter or default_converter
        self.max_concurrent_orchestrations = max_concurrent_orchestrations
        self.max_concurrent_activities = max_concurrent_activities
        self.activity_threads = activity_threads
        self.lock_timeout = lock_timeout
        self.max_poll_interval = max_poll_interval
        self.grace_period = grace_period
        self.max_delivery_attempts = max_delivery_attempts
        self.batch_size = batch_size
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processor = OrchestrationProcessor(
            app, provider, self.converter, cache_size, versioning
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: _Threads | None = None
        self._threads: list[threading.Thread] = []
        self._renewer_thread: threading.Thread | None = None
        self.retention = (
            None if retention is None else RetentionSweeper(provider, retention, self.worker_id)
        )
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._orchestration_polls: PollLoop[OrchestrationWorkItem] = PollLoop(
            "orchestration",
            lock=lambda n: provider.lock_next_orchestration_work_items(
                self.worker_id, self.lock_timeout, n
            ),
            room=lambda: self.max_concurrent_orchestrations - self._orchestrations_in_flight,
            taken=self._took_orchestrations,
            batch_size=batch_size,
            max_poll_interval=max_poll_interval,
        )
        self._activity_polls: PollLoop[ActivityWorkItem] = PollLoop(
            "activity",
            lock=lambda n: provider.lock_next_activity_work_items(
                self.worker_id, self.lock_timeout, n
            ),
            room=self._activity_room,
            batch_size=batch_size,
            max_poll_interval=max_poll_interval,
        )
        #: Held by the orchestration thread whose turn it is to poll.
        self._poll_turn = threading.Lock()
        self._isolation = Isolation()
        #: Orchestration work items held, by id(): the item and when its lock was last renewed.
        self._held: dict[int, tuple[OrchestrationWorkItem, float]] = {}
        self._guard = threading.Lock()
        self._settled = threading.Condition(self._guard)
        #: Instances whose steps this worker is committing (how many commits each), and the
        #: condition their ends notify: see :meth:`_wait_for_commit`. Kept only for providers
        #: whose checkpoints are not transactional (their tasks may show before the step).
        self._tasks_before_steps = not provider.capabilities.transactional_checkpoints
        self._steps_committing: dict[str, int] = {}
        self._committed = threading.Condition(self._guard)
        self._orchestrations_in_flight = 0
        self._activities: dict[int, _RunningActivity] = {}
        #: How many of ``_activities`` belong to each instance (kept with it, under the guard).
        self._activities_of: Counter[str] = Counter()
        #: Activity slots set aside for tasks a commit in progress may claim.
        self._activities_reserved = 0
        self._eager = provider.capabilities.eager_activities
        self._eager_orchestrations = provider.capabilities.eager_orchestrations
        caps = provider.capabilities
        self._eager_steps = (
            caps.eager_steps and caps.eager_orchestrations and caps.transactional_checkpoints
        )
        self._results: list[tuple[ActivityWorkItem, OrchestrationMessage]] = []
        #: A thread leads the result commits (see :meth:`_commit_results`) ...
        self._committing = False
        #: ... and this many threads are in :meth:`_commit_results` (a thread that stopped
        #: leading may still wait for the disk or run the steps its commits locked).
        self._committers = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Set up the provider and begin taking work."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        """Stop taking work, let in-flight work finish (``grace_period``), abandon the rest."""
        await asyncio.to_thread(self._stop)

    async def __aenter__(self) -> AsyncWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _start(self) -> None:
        if self._threads:
            raise RuntimeError("The worker is already running")
        self.provider.setup()
        self._stopping.clear()
        self._stopped.clear()
        self._isolation = Isolation()
        self._pool = _Threads(self.activity_threads, "ostinato-activity")
        self.provider.changes.subscribe(self._on_change)
        loops: list[tuple[Callable[[], None], str]] = [
            (self._orchestration_thread, f"ostinato-orchestrations-{n}")
            for n in range(ORCHESTRATION_THREADS)
        ]
        loops.append((self._activity_dispatcher, "ostinato-activities"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._renewer_thread = threading.Thread(
            target=self._renewer, name="ostinato-lock-renewer", daemon=True
        )
        self._renewer_thread.start()
        if self.retention is not None:
            self.retention.start()
        telemetry.current().watch(self.provider)
        log.info("Worker %s started", self.worker_id)

    def _stop(self) -> None:
        if not self._threads or self._stopping.is_set():
            return
        deadline = time.monotonic() + self.grace_period
        self._stopping.set()
        self._wake()
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        with self._guard:
            while self._activities and self._settled.wait(max(deadline - time.monotonic(), 0)):
                pass
            # Out of the table, a leftover's late result is dropped (_activity_finished).
            leftovers = list(self._activities.values())
            self._activities.clear()
            self._activities_of.clear()
        for running in leftovers:
            if running.future is not None:
                running.future.cancel()
            with contextlib.suppress(Exception):
                self.provider.abandon_activity_work_item(running.item, None)
        with self._guard:  # results already handed to a commit are committed, not dropped
            while self._results or self._committing or self._committers:
                self._settled.wait(1.0)
        self._stopped.set()
        if self.retention is not None:
            self.retention.stop()
        telemetry.current().unwatch(self.provider)
        if self._renewer_thread is not None:
            self._renewer_thread.join()
        self.provider.changes.unsubscribe(self._on_change)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._threads = []
        try:  # the provider is not ours to close; what it holds for this worker is
            self.provider.worker_stopped(self.worker_id)
        except Exception:
            log.exception("Releasing what worker %s held in the provider failed", self.worker_id)
        log.info("Worker %s stopped", self.worker_id)

    # -- signals --------------------------------------------------------------------------
    def _on_change(self, work: Work) -> None:
        if work in _WAKES_ORCHESTRATIONS:
            self._orchestration_polls.signal.bump()
        if work in _WAKES_ACTIVITIES:
            self._activity_polls.signal.bump()

    def _wake(self) -> None:
        self._orchestration_polls.signal.bump()
        self._activity_polls.signal.bump()

    # -- orchestrations -------------------------------------------------------------------
    def _orchestration_thread(self) -> None:
        while not self._stopping.is_set():
            with self._poll_turn:
                items, seen = self._orchestration_polls.poll(self._isolation, self._stopping)
            if not items:
                continue
            try:
                self._handle_orchestrations(items, seen)
            except BaseException:  # this thread must keep running
                log.exception("Processing orchestration work items failed")
            finally:
                with self._guard:
                    self._orchestrations_in_flight -= len(items)
                self._orchestration_polls.room_freed()

    def _took_orchestrations(self, items: Sequence[OrchestrationWorkItem]) -> None:
        with self._guard:  # before the next thread's poll: it counts them
            self._orchestrations_in_flight += len(items)

    def _handle_orchestrations(self, items: list[OrchestrationWorkItem], seen: int) -> None:
        """Run a locked batch: fresh items together, poison ones failed without running,
        at most one suspect alone afterwards (see :mod:`ostinato.poison`)."""
        isolation = self._isolation
        fresh: list[OrchestrationWorkItem] = []
        suspect: OrchestrationWorkItem | None = None
        now = time.monotonic()
        with self._guard:
            for item in items:
                self._held[id(item)] = (item, now)
        try:
            for item in items:
                if item.dead_letters and not is_entity_instance(item.instance_id):
                    self._end_instance(item, failure=_dead_letter_failure(item))
                    continue
                noticed = noticed_failure(item)
                if noticed is not None:  # e.g. an activity task of it was dead-lettered
                    self._end_instance(item, failure=noticed)
                    continue
                if item.dequeue_count <= 1 or is_entity_instance(item.instance_id):
                    fresh.append(item)
                    continue
                terminate = next(
                    (m.event for m in item.messages if isinstance(m.event, ExecutionTerminated)),
                    None,
                )
                if terminate is not None:  # applied without running the (suspect) code
                    self._end_instance(item, terminate=terminate)
                elif item.dequeue_count > self.max_delivery_attempts:
                    what = f"The step of orchestration '{item.instance_id}'"
                    failure = poison_failure(what, item.dequeue_count, self.max_delivery_attempts)
                    self._end_instance(item, failure=failure)
                elif suspect is None and isolation.claim_suspect():
                    suspect = item
                else:  # another suspect is held: give this one back for later
                    with contextlib.suppress(Exception):
                        self.provider.abandon_orchestration_work_item(item, None)
            if fresh:
                self._process_and_commit(fresh, seen)
        finally:
            isolation.finished(len(items) - (suspect is not None))
            self._unhold([item for item in items if item is not suspect])
        if suspect is None:
            return
        try:
            if isolation.wait_alone(self._stopping):
                log.warning(
                    "Running the step of '%s' alone: delivery %d of at most %d",
                    suspect.instance_id,
                    suspect.dequeue_count,
                    self.max_delivery_attempts,
                )
                self._process_and_commit([suspect], seen)
            else:
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(suspect, None)
        finally:
            isolation.finished(1)
            self._unhold([suspect])
            isolation.release_suspect()

    def _dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> None:
        """Move an undecodable history aside and fail its instance."""
        try:
            letter = self.provider.dead_letter_history(item, f"undecodable history: {reason}")
        except WorkItemLockLost:
            log.warning("Lock on '%s' was lost; its work is dropped", item.instance_id)
            return
        except Exception:
            log.exception("Moving the history of '%s' aside failed; retrying", item.instance_id)
            with contextlib.suppress(Exception):
                self.provider.abandon_orchestration_work_item(item, timedelta(seconds=1))
            return
        where = (
            f"; it was moved to the dead letters as {letter.id} "
            f"(ostinato dead-letters show {letter.id})"
            if letter is not None
            else ""
        )
        failure = FailureDetails(
            "SerializationError",
            f"The history of orchestration '{item.instance_id}' cannot be decoded "
            f"({reason}){where}",
        )
        self._end_instance(item, failure=failure, history_lost=letter is not None)

    def _unhold(self, items: list[OrchestrationWorkItem]) -> None:
        with self._guard:
            for item in items:
                self._held.pop(id(item), None)

    def _process_and_commit(self, items: list[Any], seen: int) -> None:
        """Process a batch of work items and commit their checkpoints (``seen``: the
        orchestration signal's version before they were locked)."""
        observer = telemetry.current()
        observed = observer.enabled  # without telemetry, no hook is called per item
        began = time.monotonic() if observed else 0.0
        steps: list[ProcessedStep] = []
        for item in items:
            if observed:
                observer.delivered("orchestration", item.dequeue_count)
            try:
                steps.append(self.processor.process(item))
            except CorruptHistory as exc:
                self._dead_letter_history(item, str(exc))
            except VersionMismatchError as exc:  # for a worker that runs its version
                log.debug("%s; giving the work back", exc)
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(item, REJECT_DELAY)
            except BaseException:  # one step's failure is that step's alone
                log.exception("Orchestration step for '%s' failed; abandoning", item.instance_id)
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(item, timedelta(seconds=1))
        if not steps:
            return
        results: list[Exception | None] | None = None
        # A message may have come for an instance while it was locked (the signal moved since
        # the lock: the poller that woke then found the instance locked); the commit releases
        # it, which makes it claimable. The provider's signal names only the work the
        # checkpoints make, so the worker wakes its pollers for this itself.
        released = (
            self._orchestration_polls.signal.version != seen
            and Work.of_checkpoints(step.checkpoint for step in steps) not in _WAKES_ORCHESTRATIONS
        )
        committing = [step.item.instance_id for step in steps] if self._tasks_before_steps else []
        claimed: list[ActivityWorkItem] = []
        settled: set[int] = set()  # ids of steps settled early (their tasks were claimed)
        claim = self._reserve_activities(steps, claimed, settled) if self._eager else None
        if committing:
            with self._guard:
                for instance_id in committing:
                    count = self._steps_committing.get(instance_id, 0)
                    self._steps_committing[instance_id] = count + 1
        try:
            pairs = [(step.item, step.checkpoint) for step in steps]
            if claim is None:
                results = self.provider.complete_orchestration_work_items(pairs)
            else:
                results = self.provider.complete_and_claim_activities(pairs, claim)
        finally:  # every step is settled, even when the commit call itself raised
            if claim is not None:
                self._unreserve_activities(claim.max_count, len(claimed))
            if committing:
                with self._guard:
                    for instance_id in committing:
                        left = self._steps_committing.pop(instance_id) - 1
                        if left:
                            self._steps_committing[instance_id] = left
                    self._committed.notify_all()
            if released:
                self._orchestration_polls.signal.bump()
            for index, step in enumerate(steps):
                if id(step) in settled:
                    pass
                elif results is not None and results[index] is None:
                    self.processor.committed(step)
                else:
                    self.processor.dropped(step)
                if observed and results is not None and results[index] is None:
                    observer.step_committed(time.monotonic() - began)
        for step, error in zip(steps, results, strict=True):
            if isinstance(error, WorkItemLockLost):
                log.warning("Lock on '%s' was lost; its work is dropped", step.item.instance_id)
            elif error is not None and unstorable(error):
                self._fail_instance(
                    step.item,
                    FailureDetails(
                        "SerializationError", f"The step's changes cannot be stored: {error}"
                    ),
                )
            elif error is not None:
                log.error(
                    "Committing the step of '%s' failed: %r; it will be retried",
                    step.item.instance_id,
                    error,
                )
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(step.item, timedelta(seconds=1))

    def _fail_instance(self, item: OrchestrationWorkItem, failure: FailureDetails) -> None:
        """End ``item``'s instance FAILED with ``failure`` without running its code."""
        self._end_instance(item, failure=failure)

    def _end_instance(
        self,
        item: OrchestrationWorkItem,
        *,
        failure: FailureDetails | None = None,
        terminate: ExecutionTerminated | None = None,
        history_lost: bool = False,
    ) -> None:
        """End ``item``'s instance without running its code: TERMINATED as ``terminate``
        asks, else FAILED with ``failure``."""
        if terminate is None:
            assert failure is not None
            log.error("Failing orchestration '%s': %s", item.instance_id, failure.message)
        history = None
        if not history_lost:
            try:
                history = self.provider.get_history(item.instance_id)
            except Exception:  # noqa: BLE001 - a corrupt history: the parent is not told
                history = None
        if terminate is not None:
            checkpoint = terminating_checkpoint(item, history, terminate)
        else:
            assert failure is not None
            checkpoint = failing_checkpoint(item, history, failure, history_lost=history_lost)
        try:
            self.provider.complete_orchestration_work_item(item, checkpoint)
        except WorkItemLockLost:
            log.warning("Lock on '%s' was lost; its work is dropped", item.instance_id)
        except Exception:
            log.exception("Failing orchestration '%s' failed; retrying", item.instance_id)
            with contextlib.suppress(Exception):
                self.provider.abandon_orchestration_work_item(item, timedelta(seconds=1))

    # -- activities -----------------------------------------------------------------------
    def _activity_room(self) -> int:
        """How many more activities the worker takes now."""
        return self.max_concurrent_activities - len(self._activities) - self._activities_reserved

    def _reserve_activities(
        self, steps: list[ProcessedStep], claimed: list[ActivityWorkItem], settled: set[int]
    ) -> ActivityClaim | None:
        """Set slots aside for the tasks ``steps`` schedule (eager activities), as many as are
        free; ``None`` if none are (or none are wanted).

        The claim's ``start`` runs once the commit is visible, possibly while the provider
        still waits for the disk: it records as committed the steps whose tasks it got (so
        the instance's next step, which their results bring, finds the run cached instead
        of waiting for this call to return), adds their ids to ``settled``, lists the tasks
        in ``claimed`` and starts them."""
        wanted = sum(len(step.checkpoint.activity_tasks) for step in steps)
        if not wanted or self._stopping.is_set():
            return None
        with self._guard:
            room = min(wanted, self._activity_room())
            if room <= 0:
                return None
            room = self._isolation.reserve(room)
            if not room:
                return None
            self._activities_reserved += room

        def start(items: list[ActivityWorkItem]) -> None:
            claimed.extend(items)
            instances = {item.task.instance_id for item in items}
            for step in steps:
                if step.item.instance_id in instances:
                    settled.add(id(step))
                    self.processor.committed(step)
            for item in items:
                try:
                    self._begin_activity(item)
                except Exception:  # start must not raise: the commit is done
                    log.exception("Starting claimed activity %s failed", item.task.name)

        return ActivityClaim(self.worker_id, self.lock_timeout, room, start)

    def _unreserve_activities(self, reserved: int, claimed: int) -> None:
        """After a commit that set ``reserved`` slots aside and started ``claimed`` tasks in
        them (now counted as running): give the slots back, and the unused ones' places in
        flight."""
        with self._guard:
            self._activities_reserved -= reserved
        if reserved > claimed:
            self._isolation.finished(reserved - claimed)
        self._activity_polls.room_freed()

    def _activity_dispatcher(self) -> None:
        while not self._stopping.is_set():
            items, _ = self._activity_polls.poll(self._isolation, self._stopping)
            for item in items:
                self._begin_activity(item)

    def _begin_activity(self, item: ActivityWorkItem) -> None:
        pool, loop = self._pool, self._loop
        if pool is None:  # stopped while this item was being locked: give it back
            self._give_back(item)
            return
        observer = telemetry.current()
        if observer.enabled:
            observer.delivered("activity", item.dequeue_count)
        if self._tasks_before_steps:
            self._wait_for_commit(item.task.instance_id)
        running = _RunningActivity(item)
        with self._guard:
            self._activities[id(running)] = running
            self._activities_of[item.task.instance_id] += 1
        if item.dequeue_count > 1:
            self._begin_suspect(running, pool)
            return
        registration = self.app.activities.get(item.task.name)
        if registration is not None and registration.is_async and loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._run_async(item), loop)
            running.future = future
            future.add_done_callback(lambda f: self._async_done(running, f))
        else:
            pool.submit(self._run_sync, running)

    def _wait_for_commit(self, instance_id: str) -> None:
        """Wait (at most ``lock_timeout``) while this worker commits a step of the instance.

        A provider that writes a step in several requests sends its activity tasks before the
        step's history: this worker may receive a task while the step that scheduled it is
        still being written. Run at once, a task that kills the process (poison) would cut
        that commit short; the step then runs again and sends the task a second time, a copy
        with a delivery count of its own. Waiting makes the step's commit finish first.
        A provider with transactional checkpoints shows a step's tasks only once the step is
        written (what is left of its commit call, such as a sync, does not survive a power
        loss and is not undone by a process kill), so its tasks do not wait.
        """
        deadline = time.monotonic() + self.lock_timeout.total_seconds()
        with self._guard:
            while instance_id in self._steps_committing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._committed.wait(left)

    def _give_back(self, item: ActivityWorkItem) -> None:
        with contextlib.suppress(Exception):
            self.provider.abandon_activity_work_item(item, None)
        self._isolation.finished(1)

    def _begin_suspect(self, running: _RunningActivity, pool: _Threads) -> None:
        """An activity delivered before: fail it if poison, drop it if its instance moved on,
        else run it alone (see :mod:`ostinato.poison`)."""
        item = running.item
        task = item.task
        if item.dequeue_count > self.max_delivery_attempts:
            what = f"Activity {task.name!r} (task {task.task_id} of '{task.instance_id}')"
            failure = poison_failure(what, item.dequeue_count, self.max_delivery_attempts)
            self._activity_finished(running, self._failed(item, failure))
            return
        if self._end_unwanted(running):
            return
        if not self._isolation.claim_suspect():
            with self._guard:
                self._forget(running)
            self._give_back(item)
            return
        pool.submit(self._run_suspect, running)

    def _end_unwanted(self, running: _RunningActivity) -> bool:
        """End a suspect activity's task without running it if its instance has ended or
        moved on to another execution (nobody waits for it); whether it did."""
        task = running.item.task
        try:
            record = self.provider.get_instance(task.instance_id)
        except Exception:  # noqa: BLE001 - unknown: run it as a suspect
            return False
        if (
            record is not None
            and not record.runtime_status.is_terminal
            and record.execution_id == task.execution_id
        ):
            return False
        failure = FailureDetails(
            "ActivityNotRun", f"Instance '{task.instance_id}' no longer waits for it"
        )
        self._activity_finished(running, self._failed(running.item, failure))
        return True

    def _run_suspect(self, running: _RunningActivity) -> None:
        item = running.item
        try:
            if not self._isolation.wait_alone(self._stopping):
                return  # stop() abandons it
            if self._end_unwanted(running):  # its instance may have ended while it waited
                return
            log.warning(
                "Running activity %s of '%s' alone: delivery %d of at most %d",
                item.task.name,
                item.task.instance_id,
                item.dequeue_count,
                self.max_delivery_attempts,
            )
            registration = self.app.activities.get(item.task.name)
            loop = self._loop
            if registration is not None and registration.is_async and loop is not None:
                future = asyncio.run_coroutine_threadsafe(self._run_async(item), loop)
                try:
                    message = future.result()
                except concurrent.futures.CancelledError:
                    return
                except _UndecodableTask as exc:
                    self._dead_letter_task(running, exc)
                    return
                self._activity_finished(running, message)
            else:
                self._run_sync(running)
        finally:
            self._isolation.release_suspect()

    def _context(self, item: ActivityWorkItem) -> tuple[Any, ActivityContext, Any]:
        """The activity's function, context and decoded input (raises if unregistered)."""
        task = item.task
        registration = self.app.activities.get(task.name)
        if registration is None:
            raise LookupError(f"No activity named {task.name!r} is registered with this worker")
        try:
            value = self.converter.loads(task.input, registration.input_type)
        except Exception as exc:
            if registration.input_type is not None:
                try:  # decodable, but not as the activity's type: the task fails
                    self.converter.loads(task.input)
                except Exception:  # noqa: BLE001 - not decodable at all: a corrupt record
                    raise _UndecodableTask(str(exc)) from exc
                raise
            raise _UndecodableTask(str(exc)) from exc
        ctx = ActivityContext(task.instance_id, task.execution_id, task.task_id, task.name)
        return registration.fn, ctx, value

    def _outcome(self, item: ActivityWorkItem, output: Any) -> OrchestrationMessage:
        task = item.task
        event: TaskCompleted | TaskFailed = TaskCompleted(
            task_scheduled_id=task.task_id, result=self.converter.dumps(output)
        )
        return OrchestrationMessage(
            instance_id=task.instance_id, execution_id=task.execution_id, event=event
        )

    @classmethod
    def _failure(cls, item: ActivityWorkItem, exc: BaseException) -> OrchestrationMessage:
        return cls._failed(item, FailureDetails.from_exception(exc))

    @staticmethod
    def _failed(item: ActivityWorkItem, failure: FailureDetails) -> OrchestrationMessage:
        task = item.task
        event = TaskFailed(task_scheduled_id=task.task_id, failure=failure)
        return OrchestrationMessage(
            instance_id=task.instance_id, execution_id=task.execution_id, event=event
        )

    def _run_sync(self, running: _RunningActivity) -> None:
        item = running.item
        with telemetry.current().activity(item, self.provider) as observed:
            try:
                fn, ctx, value = self._context(item)
                message: OrchestrationMessage | _UndecodableTask = self._outcome(
                    item, fn(ctx, value)
                )
            except _UndecodableTask as exc:
                if observed is not None:
                    observed.failed(exc)
                message = exc
            except BaseException as exc:  # noqa: BLE001 - even SystemExit only fails the task
                if observed is not None:
                    observed.failed(exc)
                message = self._failure(item, exc)
        if isinstance(message, _UndecodableTask):
            self._dead_letter_task(running, message)
        else:
            self._activity_finished(running, message)

    async def _run_async(self, item: ActivityWorkItem) -> OrchestrationMessage:
        """The activity's result message (raises :class:`_UndecodableTask` for a corrupt
        task, ``CancelledError`` when the worker stops)."""
        with telemetry.current().activity(item, self.provider) as observed:
            try:
                fn, ctx, value = self._context(item)
                return self._outcome(item, await fn(ctx, value))
            except asyncio.CancelledError:
                raise  # the worker stopped: the activity is abandoned, not failed
            except _UndecodableTask as exc:
                if observed is not None:
                    observed.failed(exc)
                raise
            except BaseException as exc:  # noqa: BLE001 - even SystemExit only fails the task
                if observed is not None:
                    observed.failed(exc)
                return self._failure(item, exc)

    def _async_done(
        self, running: _RunningActivity, future: concurrent.futures.Future[OrchestrationMessage]
    ) -> None:
        """(On the loop.) Hand an async activity's result to a thread to commit."""
        if future.cancelled():
            return
        pool = self._pool
        if pool is None:  # the worker stopped: the activity was abandoned
            return
        error = future.exception()
        if isinstance(error, _UndecodableTask):
            pool.submit(self._dead_letter_task, running, error)
        else:
            pool.submit(self._activity_finished, running, future.result())

    def _forget(self, running: _RunningActivity) -> bool:
        """Take ``running`` out of the running activities (call with the guard); ``False`` if
        it was not there (abandoned by stop())."""
        if self._activities.pop(id(running), None) is None:
            return False
        instance_id = running.item.task.instance_id
        left = self._activities_of[instance_id] - 1
        if left:
            self._activities_of[instance_id] = left
        else:
            del self._activities_of[instance_id]
        return True

    def _activity_finished(self, running: _RunningActivity, message: OrchestrationMessage) -> None:
        """Queue the result for commit; commit the queue unless a commit is in progress."""
        with self._guard:
            if not self._forget(running):
                return  # abandoned by stop(): another worker runs it again
            self._isolation.finished(1)
            self._results.append((running.item, message))
            leader = not self._committing
            self._committing = True
            if leader:
                self._committers += 1
            if self._stopping.is_set():
                self._settled.notify_all()  # stop() waits for the last activities
        self._activity_polls.room_freed()
        if leader:
            self._commit_results()

    def _dead_letter_task(self, running: _RunningActivity, error: _UndecodableTask) -> None:
        """Move a task whose input cannot be decoded to the dead letters, and fail its
        instance (the task's code never runs; the failure cannot be caught by the
        orchestration: the record is corrupt, not the task's outcome)."""
        with self._guard:
            if not self._forget(running):
                return  # abandoned by stop(): another worker looks at it again
            self._isolation.finished(1)
            if self._stopping.is_set():
                self._settled.notify_all()
        self._activity_polls.room_freed()
        item = running.item
        task = item.task
        failure = FailureDetails(
            "SerializationError",
            f"The input of activity {task.name!r} (task {task.task_id}) of orchestration "
            f"'{task.instance_id}' cannot be decoded ({error}); the task was moved to the dead "
            f"letters (ostinato dead-letters list --instance {task.instance_id})",
        )
        log.error("Failing orchestration '%s': %s", task.instance_id, failure.message)
        notice = failure_notice(task.instance_id, task.execution_id, failure)
        try:
            self.provider.dead_letter_activity_task(
                item, f"undecodable activity input: {error}", notice
            )
        except WorkItemLockLost:
            log.warning("Lost the lock of activity %s; another worker has it", task.name)
        except Exception:
            log.exception("Moving activity %s aside failed; it will be redelivered", task.name)
            with contextlib.suppress(Exception):
                self.provider.abandon_activity_work_item(item, timedelta(seconds=1))

    def _commit_results(self) -> None:
        """Lead the result commits: commit queued results in batches until the queue is
        empty (group commit), then run the steps of the instances those commits locked for
        this worker (call with :attr:`_committing` set for this thread).

        The thread stops leading before it runs those steps, and as soon as a commit of
        steps it computed (eager steps) is visible and has started the tasks it claimed:
        a result that comes while this thread runs a step or waits for the disk (often
        the result of a task that very commit claimed) is committed by its own thread at
        once. A thread that stopped leading takes the lead again afterwards if results
        wait and no other thread leads."""
        leading = [True]

        def stop_leading() -> None:
            with self._guard:
                if leading[0]:
                    leading[0] = False
                    self._committing = False

        taken: list[OrchestrationWorkItem] = []
        seen = self._orchestration_polls.signal.version
        try:
            while True:
                with self._guard:
                    if not leading[0]:
                        if self._committing or not self._results:
                            break
                        self._committing = leading[0] = True
                    batch, self._results = self._results, []
                    if not batch:
                        self._committing = leading[0] = False
                        break
                self._commit_batch(batch, taken, stop_leading)
            if taken:
                self._run_taken_orchestrations(taken, seen)
        finally:
            with self._guard:
                if leading[0]:  # only if something raised: let the next result lead
                    self._committing = False
                self._committers -= 1
                self._settled.notify_all()

    def _commit_batch(
        self,
        batch: list[tuple[ActivityWorkItem, OrchestrationMessage]],
        taken: list[OrchestrationWorkItem],
        stop_leading: Callable[[], None],
    ) -> None:
        """Commit one batch of results (see :meth:`_commit_results`); the instances its
        commits lock for this worker go to ``taken``."""
        rest, stepped = self._speculate(batch) if self._eager_steps else (batch, [])
        done: list[tuple[ActivityWorkItem, OrchestrationMessage]] = []
        errors: list[Exception | None] = []
        if stepped:
            errors = self._commit_with_steps(stepped, stop_leading)
            done = [(item, result) for item, result, _ in stepped]
        if self._eager_steps and any(item.dequeue_count > 1 for item, _ in rest):
            redelivered = [pair for pair in rest if pair[0].dequeue_count > 1]
            rest = [pair for pair in rest if pair[0].dequeue_count <= 1]
            errors += self._commit_charging(redelivered)
            done += redelivered
        claim = self._reserve_orchestrations(rest, taken) if rest else None
        try:
            if claim is not None:
                locked = len(taken)
                try:
                    errors += self.provider.complete_activities_and_claim(rest, claim)
                finally:
                    self._unreserve_orchestrations(claim.max_count - (len(taken) - locked))
            elif rest:
                errors += self.provider.complete_activity_work_items(rest)
            done += rest
        except Exception:
            log.exception("Committing activity results failed; they will be redelivered")
        retry: list[tuple[ActivityWorkItem, OrchestrationMessage]] = []
        for (item, _), error in zip(done, errors, strict=False):
            if error is not None and unstorable(error):
                # The result cannot be stored: the task fails (it does not run again).
                failure = SerializationError(f"The activity's result cannot be stored: {error}")
                retry.append((item, self._failure(item, failure)))
            elif error is not None and not isinstance(error, WorkItemLockLost):
                log.error("Committing activity %s failed: %r", item.task.name, error)
        if retry:
            with self._guard:
                self._results.extend(retry)

    def _speculate(
        self, batch: list[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> tuple[
        list[tuple[ActivityWorkItem, OrchestrationMessage]],
        list[tuple[ActivityWorkItem, OrchestrationMessage, ProcessedStep]],
    ]:
        """Split ``batch`` into results to commit as they are and results to commit with the
        step each brings its instance (eager steps), computed here from the cached run.

        A result gets its step if it is a first delivery, its instance's run is cached with
        no step of it in flight and awaits no other task, no other activity of the instance
        runs here and no other result of it is in the batch (a fan-in's results are taken
        together by one step instead), while the worker has room for orchestration steps
        and is not careful (see :mod:`ostinato.runtime.poison`)."""
        if self._stopping.is_set():
            return batch, []
        with self._guard:
            running = self._activities_of
            room = self.max_concurrent_orchestrations - self._orchestrations_in_flight
            wanted = [
                index
                for index, (item, result) in enumerate(batch)
                if item.dequeue_count == 1 and result.instance_id not in running
            ]
        if not wanted:
            return batch, []
        if len(batch) > 1:
            per_instance = Counter(result.instance_id for _, result in batch)
            wanted = [i for i in wanted if per_instance[batch[i][1].instance_id] == 1]
        may = self.processor.may_speculate
        wanted = [index for index in wanted if may(batch[index][1].instance_id)]
        room = self._isolation.reserve(min(room, len(wanted))) if wanted and room > 0 else 0
        if not room:
            return batch, []
        with self._guard:
            self._orchestrations_in_flight += room
        observer = telemetry.current()
        stepped: list[tuple[ActivityWorkItem, OrchestrationMessage, ProcessedStep]] = []
        for index in wanted[:room]:
            item, result = batch[index]
            try:
                step = self.processor.speculate(result)
            except VersionMismatchError as exc:  # the result goes to a worker of its version
                log.debug("%s; committing the result without its step", exc)
                step = None
            except BaseException:  # one step's failure is that step's alone
                log.exception("Orchestration step for '%s' failed", result.instance_id)
                step = None
            if step is not None:
                if observer.enabled:
                    observer.delivered("orchestration", 1)
                stepped.append((item, result, step))
        self._unreserve_orchestrations(room - len(stepped))
        chosen = {id(item) for item, _, _ in stepped}
        return [pair for pair in batch if id(pair[0]) not in chosen], stepped

    def _commit_with_steps(
        self,
        stepped: list[tuple[ActivityWorkItem, OrchestrationMessage, ProcessedStep]],
        visible: Callable[[], None],
    ) -> list[Exception | None]:
        """Commit results with the steps :meth:`_speculate` computed from them (claiming the
        tasks those steps schedule, as a step's commit does, and calling ``visible()`` once
        it has started them); each result's error."""
        steps = [step for _, _, step in stepped]
        claimed: list[ActivityWorkItem] = []
        settled: set[int] = set()
        claim = self._reserve_activities(steps, claimed, settled) if self._eager else None
        if claim is not None:
            start = claim.start

            def start_then_visible(items: list[ActivityWorkItem]) -> None:
                start(items)
                visible()

            claim = replace(claim, start=start_then_visible)
        observer = telemetry.current()
        began = time.monotonic()
        outcomes: list[bool | Exception] = []
        try:
            outcomes = self.provider.complete_activities_and_steps(
                [
                    ResultStep(item, result, _basis(step), step.checkpoint)
                    for item, result, step in stepped
                ],
                claim,
            )
        except Exception:
            log.exception("Committing activity results failed; they will be redelivered")
        finally:
            if claim is not None:
                self._unreserve_activities(claim.max_count, len(claimed))
            for index, step in enumerate(steps):
                applied = index < len(outcomes) and outcomes[index] is True
                if id(step) in settled:
                    pass
                elif applied:
                    self.processor.committed(step)
                else:
                    self.processor.dropped(step)
                if applied and observer.enabled:
                    observer.step_committed(time.monotonic() - began)
            self._unreserve_orchestrations(len(steps))
        if not outcomes:  # the call raised (logged): nothing more to do per result
            return [None] * len(stepped)
        return [outcome if isinstance(outcome, Exception) else None for outcome in outcomes]

    def _commit_charging(
        self, batch: list[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        """Commit the results of activities delivered more than once, each charging its
        instance one delivery; the results' errors.

        With eager steps, a step runs in the process of the activity whose result it
        consumes, before anything of either is written: if that step crashes the process,
        only the activity's count grows. So the result of an activity delivered again
        counts as a delivery of the step it brings: the commit claims the instance with a
        lock that is over at once, and its next hand-out, to any worker, is a redelivery
        (see :mod:`ostinato.runtime.poison`)."""
        charge = OrchestrationClaim(self.worker_id, timedelta(0), len(batch), lambda _: None)
        try:
            return self.provider.complete_activities_and_claim(batch, charge)
        except Exception:
            log.exception("Committing activity results failed; they will be redelivered")
            return [None] * len(batch)  # logged here: nothing more to do per result
        finally:
            self._orchestration_polls.signal.bump()  # the charged instances are claimable

    def _reserve_orchestrations(
        self, batch: list[tuple[ActivityWorkItem, OrchestrationMessage]], taken: list[Any]
    ) -> OrchestrationClaim | None:
        """Set room aside for the instances a commit of ``batch``'s results may lock (eager
        orchestrations); ``None`` if the provider does not claim, or if another activity of
        one of those instances still runs here: its result would soon need another step, so
        the pollers take that instance's results in batches (a fan-in claimed on every result
        commit would run a step for every few results). The claim lists what it locked in
        ``taken``."""
        if not self._eager_orchestrations or self._stopping.is_set():
            return None
        wanted = {result.instance_id for _, result in batch}
        with self._guard:
            if any(instance_id in self._activities_of for instance_id in wanted):
                return None
            room = min(
                len(wanted), self.max_concurrent_orchestrations - self._orchestrations_in_flight
            )
            if room <= 0:
                return None
            room = self._isolation.reserve(room)
            if not room:
                return None
            self._orchestrations_in_flight += room
        return OrchestrationClaim(self.worker_id, self.lock_timeout, room, taken.extend)

    def _unreserve_orchestrations(self, unused: int) -> None:
        """Give back the room a commit set aside but locked no instance in."""
        if unused <= 0:
            return
        with self._guard:
            self._orchestrations_in_flight -= unused
        self._isolation.finished(unused)
        self._orchestration_polls.room_freed()

    def _run_taken_orchestrations(self, items: list[OrchestrationWorkItem], seen: int) -> None:
        """Run the steps of instances an activity results' commit locked for this worker, as
        an orchestration thread runs a polled batch. A redelivered item is given back to
        the pollers: the poison policy runs it (alone, if it must) on an orchestration
        thread."""
        fresh = [item for item in items if item.dequeue_count <= 1]
        for item in items:
            if item.dequeue_count > 1:
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(item, None)
                self._isolation.finished(1)
        try:
            if fresh:
                self._handle_orchestrations(fresh, seen)
        except BaseException:  # this thread must keep committing
            log.exception("Processing orchestration work items failed")
        finally:
            with self._guard:
                self._orchestrations_in_flight -= len(items)
            self._orchestration_polls.room_freed()

    def _renewer(self) -> None:
        """Renew the locks of work held long (every third of ``lock_timeout``): running
        activities, and orchestration steps (a suspect waiting to run alone, a slow step)."""
        interval = max(self.lock_timeout.total_seconds() / 3, 0.05)
        while not self._stopped.wait(interval / 2):
            now = time.monotonic()
            with self._guard:
                due = [r for r in self._activities.values() if now - r.renewed >= interval / 2]
                held = [
                    item for item, renewed in self._held.values() if now - renewed >= interval / 2
                ]
            for item in held:
                try:
                    self.provider.renew_orchestration_work_item_lock(item, self.lock_timeout)
                except WorkItemLockLost:
                    if id(item) in self._held:  # else its step ended meanwhile
                        log.warning("Lost the lock of '%s'; its step is dropped", item.instance_id)
                except Exception:
                    log.exception("Renewing the lock of '%s' failed", item.instance_id)
                with self._guard:
                    if id(item) in self._held:
                        self._held[id(item)] = (item, now)
            for running in due:
                try:
                    self.provider.renew_activity_work_item_lock(running.item, self.lock_timeout)
                    running.renewed = now
                except WorkItemLockLost:
                    running.renewed = float("inf")  # never again: the result will be refused
                    log.warning(
                        "Lost the lock of activity %s; its result will be dropped",
                        running.item.task.name,
                    )
                except Exception:
                    log.exception("Renewing the lock of activity %s failed", running.item.task.name)


def _basis(step: ProcessedStep) -> InstanceRecord:
    """The instance record a step computed without a lock was computed from."""
    record = step.item.instance
    assert record is not None  # OrchestrationProcessor.speculate steps always have one
    return record


def _dead_letter_failure(item: OrchestrationWorkItem) -> FailureDetails:
    """The failure of an instance some of whose messages could not be decoded."""
    reasons = "; ".join(dict.fromkeys(letter.reason for letter in item.dead_letters))
    return FailureDetails(
        "SerializationError",
        f"{len(item.dead_letters)} message(s) for orchestration '{item.instance_id}' could "
        f"not be decoded ({reasons}); they are kept in the dead letters "
        f"(ostinato dead-letters list --instance {item.instance_id})",
    )


class WorkerOptions(TypedDict, total=False):
    """The keyword arguments of :class:`AsyncWorker`, typed, for :class:`Worker` to pass on.

    A test checks that these are exactly :class:`AsyncWorker`'s keyword parameters with the
    same annotations, so the two faces cannot drift apart.
    """

    max_concurrent_orchestrations: int
    max_concurrent_activities: int
    activity_threads: int | None
    lock_timeout: timedelta
    max_poll_interval: float
    grace_period: float
    max_delivery_attempts: int
    cache_size: int
    batch_size: int
    converter: DataConverter | None
    worker_id: str | None
    versioning: VersioningOptions | None
    retention: RetentionPolicy | None


class Worker:
    """A synchronous face for :class:`AsyncWorker`: runs it on a background thread.

    Use as a context manager (``with ot.Worker(app, provider): ...``) or call ``start()`` and
    ``stop()``. Takes the same keyword arguments as :class:`AsyncWorker`
    (:class:`WorkerOptions`).
    """

    def __init__(
        self, app: App, provider: StorageProvider, **options: Unpack[WorkerOptions]
    ) -> None:
        self._async_worker = AsyncWorker(app, provider, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def worker_id(self) -> str:
        return self._async_worker.worker_id

    @property
    def processor(self) -> OrchestrationProcessor:
        return self._async_worker.processor

    def start(self) -> None:
        """Start the worker thread and wait until it takes work."""
        if self._thread is not None:
            raise RuntimeError("The worker is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._async_worker.start())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="ostinato-worker", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop gracefully (see :meth:`AsyncWorker.stop`) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._async_worker.stop(), loop)
        future.result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "DEFAULT_ACTIVITY_THREADS",
    "DEFAULT_LOCK_TIMEOUT",
    "MIN_POLL_DELAY",
    "ORCHESTRATION_THREADS",
    "AsyncWorker",
    "Worker",
    "WorkerOptions",
]
