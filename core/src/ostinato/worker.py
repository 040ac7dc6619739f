"""The worker: pulls work items from a provider and runs orchestrators and activities.

:class:`AsyncWorker` is asyncio inside: one dispatcher for orchestration work items and one
for activity work items, each bounded by its concurrency setting. Provider calls run on a
small thread pool (providers are blocking); sync activities run on their own thread pool and
``async def`` activities on the loop. Completed activities are committed in batches (group
commit), and orchestration work items are locked, processed and committed in batches too.
:class:`Worker` runs an :class:`AsyncWorker` on a background thread for sync programs.

Stopping is graceful: no new work is taken, in-flight work gets ``grace_period`` to finish,
and whatever is still running then is abandoned (its messages reappear for another worker),
so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from ostinato.app import App
from ostinato.context import ActivityContext
from ostinato.converter import DataConverter, default_converter
from ostinato.errors import FailureDetails, WorkItemLockLost
from ostinato.history import TaskCompleted, TaskFailed
from ostinato.processor import OrchestrationProcessor, Step
from ostinato.provider import ActivityWorkItem, OrchestrationMessage, StorageProvider

log = logging.getLogger("ostinato.worker")

T = TypeVar("T")

#: Threads that run synchronous activities when ``activity_threads`` is not given (the
#: standard library's thread-pool default on a large machine).
DEFAULT_ACTIVITY_THREADS = 32


class AsyncWorker:
    """Runs an app's orchestrations and activities from ``provider`` on an asyncio loop.

    Use ``async with AsyncWorker(app, provider):`` or ``await start()`` / ``await stop()``.

    :param max_concurrent_orchestrations: orchestration work items held at once.
    :param max_concurrent_activities: activity work items held at once (running, or waiting
        for a thread); ``async def`` activities all run at once on the loop.
    :param activity_threads: threads running synchronous activities (default: the smaller of
        ``max_concurrent_activities`` and 32).
    :param lock_timeout: how long a work item's lock lasts; renewed while it runs.
    :param batch_size: most work items locked or committed in one provider call.
    :param cache_size: runs of busy instances kept in memory between steps.
    :param grace_period: seconds :meth:`stop` lets in-flight work finish.
    """

    def __init__(
        self,
        app: App,
        provider: StorageProvider,
        *,
        max_concurrent_orchestrations: int = 100,
        max_concurrent_activities: int = 100,
        activity_threads: int | None = None,
        lock_timeout: timedelta = timedelta(minutes=1),
        max_poll_interval: float = 1.0,
        grace_period: float = 30.0,
        cache_size: int = 1000,
        batch_size: int = 50,
        converter: DataConverter | None = None,
        worker_id: str | None = None,
    ) -> None:
        if max_concurrent_orchestrations < 1 or max_concurrent_activities < 1:
            raise ValueError("Concurrency limits must be at least 1")
        if activity_threads is None:
            activity_threads = min(max_concurrent_activities, DEFAULT_ACTIVITY_THREADS)
        if activity_threads < 1:
            raise ValueError("activity_threads must be at least 1")
        self.app = app
        self.provider = provider
        self.converter = converter or default_converter
        self.max_concurrent_orchestrations = max_concurrent_orchestrations
        self.max_concurrent_activities = max_concurrent_activities
        self.lock_timeout = lock_timeout
        self.max_poll_interval = max_poll_interval
        self.grace_period = grace_period
        self.batch_size = batch_size
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processor = OrchestrationProcessor(app, provider, self.converter, cache_size)
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ostinato-io")
        self._activity_threads = ThreadPoolExecutor(
            max_workers=activity_threads, thread_name_prefix="ostinato-activity"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._wake_orchestrations: asyncio.Event | None = None
        self._wake_activities: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._orchestration_batches: set[asyncio.Task[None]] = set()
        self._activities_in_flight: dict[asyncio.Task[None], ActivityWorkItem] = {}
        self._activity_results: list[tuple[ActivityWorkItem, OrchestrationMessage]] = []
        self._results_ready: asyncio.Event | None = None
        self._orchestrations_in_flight = 0
        self._listening = False
        self._sleepers = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Set up the provider and begin taking work."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake_orchestrations = asyncio.Event()
        self._wake_activities = asyncio.Event()
        self._results_ready = asyncio.Event()
        await self._call(self.provider.setup)
        self._listening = True
        self.provider.changes.subscribe(self._on_change)
        self._tasks = [
            asyncio.create_task(self._orchestration_loop(), name="ostinato-orchestrations"),
            asyncio.create_task(self._activity_loop(), name="ostinato-activities"),
            asyncio.create_task(self._activity_result_loop(), name="ostinato-activity-results"),
        ]
        log.info("Worker %s started", self.worker_id)

    async def stop(self) -> None:
        """Stop taking work, let in-flight work finish (``grace_period``), abandon the rest."""
        if self._stopping is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake()
        loops = self._tasks[:2]
        await asyncio.gather(*loops, return_exceptions=True)
        pending = set(self._activities_in_flight) | set(self._orchestration_batches)
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=self.grace_period)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.gather(*still_running, return_exceptions=True)
        assert self._results_ready is not None
        self._results_ready.set()
        await asyncio.gather(self._tasks[2], return_exceptions=True)
        self.provider.changes.unsubscribe(self._on_change)
        self._listening = False
        self._io.shutdown(wait=False)
        self._activity_threads.shutdown(wait=False)
        log.info("Worker %s stopped", self.worker_id)

    async def __aenter__(self) -> AsyncWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- plumbing -------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._io, fn, *args)

    def _on_change(self) -> None:
        # Only an idle dispatcher needs waking: busy ones poll again anyway, and skipping the
        # cross-thread wake-up keeps a busy worker from paying for one on every write.
        loop = self._loop
        if loop is not None and self._listening and self._sleepers:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in (self._wake_orchestrations, self._wake_activities):
            if event is not None:
                event.set()

    async def _idle(self, event: asyncio.Event, delay: float, seen: int | None = None) -> None:
        """Wait for a change notification, at most ``delay`` seconds (then poll).

        ``seen`` is the provider's change version read before the poll that found nothing:
        if it moved since, there is new work and no waiting.
        """
        self._sleepers += 1
        try:
            if seen is not None and self.provider.changes.version != seen:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=delay)
        finally:
            self._sleepers -= 1

    @property
    def _stopped(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    # -- orchestrations -------------------------------------------------------------------
    async def _orchestration_loop(self) -> None:
        assert self._wake_orchestrations is not None
        delay = 0.001
        while not self._stopped:
            free = self.max_concurrent_orchestrations - self._orchestrations_in_flight
            if free <= 0:
                self._wake_orchestrations.clear()
                await self._idle(self._wake_orchestrations, 0.05)
                continue
            self._wake_orchestrations.clear()
            seen = self.provider.changes.version
            try:
                items = await self._call(
                    self.provider.lock_next_orchestration_work_items,
                    self.worker_id,
                    self.lock_timeout,
                    min(free, self.batch_size),
                )
            except Exception:
                log.exception("Locking orchestration work items failed; retrying")
                await self._idle(self._wake_orchestrations, min(delay, self.max_poll_interval))
                delay = min(delay * 2, self.max_poll_interval)
                continue
            if not items:
                await self._idle(self._wake_orchestrations, delay, seen)
                delay = min(delay * 2, self.max_poll_interval)
                continue
            delay = 0.001
            self._orchestrations_in_flight += len(items)
            batch = asyncio.create_task(self._run_orchestration_batch(items))
            self._orchestration_batches.add(batch)
            batch.add_done_callback(self._orchestration_batch_done)

    def _orchestration_batch_done(self, batch: asyncio.Task[None]) -> None:
        self._orchestration_batches.discard(batch)
        if self._wake_orchestrations is not None:
            self._wake_orchestrations.set()  # capacity is free again

    async def _run_orchestration_batch(self, items: list[Any]) -> None:
        try:
            await self._call(self._process_and_commit, items)
        except Exception:
            log.exception("Processing orchestration work items failed")
        finally:
            self._orchestrations_in_flight -= len(items)

    def _process_and_commit(self, items: list[Any]) -> None:
        """Process a batch of work items and commit their checkpoints (on an I/O thread)."""
        steps: list[Step] = []
        for item in items:
            try:
                steps.append(self.processor.process(item))
            except Exception:
                log.exception("Orchestration step for '%s' failed; abandoning", item.instance_id)
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(item, timedelta(seconds=1))
        if not steps:
            return
        results: list[Exception | None] | None = None
        try:
            results = self.provider.complete_orchestration_work_items(
                [(step.item, step.checkpoint) for step in steps]
            )
        finally:  # every step is settled, even when the commit call itself raised
            for index, step in enumerate(steps):
                if results is not None and results[index] is None:
                    self.processor.committed(step)
                else:
                    self.processor.dropped(step)
        for step, error in zip(steps, results, strict=True):
            if isinstance(error, WorkItemLockLost):
                log.warning("Lock on '%s' was lost; its work is dropped", step.item.instance_id)
            elif error is not None:
                log.error(
                    "Committing the step of '%s' failed: %r; it will be retried",
                    step.item.instance_id,
                    error,
                )
                with contextlib.suppress(Exception):
                    self.provider.abandon_orchestration_work_item(step.item, timedelta(seconds=1))

    # -- activities -----------------------------------------------------------------------
    async def _activity_loop(self) -> None:
        assert self._wake_activities is not None
        delay = 0.001
        while not self._stopped:
            free = self.max_concurrent_activities - len(self._activities_in_flight)
            if free <= 0:
                self._wake_activities.clear()
                await self._idle(self._wake_activities, 0.05)
                continue
            self._wake_activities.clear()
            seen = self.provider.changes.version
            try:
                items = await self._call(
                    self.provider.lock_next_activity_work_items,
                    self.worker_id,
                    self.lock_timeout,
                    min(free, self.batch_size),
                )
            except Exception:
                log.exception("Locking activity work items failed; retrying")
                await self._idle(self._wake_activities, min(delay, self.max_poll_interval))
                delay = min(delay * 2, self.max_poll_interval)
                continue
            if not items:
                await self._idle(self._wake_activities, delay, seen)
                delay = min(delay * 2, self.max_poll_interval)
                continue
            delay = 0.001
            for item in items:
                task = asyncio.create_task(self._run_activity(item))
                self._activities_in_flight[task] = item
                task.add_done_callback(self._activity_done)

    def _activity_done(self, task: asyncio.Task[None]) -> None:
        self._activities_in_flight.pop(task, None)
        if self._wake_activities is not None:
            self._wake_activities.set()  # a slot is free again

    async def _run_activity(self, item: ActivityWorkItem) -> None:
        renewer = asyncio.create_task(self._keep_activity_locked(item))
        try:
            result = await self._execute_activity(item)
        except asyncio.CancelledError:
            renewer.cancel()
            with contextlib.suppress(Exception):
                await self._call(self.provider.abandon_activity_work_item, item, None)
            raise
        finally:
            renewer.cancel()
        assert self._results_ready is not None
        self._activity_results.append((item, result))
        self._results_ready.set()

    async def _keep_activity_locked(self, item: ActivityWorkItem) -> None:
        interval = max(self.lock_timeout.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._call(
                    self.provider.renew_activity_work_item_lock, item, self.lock_timeout
                )
            except WorkItemLockLost:
                log.warning(
                    "Lost the lock of activity %s; its result will be dropped", item.task.name
                )
                return
            except Exception:
                log.exception("Renewing the lock of activity %s failed", item.task.name)

    async def _execute_activity(self, item: ActivityWorkItem) -> OrchestrationMessage:
        task = item.task
        registration = self.app.activities.get(task.name)
        try:
            if registration is None:
                raise LookupError(f"No activity named {task.name!r} is registered with this worker")
            value = self.converter.loads(task.input, registration.input_type)
            ctx = ActivityContext(task.instance_id, task.execution_id, task.task_id, task.name)
            if registration.is_async:
                output = await registration.fn(ctx, value)
            else:
                assert self._loop is not None
                output = await self._loop.run_in_executor(
                    self._activity_threads, registration.fn, ctx, value
                )
            payload = self.converter.dumps(output)
            event: TaskCompleted | TaskFailed = TaskCompleted(
                task_scheduled_id=task.task_id, result=payload
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - activity failures go back to the orchestration
            event = TaskFailed(
                task_scheduled_id=task.task_id, failure=FailureDetails.from_exception(exc)
            )
        return OrchestrationMessage(
            instance_id=task.instance_id, execution_id=task.execution_id, event=event
        )

    async def _activity_result_loop(self) -> None:
        """Commit finished activities in batches (group commit)."""
        assert self._results_ready is not None and self._stopping is not None
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            batch, self._activity_results = self._activity_results, []
            if batch:
                try:
                    results = await self._call(self.provider.complete_activity_work_items, batch)
                except Exception:
                    log.exception("Committing activity results failed; they will be redelivered")
                    results = []
                for (item, _), error in zip(batch, results, strict=False):
                    if error is not None and not isinstance(error, WorkItemLockLost):
                        log.error("Committing activity %s failed: %r", item.task.name, error)
            if (
                self._stopping.is_set()
                and not self._activity_results
                and not self._activities_in_flight
            ):
                return


class Worker:
    """A synchronous face for :class:`AsyncWorker`: runs it on a background thread.

    Use as a context manager (``with ot.Worker(app, provider): ...``) or call ``start()`` and
    ``stop()``. Takes the same keyword arguments as :class:`AsyncWorker`.
    """

    def __init__(self, app: App, provider: StorageProvider, **options: Any) -> None:
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
