"""Tests with several OS processes on one task hub: competing workers, and ``kill -9``.

Threads in one process share a provider's in-process locks and caches, which can hide a
missing row lock or an acknowledgement sent before the commit. These tests open the task hub
again in child processes, so they need a way to do that: override the fixture
``provider_opener`` with a callable that makes a fresh task hub and returns a *picklable*
zero-argument callable opening it (the parent and each child call it)::

    @pytest.fixture
    def provider_opener(self, tmp_path):
        hubs = itertools.count()
        return lambda: functools.partial(MyProvider, tmp_path / f"hub-{next(hubs)}")

Without an override, or for providers that don't claim ``multi_process``, the tests are
skipped with a reason naming what is missing.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from ostinato.errors import WorkItemLockLost
from ostinato.history import EventRaised, ExecutionStarted, TaskCompleted
from ostinato.provider import (
    ActivityTask,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus

from ostinato_conformance.base import ConformanceTestBase
from ostinato_conformance.requirements import requires
from ostinato_conformance.support import (
    LONG_LOCK,
    PROMPTLY,
    create,
    event_message,
    new_record,
    payload_of_size,
    start_message,
)

#: Opens one task hub (picklable: it is sent to child processes).
Opener = Callable[[], StorageProvider]
#: Makes a fresh task hub and returns its opener.
OpenerFactory = Callable[[], Opener]

_PROCESSES = multiprocessing.get_context("spawn")
#: Competing worker processes, instances, and events per instance.
WORKERS, INSTANCES, EVENTS = 3, 12, 3
#: The custom status each competing step stores (long write transactions).
STATUS_BYTES = 1024 * 1024
#: The lock the killed process takes: when it dies holding one, it expires this soon.
DOOMED_LOCK = timedelta(seconds=2)


def _compete(opener: Opener, go: Any, stop: Any, out: Any, status_bytes: int) -> None:
    """A worker process: lock, complete and report until ``stop`` is set.

    Each step also stores a custom status of ``status_bytes`` (large: long write
    transactions, so the processes really wait for each other's).

    Each orchestration step appends its messages to history and schedules one activity per
    message that is not an activity result; each activity's result goes back to its instance.
    Reports ``("message", id)`` per consumed message and ``("task", key)`` per completed task.
    """
    provider = opener()
    worker = f"proc-{os.getpid()}"
    go.wait(60)
    task_ids = iter(range(os.getpid() * 1000, os.getpid() * 1000 + 1000))
    big_status = payload_of_size(status_bytes)
    try:
        while not stop.is_set():
            item = provider.lock_next_orchestration_work_item(worker, LONG_LOCK)
            if item is not None:
                record = item.instance
                assert record is not None
                tasks = [
                    ActivityTask(item.instance_id, record.execution_id, next(task_ids), "a")
                    for m in item.messages
                    if not isinstance(m.event, TaskCompleted)
                ]
                provider.complete_orchestration_work_item(
                    item,
                    OrchestrationCheckpoint(
                        instance=record.with_changes(
                            runtime_status=OrchestrationStatus.RUNNING,
                            history_size=record.history_size + len(item.messages),
                            custom_status=big_status,
                        ),
                        # The start first, as the core applies it (a work item's messages
                        # come in no particular order).
                        new_history=sorted(
                            (m.event for m in item.messages),
                            key=lambda event: not isinstance(event, ExecutionStarted),
                        ),
                        activity_tasks=tasks,
                    ),
                )
                for m in item.messages:
                    out.put(("message", m.message_id))
            task = provider.lock_next_activity_work_item(worker, LONG_LOCK)
            if task is not None:
                provider.complete_activity_work_item(
                    task,
                    OrchestrationMessage(
                        instance_id=task.task.instance_id,
                        execution_id=task.task.execution_id,
                        event=TaskCompleted(task_scheduled_id=task.task.task_id),
                    ),
                )
                out.put(("task", task.task.key))
            if item is None and task is None:
                time.sleep(0.01)
    except Exception as exc:
        out.put(("error", f"{worker}: {exc!r}"))
        raise
    finally:
        provider.close()
        out.put(("done", worker))


def _acknowledge(opener: Opener, out: Any) -> None:
    """Write and acknowledge, forever (until killed): each instance is created, gets an
    event, and takes one step (consuming both, scheduling an activity task); each
    acknowledgement is sent only after the call that made the write returned."""
    provider = opener()
    n = 0
    while True:
        iid = f"durable-{n}"
        n += 1
        create(provider, iid, policy=ReuseIdPolicy.ERROR_IF_EXISTS)
        out.put(("created", iid))
        provider.send_message(event_message(iid, f"for-{iid}"))
        out.put(("sent", iid))
        while True:  # until this instance's step is done (a slow step may lose its lock)
            item = provider.lock_next_orchestration_work_item("doomed", DOOMED_LOCK)
            if item is None or item.instance is None:
                time.sleep(0.01)
                continue
            record = item.instance
            try:
                provider.complete_orchestration_work_item(
                    item,
                    OrchestrationCheckpoint(
                        instance=record.with_changes(
                            runtime_status=OrchestrationStatus.RUNNING,
                            history_size=len(item.messages),
                            custom_status=f'"step of {item.instance_id}"',
                        ),
                        # The start first, as the core applies it (a work item's messages
                        # come in no particular order).
                        new_history=sorted(
                            (m.event for m in item.messages),
                            key=lambda event: not isinstance(event, ExecutionStarted),
                        ),
                        activity_tasks=[
                            ActivityTask(item.instance_id, record.execution_id, 1, "a")
                        ],
                    ),
                )
            except WorkItemLockLost:
                continue
            out.put(("stepped", item.instance_id))
            if item.instance_id == iid:
                break


def _drain_queue(out: Any, timeout: float) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    while True:
        try:
            got.append(out.get(timeout=timeout))
        except queue.Empty:
            return got


class ProviderProcessTests(ConformanceTestBase):
    """Several OS processes on one task hub (see the module docstring)."""

    @pytest.fixture
    def provider_opener(self) -> OpenerFactory | None:
        """Override: makes a fresh task hub and returns a picklable callable opening it."""
        return None

    @pytest.fixture
    def opener(self, provider_opener: OpenerFactory | None) -> Opener:
        if provider_opener is None:
            pytest.skip(
                "the test needs the task hub opened in other processes: override the "
                "`provider_opener` fixture (see ostinato_conformance.processes)"
            )
        return provider_opener()

    @requires("multi_process")
    def test_workers_in_separate_processes_commit_each_message_once(self, opener: Opener) -> None:
        """Worker processes compete for the same instances and tasks: with locks that never
        expire, every message and task is committed exactly once (a missing row lock lets
        two processes commit the same work)."""
        provider = opener()
        provider.setup()
        try:
            expected: list[str] = []
            for n in range(INSTANCES):
                record = new_record(f"race-{n}")
                start = start_message(record)
                provider.create_instance(record, start, ReuseIdPolicy.ERROR_IF_EXISTS)
                expected.append(start.message_id)
                for e in range(EVENTS):
                    message = event_message(record.instance_id, e)
                    provider.send_message(message)
                    expected.append(message.message_id)
            limit = provider.capabilities.max_payload_bytes
            status_bytes = min(STATUS_BYTES, limit) if limit is not None else STATUS_BYTES
            go, stop, out = _PROCESSES.Event(), _PROCESSES.Event(), _PROCESSES.Queue()
            children = [
                _PROCESSES.Process(target=_compete, args=(opener, go, stop, out, status_bytes))
                for _ in range(WORKERS)
            ]
            for child in children:
                child.start()
            time.sleep(0.2)
            go.set()
            per_instance = INSTANCES * (1 + EVENTS)
            reports: list[tuple[str, str]] = []
            done = 0
            deadline = time.monotonic() + 60 + 12 * PROMPTLY
            while done < WORKERS and time.monotonic() < deadline:
                try:
                    report = out.get(timeout=1)
                except queue.Empty:
                    if not any(c.is_alive() for c in children):
                        break
                    continue
                done += report[0] == "done"
                reports.append(report)
                kinds = Counter(kind for kind, _ in reports)
                if kinds["message"] >= 2 * per_instance and kinds["task"] >= per_instance:
                    time.sleep(0.2)  # (a double commit would be reported by now)
                    stop.set()
            stop.set()
            for child in children:
                child.join(30)
            reports += _drain_queue(out, 0.2)
            done = sum(kind == "done" for kind, _ in reports)
            errors = [value for kind, value in reports if kind == "error"]
            assert not errors, f"a worker process failed: {errors}"
            assert done == WORKERS, f"worker processes died: {[c.exitcode for c in children]}"
            messages = Counter(value for kind, value in reports if kind == "message")
            tasks = Counter(value for kind, value in reports if kind == "task")
            twice = {m: n for m, n in messages.items() if n > 1}
            assert not twice, f"messages committed by more than one process: {twice}"
            tasks_twice = {t: n for t, n in tasks.items() if n > 1}
            assert not tasks_twice, f"activity tasks completed more than once: {tasks_twice}"
            missing = [m for m in expected if m not in messages]
            assert not missing, f"{len(missing)} messages never committed: {missing[:5]}"
            assert len(tasks) == per_instance, (len(tasks), per_instance)
            assert len(messages) == 2 * per_instance, (len(messages), 2 * per_instance)
            for n in range(INSTANCES):
                events = provider.get_history(f"race-{n}")
                kinds = Counter(type(e).__name__ for e in events)
                assert kinds == {
                    "ExecutionStarted": 1,
                    "EventRaised": EVENTS,
                    "TaskCompleted": 1 + EVENTS,
                }, f"history of race-{n}: {kinds}"
        finally:
            provider.close()

    @requires("multi_process", "lock_expiry")
    def test_acknowledged_writes_survive_kill_9(self, opener: Opener) -> None:
        """A process is killed (SIGKILL) while it writes: every create, checkpoint and message
        whose call had returned is in storage when the task hub is opened again."""
        provider = opener()
        provider.setup()
        provider.close()
        out = _PROCESSES.Queue()
        child = _PROCESSES.Process(target=_acknowledge, args=(opener, out))
        child.start()
        acks: list[tuple[str, str]] = []
        deadline = time.monotonic() + 30 + 6 * PROMPTLY
        while sum(kind == "sent" for kind, _ in acks) < 8 and time.monotonic() < deadline:
            try:
                acks.append(out.get(timeout=1))
            except queue.Empty:
                assert child.is_alive(), f"the writing process died: {child.exitcode}"
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        acks += _drain_queue(out, 0.2)
        assert any(kind == "sent" for kind, _ in acks), f"too few writes acknowledged: {acks}"
        reopened = opener()
        try:
            stepped = {iid for kind, iid in acks if kind == "stepped"}
            sent = {iid for kind, iid in acks if kind == "sent"}
            pending: set[str] = set()
            tasks: set[str] = set()
            # (an instance the process died holding comes back when its lock expires)
            deadline = time.monotonic() + PROMPTLY + DOOMED_LOCK.total_seconds()
            while time.monotonic() < deadline and not (sent - stepped <= pending):
                item = reopened.lock_next_orchestration_work_item("survivor", LONG_LOCK)
                if item is None:
                    time.sleep(0.01)
                    continue  # (locked items stay locked: the next call hands out another)
                names = {m.event.name for m in item.messages if isinstance(m.event, EventRaised)}
                if f"efor-{item.instance_id}" in names:
                    pending.add(item.instance_id)
            while time.monotonic() < deadline and not (stepped <= tasks):
                task = reopened.lock_next_activity_work_item("survivor", LONG_LOCK)
                if task is None:
                    time.sleep(0.01)
                    continue
                tasks.add(task.task.instance_id)
            for kind, iid in acks:
                if kind != "created":
                    continue
                record = reopened.get_instance(iid)
                assert record is not None, f"acknowledged create of {iid!r} lost by kill -9"
                if iid in stepped:
                    assert (record.runtime_status, record.custom_status) == (
                        OrchestrationStatus.RUNNING,
                        f'"step of {iid}"',
                    ), f"acknowledged checkpoint of {iid!r} lost by kill -9: {record}"
                    history = reopened.get_history(iid)
                    assert [type(e) for e in history] == [ExecutionStarted, EventRaised], (
                        f"history of {iid!r} after kill -9: {history}"
                    )
            # A step the process committed but was killed before acknowledging holds the
            # event in its history instead.
            unsent = {
                iid
                for iid in sent - stepped - pending
                if f"efor-{iid}"
                not in {e.name for e in reopened.get_history(iid) if isinstance(e, EventRaised)}
            }
            assert not unsent, f"acknowledged messages lost by kill -9, for {sorted(unsent)}"
            assert stepped <= tasks, f"acknowledged activity tasks lost: {stepped - tasks}"
        finally:
            reopened.close()
