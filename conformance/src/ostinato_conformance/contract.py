"""Deterministic contract tests: one or more small tests per guarantee of the provider contract.

Subclass :class:`ProviderContractTests` (or :class:`~ostinato_conformance.ProviderConformanceTests`,
which includes it) and override the ``provider_factory`` fixture. Each test is named after
what it proves; tests that need a capability are marked with
:func:`~ostinato_conformance.requirements.requires` and skipped, with the capability named,
for providers that do not claim it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import ostinato as ot
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ostinato import history
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, InstanceNotFoundError, WorkItemLockLost
from ostinato.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskScheduled,
)
from ostinato.ids import validate_instance_id
from ostinato.provider import (
    ActivityClaim,
    ActivityTask,
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    ProviderCapabilities,
    ResultStep,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus

from ostinato_conformance.base import ConformanceTestBase
from ostinato_conformance.faults import (
    AmbiguousCommit,
    FaultInjectingProvider,
    FaultKind,
    FaultPlan,
    InjectedFault,
    describe_injected,
)
from ostinato_conformance.profiles import current_profile
from ostinato_conformance.requirements import payload_skip_reason, requires
from ostinato_conformance.support import (
    COMPLETION_TIMEOUT,
    LONG_LOCK,
    PROMPTLY,
    activity_task,
    consume,
    create,
    drain,
    event_message,
    event_names,
    lock_activity,
    lock_orchestration,
    new_record,
    payload_of_size,
    start_message,
    wait_until_consumed,
)
from ostinato_conformance.workers import (
    activity_runs,
    continue_then_wait,
    echo,
    hello_cities,
    parent_after_activity,
    parent_of_continuing_child,
    parent_of_waiting_child,
    running_worker,
    sleep_then_report,
    wait_for_go,
)

#: A lock timeout short enough to expire within a test, and the wait that outlasts it.
SHORT_LOCK = timedelta(milliseconds=150)
PAST_SHORT_LOCK = 0.25
#: How long a lock attempt that must find nothing keeps trying.
BRIEFLY = 0.05
HELLO_RESULT = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

PAYLOAD_SIZES = {
    "0B": 0,
    "45KB": 45 * 1024,
    "64KB": 64 * 1024,
    "1MB": 1024 * 1024,
    "10MB": 10 * 1024 * 1024,
}

EDGE_CASE_IDS = {
    "single-char": "a",
    "max-length-ascii": "x" * 100,
    "max-length-emoji": "\U0001f3b5" * 100,
    "cjk": "\u697d\u8b5c-\u65cb\u5f8b",
    "cyrillic-greek": "\u0438\u0434-\u03b1\u03b2\u03b3",
    "combining-mark-unnormalized": "e\u0301-cafe\u0301",
    "precomposed": "\u00e9-caf\u00e9",
    "fullwidth-and-ligature": "\uff21\ufb01",
    "right-to-left": "\u05e9\u05dc\u05d5\u05dd-\u0645\u0631\u062d\u0628\u0627",
    "spaces-inside": "with  two spaces",
    "leading-space": " lead",
    "trailing-space": "trail ",
    "quotes-and-sql": 'it\'s "quoted"; DROP TABLE x; --',
    "percent-and-plus": "%20+%2F",
    "punctuation": "a.b-c_d:e|f*g<h>i",
    "zero-width-joiner": "\U0001f469\u200d\U0001f4bb",
    "nbsp": "no\u00a0break",
    "digits-only": "0123456789",
    "at-inside": "user@example",
    "surrogate-range-astral": "\U00010348\U0001d11e",
    "noncharacter-ffff": "a\uffffb",
    "noncharacters-fffe-fdd0": "\ufffe\ufdd0\U0010ffff",
    "single-quote": "'",
    "doubled-quotes": "''a''",
    "percent": "%",
    "percent-escapes": "%25%27%0A%",
    "max-length-non-bmp-mix": ("\U0001f3b5a'%\uffff" * 20),
    "odata-keywords": "a' or PartitionKey ne '",
    "private-use": "\ue000\U000f0000",
}


def assert_same_record(got: InstanceRecord | None, expected: InstanceRecord) -> None:
    """``got`` stores ``expected`` (timestamps compared to the millisecond)."""
    assert got is not None, f"instance {expected.instance_id!r} is missing"
    for name in (
        "instance_id",
        "name",
        "execution_id",
        "runtime_status",
        "input",
        "output",
        "custom_status",
        "failure_details",
        "parent_instance_id",
        "history_size",
    ):
        assert getattr(got, name) == getattr(expected, name), (
            f"{name} did not round-trip: stored {getattr(expected, name)!r}, "
            f"read {getattr(got, name)!r}"
        )
    for name in ("created_at", "last_updated_at"):
        delta = abs(getattr(got, name) - getattr(expected, name))
        assert delta <= timedelta(milliseconds=1), f"{name} changed by {delta}"


def dumped(events: list[HistoryEvent]) -> list[str]:
    return [history.dumps(e) for e in events]


def message_ids(messages: list[OrchestrationMessage]) -> list[str]:
    return sorted(m.message_id for m in messages)


def task_result(record: InstanceRecord, item: ActivityWorkItem) -> OrchestrationMessage:
    """The result of the activity task ``item`` of ``record``'s instance: its own task id."""
    task_id = item.task.task_id
    return OrchestrationMessage(
        instance_id=record.instance_id,
        execution_id=record.execution_id,
        event=TaskCompleted(task_scheduled_id=task_id, result=json.dumps(task_id)),
    )


def run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(i)`` on ``count`` threads started together; return their exceptions."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


class ProviderContractTests(ConformanceTestBase):
    """The provider contract, one guarantee at a time, called directly and through a worker."""

    # -- basics -------------------------------------------------------------------------------
    def test_capabilities_are_declared(self, provider: StorageProvider) -> None:
        caps = provider.capabilities
        assert isinstance(caps, ProviderCapabilities)
        if caps.max_payload_bytes is not None:
            assert caps.max_payload_bytes > 0

    def test_provider_is_a_context_manager_with_an_idempotent_close(
        self, provider: StorageProvider
    ) -> None:
        with provider as entered:
            assert entered is provider
            create(provider, "before-close")
        provider.close()  # closing a closed provider does nothing
        provider.worker_stopped("a-worker-that-never-ran")
        stored = provider.get_instance("before-close")  # used again: it reopens
        assert stored is not None and stored.instance_id == "before-close"

    def test_setup_is_idempotent(self, provider: StorageProvider) -> None:
        create(provider, "survives-setup")
        provider.setup()
        assert provider.get_instance("survives-setup") is not None

    def test_new_task_hub_is_empty(self, provider: StorageProvider) -> None:
        assert provider.query_instances(InstanceQuery()).items == []
        assert provider.lock_next_orchestration_work_item("w", LONG_LOCK) is None
        assert provider.lock_next_activity_work_item("w", LONG_LOCK) is None

    def test_created_instance_round_trips_with_its_start_message(
        self, provider: StorageProvider
    ) -> None:
        record = create(provider, "i1", input='{"a": 1}')
        assert_same_record(provider.get_instance("i1"), record)
        item = lock_orchestration(provider)
        assert item is not None and item.instance_id == "i1"
        assert [type(m.event) for m in item.messages] == [ExecutionStarted]
        assert item.messages[0].execution_id == record.execution_id
        assert item.instance is not None and item.instance.execution_id == record.execution_id

    # -- at-least-once activities ---------------------------------------------------------------
    def _running_with_activities(self, provider: StorageProvider, count: int) -> InstanceRecord:
        record = create(provider, "act")
        item = lock_orchestration(provider)
        assert item is not None
        running = record.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=1)
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=running,
                new_history=[m.event for m in item.messages],
                activity_tasks=[activity_task(record, n, json.dumps(n)) for n in range(count)],
            ),
        )
        return running

    def test_activity_task_is_handed_out_until_completed(self, provider: StorageProvider) -> None:
        record = self._running_with_activities(provider, 1)
        item = lock_activity(provider)
        assert item is not None and item.task == activity_task(record, 0, "0")
        provider.complete_activity_work_item(
            item,
            OrchestrationMessage(
                instance_id=record.instance_id,
                execution_id=record.execution_id,
                event=TaskCompleted(task_scheduled_id=0, result='"done"'),
            ),
        )
        assert lock_activity(provider, timeout=BRIEFLY) is None, "a completed task came back"
        result = lock_orchestration(provider)
        assert result is not None
        assert [type(m.event) for m in result.messages] == [TaskCompleted]

    def test_abandoned_activity_task_is_handed_out_again(self, provider: StorageProvider) -> None:
        record = self._running_with_activities(provider, 1)
        first = lock_activity(provider)
        assert first is not None
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None
        provider.abandon_activity_work_item(first)
        again = lock_activity(provider, "worker-2")
        assert again is not None, "the abandoned activity task was lost"
        assert again.task == activity_task(record, 0, "0")

    @requires("lock_expiry")
    def test_activity_task_is_handed_out_again_after_its_lock_expires(
        self, provider: StorageProvider
    ) -> None:
        self._running_with_activities(provider, 1)
        first = lock_activity(provider, "crashed-worker", SHORT_LOCK)
        assert first is not None
        time.sleep(PAST_SHORT_LOCK)
        again = lock_activity(provider, "worker-2")
        assert again is not None, "the activity task of a crashed worker was never handed out again"
        assert again.task == first.task
        with pytest.raises(WorkItemLockLost):
            provider.complete_activity_work_item(
                first,
                OrchestrationMessage(instance_id="act", event=TaskCompleted(task_scheduled_id=0)),
            )

    @requires("lock_expiry")
    def test_activity_delivery_count_counts_each_hand_out_of_the_task(
        self, provider: StorageProvider
    ) -> None:
        """``dequeue_count`` is the item's own delivery count (the core's poison policy reads
        it): 1 on first delivery, one more after each expired lock, per task, not per batch;
        an abandoned delivery is given back."""
        self._running_with_activities(provider, 2)
        first = provider.lock_next_activity_work_items("worker-1", SHORT_LOCK, 2)
        assert sorted(item.dequeue_count for item in first) == [1, 1]
        crashed, fine = first
        provider.renew_activity_work_item_lock(fine, LONG_LOCK)
        time.sleep(PAST_SHORT_LOCK)  # crashed's lock expires
        provider.complete_activity_work_item(
            fine,
            OrchestrationMessage(
                instance_id=fine.task.instance_id,
                execution_id=fine.task.execution_id,
                event=TaskCompleted(task_scheduled_id=fine.task.task_id),
            ),
        )
        again = lock_activity(provider, "worker-2")
        assert again is not None and again.task == crashed.task
        assert again.dequeue_count == 2, "the second delivery of a task must count 2"
        provider.abandon_activity_work_item(again)
        third = lock_activity(provider, "worker-3")
        assert third is not None and third.dequeue_count == 2, "an abandon must not count"

    def test_dead_letters_keep_a_moved_history_and_put_it_back(
        self, provider: StorageProvider
    ) -> None:
        """``dead_letter_history`` moves a locked instance's history aside as a dead letter
        (listed, shown, put back by ``retry_dead_letter``, removed by ``delete``)."""
        create(provider, "i1")
        first = lock_orchestration(provider)
        assert first is not None
        consume(provider, first)
        provider.send_message(event_message("i1", 1))
        item = lock_orchestration(provider)
        assert item is not None
        before = dumped(provider.get_history("i1"))
        letter = provider.dead_letter_history(item, "the conformance suite's reason")
        if letter is None:
            assert provider.list_dead_letters() == []
            pytest.skip("the provider keeps no dead letters (it never holds undecodable records)")
        assert (letter.kind, letter.instance_id) == (ot.DeadLetterKind.HISTORY, "i1")
        assert letter.reason == "the conformance suite's reason"
        assert provider.get_history("i1") == [], "the moved history is still there"
        assert provider.list_dead_letters() == [letter]
        assert provider.list_dead_letters("other") == []
        assert provider.get_dead_letter(letter.id) == letter
        assert provider.retry_dead_letter(letter.id)
        assert dumped(provider.get_history("i1")) == before, "retry did not restore the history"
        assert provider.get_dead_letter(letter.id) is None
        assert not provider.retry_dead_letter(letter.id)
        assert not provider.delete_dead_letter(letter.id)
        again = provider.dead_letter_history(item, "again")
        assert again is not None and provider.delete_dead_letter(again.id)
        assert provider.list_dead_letters() == []
        consume(provider, item)
        with pytest.raises(WorkItemLockLost):
            provider.dead_letter_history(item, "after the lock was released")

    def test_dead_letters_keep_a_moved_activity_task_until_its_instance_is_purged(
        self, provider: StorageProvider
    ) -> None:
        """``dead_letter_activity_task`` moves a locked task aside and enqueues the result in
        one step; ``retry_dead_letter`` puts the task back; purging the instance deletes its
        dead letters."""
        record = self._running_with_activities(provider, 1)
        item = lock_activity(provider)
        assert item is not None
        result = OrchestrationMessage(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            event=TaskCompleted(task_scheduled_id=0, result='"moved"'),
        )
        letter = provider.dead_letter_activity_task(item, "the conformance suite's reason", result)
        if letter is None:
            assert provider.list_dead_letters() == []
            pytest.skip("the provider keeps no dead letters (it never holds undecodable records)")
        assert (letter.kind, letter.instance_id) == (ot.DeadLetterKind.ACTIVITY_TASK, "act")
        assert ActivityTask.from_json(letter.body) == item.task
        assert lock_activity(provider, timeout=0) is None, "the moved task is still queued"
        delivered = lock_orchestration(provider)
        assert delivered is not None
        assert [m.event for m in delivered.messages] == [result.event], "the result is lost"
        consume(provider, delivered)
        with pytest.raises(WorkItemLockLost):
            provider.dead_letter_activity_task(item, "after its lock was released", result)
        assert provider.retry_dead_letter(letter.id)
        back = lock_activity(provider)
        assert back is not None and back.task == item.task, "retry did not restore the task"
        again = provider.dead_letter_activity_task(back, "again", result)
        assert again is not None and provider.list_dead_letters("act") == [again]
        delivered = lock_orchestration(provider)
        assert delivered is not None
        consume(provider, delivered, runtime_status=OrchestrationStatus.FAILED)
        assert provider.purge_instance("act", [OrchestrationStatus.FAILED])
        assert provider.list_dead_letters() == [], "purge left the instance's dead letters"

    @requires("lock_expiry")
    def test_orchestration_delivery_count_restarts_after_a_completion(
        self, provider: StorageProvider
    ) -> None:
        """An instance's work item counts deliveries since its last completed step: abandons
        and expiries add one, an abandon gives its delivery back, a completion starts again from
        1."""
        create(provider, "i1")
        item = lock_orchestration(provider, "crashed-worker", SHORT_LOCK)
        assert item is not None and item.dequeue_count == 1
        time.sleep(PAST_SHORT_LOCK)
        again = lock_orchestration(provider, "worker-2")
        assert again is not None and again.dequeue_count == 2
        provider.abandon_orchestration_work_item(again)
        again = lock_orchestration(provider, "worker-2")
        assert again is not None and again.dequeue_count == 2, "an abandon must not count"
        provider.abandon_orchestration_work_item(again, timedelta(milliseconds=10))
        again = lock_orchestration(provider, "worker-2")
        assert again is not None and again.dequeue_count == 2, "an abandon must not count"
        provider.send_message(event_message("i1", 1))  # arrives while locked
        consume(provider, again)
        after = lock_orchestration(provider, "worker-3")
        assert after is not None and event_names(after.messages) == ["e1"]
        assert after.dequeue_count == 1, "a completed step must not count against the next"

    def test_every_activity_task_is_handed_out(self, provider: StorageProvider) -> None:
        self._running_with_activities(provider, 20)
        seen = []
        while (item := lock_activity(provider, timeout=BRIEFLY)) is not None:
            seen.append(item.task.task_id)
            assert len(seen) <= 20, f"locked tasks were handed out again: {sorted(seen)}"
        assert sorted(seen) == list(range(20))

    @requires("lock_expiry")
    def test_activity_runs_at_least_once_when_its_result_is_lost(
        self, provider: StorageProvider
    ) -> None:
        faulty = FaultInjectingProvider(provider, FaultPlan())
        crash_first_result = _CrashFirst(
            faulty,
            # The call the worker commits results with (the first result's step is computed
            # from the cached run when the provider takes eager steps).
            "complete_activities_and_steps"
            if _worker_takes_eager_steps(provider)
            else "complete_activities_and_claim"
            if provider.capabilities.eager_orchestrations
            else "complete_activity_work_item",
        )
        with running_worker(faulty, lock_timeout=SHORT_LOCK):
            client = ot.Client(faulty)
            iid = client.schedule_new_orchestration(hello_cities)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert state.output == HELLO_RESULT, describe_injected(faulty)
        assert crash_first_result.fired
        runs = sum(n for (i, _), n in activity_runs.items() if i == iid)
        assert runs >= 4, f"3 activities ran {runs} times although one result was lost"

    # -- eager activities: tasks claimed by the commit that enqueues them ----------------------
    def _claiming(
        self,
        provider: StorageProvider,
        count: int,
        max_count: int,
        lock_timeout: timedelta = LONG_LOCK,
    ) -> tuple[InstanceRecord, list[Exception | None], list[ActivityWorkItem]]:
        """Run ``act`` to a step that schedules ``count`` tasks, committed with a claim of up
        to ``max_count``; the record, the per-item results and the tasks handed to ``start``
        (checked to have been handed over once, before the call returned)."""
        record = create(provider, "act")
        item = lock_orchestration(provider)
        assert item is not None
        running = record.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=1)
        handed: list[list[ActivityWorkItem]] = []
        claim = ActivityClaim("worker-1", lock_timeout, max_count, handed.append)
        errors = provider.complete_and_claim_activities(
            [
                (
                    item,
                    OrchestrationCheckpoint(
                        instance=running,
                        new_history=[m.event for m in item.messages],
                        activity_tasks=[
                            activity_task(record, n, json.dumps(n)) for n in range(count)
                        ],
                    ),
                )
            ],
            claim,
        )
        return running, errors, _handed_once(handed, "tasks")

    def test_claimed_activity_tasks_are_locked_for_the_committing_worker(
        self, provider: StorageProvider
    ) -> None:
        record, errors, claimed = self._claiming(provider, 3, 2)
        assert errors == [None]
        if provider.capabilities.eager_activities:
            assert len(claimed) == 2, f"claimed {len(claimed)} of 3 tasks with room for 2"
        assert len(claimed) <= 2, f"claimed {len(claimed)} tasks with room for 2"
        expected = {n: activity_task(record, n, json.dumps(n)) for n in range(3)}
        for item in claimed:
            assert item.task == expected[item.task.task_id], "a claimed task did not round-trip"
            assert item.dequeue_count == 1, "a claimed task is a first delivery"
            assert item.locked_until > utcnow(), "a claimed task's lock is already over"
        polled = []
        while (other := lock_activity(provider, "worker-2", timeout=BRIEFLY)) is not None:
            polled.append(other)
        ids = sorted(i.task.task_id for i in claimed + polled)
        assert ids == [0, 1, 2], f"tasks handed out (claimed and polled): {ids}, each once"
        for item in claimed + polled:
            provider.complete_activity_work_item(item, task_result(record, item))
        results = lock_orchestration(provider)
        assert results is not None
        got = sorted(m.event.task_scheduled_id for m in results.messages)  # type: ignore[attr-defined]
        assert got == [0, 1, 2], f"results delivered: {got}"

    def test_claimed_activity_task_is_renewed_and_abandoned_like_a_polled_one(
        self, provider: StorageProvider
    ) -> None:
        _, _, claimed = self._claiming(provider, 1, 1)
        if not claimed:
            assert not provider.capabilities.eager_activities, "no task was claimed"
            return
        (item,) = claimed
        provider.renew_activity_work_item_lock(item, LONG_LOCK)
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None
        provider.abandon_activity_work_item(item)
        again = lock_activity(provider, "worker-2")
        assert again is not None, "an abandoned claimed task was lost"
        assert again.task == item.task and again.dequeue_count == 1

    @requires("lock_expiry")
    def test_claimed_activity_task_is_handed_out_again_after_its_lock_expires(
        self, provider: StorageProvider
    ) -> None:
        record, _, claimed = self._claiming(provider, 1, 1, SHORT_LOCK)
        if not claimed:
            assert not provider.capabilities.eager_activities, "no task was claimed"
            return
        (stale,) = claimed
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None, (
            "a claimed task was handed to another worker while its lock held"
        )
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_activity(provider, "worker-2")
        assert fresh is not None, "the claimed task of a crashed worker was never handed out again"
        assert fresh.task == stale.task and fresh.dequeue_count == 2
        with pytest.raises(WorkItemLockLost):
            provider.complete_activity_work_item(stale, task_result(record, stale))
        provider.complete_activity_work_item(fresh, task_result(record, fresh))

    @requires("lock_expiry")
    def test_claiming_commit_of_lost_work_items_claims_only_the_held_ones_tasks(
        self, provider: StorageProvider
    ) -> None:
        """A claiming batch with a work item whose lock was taken over and one still held:
        only the held item's tasks are enqueued and claimed."""
        create(provider, "lost")
        stale = lock_orchestration(provider, "slow-worker", SHORT_LOCK)
        assert stale is not None
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_orchestration(provider, "worker-2")
        assert fresh is not None and fresh.instance_id == "lost"
        kept = create(provider, "kept")
        held = lock_orchestration(provider, "slow-worker")
        assert held is not None and held.instance_id == "kept"
        lost_record = new_record("lost")
        handed: list[list[ActivityWorkItem]] = []
        errors = provider.complete_and_claim_activities(
            [
                (
                    stale,
                    OrchestrationCheckpoint(
                        instance=None, activity_tasks=[activity_task(lost_record, 7, "7")]
                    ),
                ),
                (
                    held,
                    OrchestrationCheckpoint(
                        instance=None, activity_tasks=[activity_task(kept, 8, "8")]
                    ),
                ),
            ],
            ActivityClaim("slow-worker", LONG_LOCK, 10, handed.append),
        )
        assert isinstance(errors[0], WorkItemLockLost) and errors[1] is None, errors
        claimed = [item for batch in handed for item in batch]
        assert all(item.task.instance_id == "kept" for item in claimed), (
            "a task of a work item whose lock was lost was claimed"
        )
        polled = []
        while (other := lock_activity(provider, "worker-3", timeout=BRIEFLY)) is not None:
            polled.append(other)
        ids = sorted((i.task.instance_id, i.task.task_id) for i in claimed + polled)
        assert ids == [("kept", 8)], f"tasks enqueued: {ids} (only the held item's)"

    # -- eager orchestrations: instances claimed by the commit of their activity results -------
    def _results_claiming(
        self,
        provider: StorageProvider,
        pairs: list[tuple[ActivityWorkItem, OrchestrationMessage]],
        max_count: int,
        lock_timeout: timedelta = LONG_LOCK,
    ) -> tuple[list[Exception | None], list[OrchestrationWorkItem]]:
        """Complete ``pairs`` with a claim of up to ``max_count`` instances; the per-item
        results and the instances handed to ``start`` (checked to have been handed over
        once, before the call returned)."""
        handed: list[list[OrchestrationWorkItem]] = []
        claim = OrchestrationClaim("worker-1", lock_timeout, max_count, handed.append)
        errors = provider.complete_activities_and_claim(pairs, claim)
        return errors, _handed_once(handed, "instances")

    def _two_instances_with_a_task_each(
        self, provider: StorageProvider
    ) -> list[tuple[InstanceRecord, ActivityWorkItem]]:
        running = []
        for instance_id in ("one", "two"):
            record = create(provider, instance_id)
            item = lock_orchestration(provider)
            assert item is not None and item.instance_id == instance_id
            record = record.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=1)
            provider.complete_orchestration_work_item(
                item,
                OrchestrationCheckpoint(
                    instance=record,
                    new_history=[m.event for m in item.messages],
                    activity_tasks=[activity_task(record, 0, "0")],
                ),
            )
            task = lock_activity(provider)
            assert task is not None and task.task.instance_id == instance_id
            running.append((record, task))
        return running

    def test_claimed_instances_are_locked_for_the_worker_that_committed_their_results(
        self, provider: StorageProvider
    ) -> None:
        running = self._two_instances_with_a_task_each(provider)
        errors, claimed = self._results_claiming(
            provider, [(task, task_result(record, task)) for record, task in running], 1
        )
        assert errors == [None, None]
        if provider.capabilities.eager_orchestrations:
            assert len(claimed) == 1, f"claimed {len(claimed)} of 2 idle instances, room for 1"
        assert len(claimed) <= 1, f"claimed {len(claimed)} instances with room for 1"
        records = {record.instance_id: record for record, _ in running}
        for item in claimed:
            assert [type(m.event) for m in item.messages] == [TaskCompleted]
            assert item.dequeue_count == 1, "a claimed instance is a first delivery"
            assert_same_record(item.instance, records[item.instance_id])
        polled = []
        while (other := lock_orchestration(provider, "worker-2", timeout=BRIEFLY)) is not None:
            polled.append(other)
        ids = sorted(item.instance_id for item in claimed + polled)
        assert ids == ["one", "two"], f"instances handed out (claimed and polled): {ids}"
        for item in claimed + polled:
            consume(provider, item, runtime_status=OrchestrationStatus.COMPLETED)
        for record, _ in running:
            stored = provider.get_instance(record.instance_id)
            assert stored is not None and stored.runtime_status is OrchestrationStatus.COMPLETED

    def test_claiming_results_leaves_an_instance_another_worker_holds(
        self, provider: StorageProvider
    ) -> None:
        ((record, task), _) = self._two_instances_with_a_task_each(provider)
        provider.send_message(event_message(record.instance_id, 1))
        holder = lock_orchestration(provider, "worker-2")
        assert holder is not None and holder.instance_id == record.instance_id
        errors, claimed = self._results_claiming(provider, [(task, task_result(record, task))], 5)
        assert errors == [None]
        assert claimed == [], "an instance another worker holds was claimed"
        consume(provider, holder)
        after = lock_orchestration(provider, "worker-3")
        assert after is not None and [type(m.event) for m in after.messages] == [TaskCompleted], (
            "the result for a held instance was not handed out once its holder finished"
        )

    @requires("lock_expiry")
    def test_claimed_instance_is_handed_out_again_after_its_lock_expires(
        self, provider: StorageProvider
    ) -> None:
        ((record, task), _) = self._two_instances_with_a_task_each(provider)
        _, claimed = self._results_claiming(
            provider, [(task, task_result(record, task))], 1, SHORT_LOCK
        )
        if not claimed:
            assert not provider.capabilities.eager_orchestrations, "no instance was claimed"
            return
        (stale,) = claimed
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None, (
            "a claimed instance was handed to another worker while its lock held"
        )
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_orchestration(provider, "worker-2")
        assert fresh is not None and fresh.instance_id == stale.instance_id
        assert fresh.dequeue_count == 2, "the expired claim was not counted as a delivery"
        with pytest.raises(WorkItemLockLost):
            consume(provider, stale)
        consume(provider, fresh)

    # -- eager steps: an activity's result committed with the step computed from it ----------
    def _stepping(
        self, provider: StorageProvider, count: int
    ) -> tuple[InstanceRecord, list[HistoryEvent], list[ActivityWorkItem]]:
        """Run ``act`` to a step that schedules ``count`` tasks and lock them all; the stored
        record (the basis of steps computed now), the history and the tasks by task id."""
        self._running_with_activities(provider, count)
        basis = provider.get_instance("act")
        assert basis is not None
        tasks: list[ActivityWorkItem] = []
        while len(tasks) < count and (task := lock_activity(provider)) is not None:
            tasks.append(task)
        assert len(tasks) == count, f"locked {len(tasks)} of {count} tasks"
        return basis, provider.get_history("act"), sorted(tasks, key=lambda t: t.task.task_id)

    def _step(
        self,
        basis: InstanceRecord,
        activity: ActivityWorkItem,
        schedules: tuple[int, ...] = (),
        *,
        keep_record: bool = False,
        **changes: object,
    ) -> ResultStep:
        """The step a worker computes on ``basis`` from ``activity``'s result: it records the
        result, schedules the tasks numbered ``schedules`` and updates the record with
        ``changes`` (with ``keep_record``, its checkpoint leaves the record as it is)."""
        result = task_result(basis, activity)
        events: list[HistoryEvent] = [OrchestratorStarted(), result.event]
        events += [
            TaskScheduled(task_id=n, name="conformance_activity", input=json.dumps(n))
            for n in schedules
        ]
        record = basis.with_changes(
            history_size=basis.history_size + len(events),
            custom_status=json.dumps(f"after task {activity.task.task_id}"),
            last_updated_at=utcnow(),
            **changes,
        )
        checkpoint = OrchestrationCheckpoint(
            instance=None if keep_record else record,
            new_history=events,
            activity_tasks=[activity_task(basis, n, json.dumps(n)) for n in schedules],
        )
        return ResultStep(activity, result, basis, checkpoint)

    def _steps(
        self, provider: StorageProvider, batch: list[ResultStep], max_count: int | None = None
    ) -> tuple[list[bool | Exception], list[ActivityWorkItem]]:
        """Commit ``batch`` (with a claim of up to ``max_count`` tasks, if given); the
        per-item outcomes and the tasks handed to ``start`` (checked to have been handed
        over once, before the call returned)."""
        handed: list[list[ActivityWorkItem]] = []
        claim = None
        if max_count is not None:
            claim = ActivityClaim("worker-1", LONG_LOCK, max_count, handed.append)
        outcomes = provider.complete_activities_and_steps(batch, claim)
        return outcomes, _handed_once(handed, "tasks")

    def _assert_discarded(
        self, provider: StorageProvider, step: ResultStep, history_before: list[HistoryEvent]
    ) -> None:
        """``step`` was not applied: history and record are as before, its task is done and
        none of the tasks it schedules was enqueued."""
        assert dumped(provider.get_history("act")) == dumped(history_before), (
            "a discarded step changed the history"
        )
        assert_same_record(provider.get_instance("act"), step.basis)
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None, (
            "a discarded step's task was enqueued, or the completed task handed out again"
        )
        with pytest.raises(WorkItemLockLost):
            provider.complete_activity_work_item(step.activity, step.result)

    @requires("eager_steps")
    def test_step_that_still_stands_is_applied_in_place_of_its_result(
        self, provider: StorageProvider
    ) -> None:
        basis, before, (task,) = self._stepping(provider, 1)
        step = self._step(basis, task, (1,))
        signal = provider.changes
        version = signal.version
        outcomes, claimed = self._steps(provider, [step])
        assert outcomes == [True], f"a step that stands was not applied: {outcomes}"
        assert claimed == []
        assert signal.version > version, "an applied step did not signal its change"
        assert dumped(provider.get_history("act")) == dumped(before + step.checkpoint.new_history)
        assert step.checkpoint.instance is not None
        assert_same_record(provider.get_instance("act"), step.checkpoint.instance)
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None, (
            "the result of an applied step was enqueued as well"
        )
        scheduled = lock_activity(provider, "worker-2")
        assert scheduled is not None, "the task the applied step scheduled was not enqueued"
        assert scheduled.task == activity_task(basis, 1, json.dumps(1))
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None, (
            "the completed task was handed out again"
        )
        with pytest.raises(WorkItemLockLost):
            provider.complete_activity_work_item(task, step.result)
        provider.complete_activity_work_item(scheduled, task_result(basis, scheduled))
        after = lock_orchestration(provider)
        assert after is not None and [type(m.event) for m in after.messages] == [TaskCompleted]
        assert after.messages[0].event.task_scheduled_id == 1  # type: ignore[attr-defined]
        assert after.dequeue_count == 1, "an applied step must count as a completed step"
        assert_same_record(after.instance, step.checkpoint.instance)

    @requires("eager_steps")
    def test_applied_steps_messages_are_handed_out(self, provider: StorageProvider) -> None:
        """An applied step's messages are enqueued as a checkpoint's are: one to its own
        instance is handed out at once, one to another instance too."""
        basis, _, (task,) = self._stepping(provider, 1)
        step = self._step(basis, task)
        step.checkpoint.messages.extend(
            [event_message("act", "self"), event_message("elsewhere", "sent")]
        )
        outcomes, _ = self._steps(provider, [step])
        assert outcomes == [True], f"a step that stands was not applied: {outcomes}"
        delivered = {}
        while (item := lock_orchestration(provider, timeout=BRIEFLY)) is not None:
            delivered[item.instance_id] = [type(m.event).__name__ for m in item.messages]
            delivered[item.instance_id] += event_names(item.messages)
        assert delivered == {
            "act": ["EventRaised", "eself"],
            "elsewhere": ["EventRaised", "esent"],
        }, f"handed out: {delivered}"

    @requires("eager_steps")
    def test_applied_steps_tasks_are_claimed_for_the_committing_worker(
        self, provider: StorageProvider
    ) -> None:
        basis, _, (task,) = self._stepping(provider, 1)
        outcomes, claimed = self._steps(provider, [self._step(basis, task, (1, 2))], 1)
        assert outcomes == [True]
        assert len(claimed) == 1, f"claimed {len(claimed)} of 2 tasks with room for 1"
        expected = {n: activity_task(basis, n, json.dumps(n)) for n in (1, 2)}
        (item,) = claimed
        assert item.task == expected[item.task.task_id], "a claimed task did not round-trip"
        assert item.dequeue_count == 1, "a claimed task is a first delivery"
        assert item.locked_until > utcnow(), "a claimed task's lock is already over"
        polled = []
        while (other := lock_activity(provider, "worker-2", timeout=BRIEFLY)) is not None:
            polled.append(other)
        ids = sorted(i.task.task_id for i in claimed + polled)
        assert ids == [1, 2], f"tasks handed out (claimed and polled): {ids}, each once"
        for done in claimed + polled:
            provider.complete_activity_work_item(done, task_result(basis, done))
        results = lock_orchestration(provider)
        assert results is not None
        got = sorted(m.event.task_scheduled_id for m in results.messages)  # type: ignore[attr-defined]
        assert got == [1, 2], f"results delivered: {got}"

    def test_step_is_discarded_while_another_work_item_holds_the_instance(
        self, provider: StorageProvider
    ) -> None:
        basis, before, (task,) = self._stepping(provider, 1)
        provider.send_message(event_message("act", 1))
        holder = lock_orchestration(provider, "worker-2")
        assert holder is not None and event_names(holder.messages) == ["e1"]
        step = self._step(basis, task, (1,))
        outcomes, claimed = self._steps(provider, [step], 5)
        assert outcomes == [False], "a step was applied while another work item held its instance"
        assert claimed == [], "a discarded step's task was claimed"
        self._assert_discarded(provider, step, before)
        assert lock_orchestration(provider, "worker-3", timeout=BRIEFLY) is None, (
            "an instance another worker holds was handed out"
        )
        consume(provider, holder)
        after = lock_orchestration(provider, "worker-3")
        assert after is not None and [type(m.event) for m in after.messages] == [TaskCompleted], (
            "the result of a discarded step was not handed out once the holder finished"
        )

    def test_step_is_discarded_while_a_message_of_the_instance_is_visible(
        self, provider: StorageProvider
    ) -> None:
        basis, before, (task,) = self._stepping(provider, 1)
        provider.send_message(event_message("act", 1))
        step = self._step(basis, task)
        outcomes, _ = self._steps(provider, [step])
        assert outcomes == [False], "a step was applied although a message it never saw waited"
        self._assert_discarded(provider, step, before)
        item = lock_orchestration(provider)
        assert item is not None
        kinds = sorted(type(m.event).__name__ for m in item.messages)
        assert kinds == ["EventRaised", "TaskCompleted"], f"delivered together: {kinds}"

    @pytest.mark.parametrize("stale", ["history_size", "execution_id"])
    def test_step_computed_from_a_stale_record_is_discarded(
        self, provider: StorageProvider, stale: str
    ) -> None:
        basis, before, (task,) = self._stepping(provider, 1)
        if stale == "history_size":
            old = basis.with_changes(history_size=0)  # the record before the first step
        else:
            old = basis.with_changes(execution_id=new_record("act").execution_id)
        step = self._step(old, task)
        outcomes, _ = self._steps(provider, [step])
        assert outcomes == [False], f"a step computed from a record of another {stale} applied"
        assert dumped(provider.get_history("act")) == dumped(before)
        assert_same_record(provider.get_instance("act"), basis)
        item = lock_orchestration(provider)
        assert item is not None and [type(m.event) for m in item.messages] == [TaskCompleted]

    def test_step_of_an_activity_whose_lock_was_lost_writes_nothing(
        self, provider: StorageProvider
    ) -> None:
        """A batch with a step whose activity lock was lost (the task was given back and
        another worker holds it now) and one still held: the lost item writes nothing and
        does not stop the held item's step."""
        basis, before, (lost_task, held_task) = self._stepping(provider, 2)
        provider.abandon_activity_work_item(lost_task)
        retaken = lock_activity(provider, "worker-3")
        assert retaken is not None and retaken.task.task_id == lost_task.task.task_id
        lost = self._step(basis, lost_task, (5,))
        held = self._step(basis, held_task)
        outcomes, _ = self._steps(provider, [lost, held], 5)
        assert isinstance(outcomes[0], WorkItemLockLost), outcomes
        eager = provider.capabilities.eager_steps
        assert outcomes[1] is eager, f"the held item's step (standing): {outcomes[1]}"
        expected = before + held.checkpoint.new_history if eager else before
        assert dumped(provider.get_history("act")) == dumped(expected)
        if eager:
            assert lock_orchestration(provider, timeout=BRIEFLY) is None, (
                "the result of an activity whose lock was lost was enqueued"
            )
        else:
            item = lock_orchestration(provider)
            assert item is not None
            got = [m.event.task_scheduled_id for m in item.messages]  # type: ignore[attr-defined]
            assert got == [1], f"results delivered: {got} (only the held item's)"
            consume(provider, item, history=[])
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None, (
            "a task was enqueued by a lost item, or a still locked task was handed out"
        )
        provider.complete_activity_work_item(retaken, task_result(basis, retaken))
        item = lock_orchestration(provider)
        assert item is not None
        got = [m.event.task_scheduled_id for m in item.messages]  # type: ignore[attr-defined]
        assert got == [0], f"results delivered: {got} (the lost item's, now completed)"

    @pytest.mark.parametrize("first", ["updates-record", "keeps-record"])
    def test_only_the_first_step_of_an_instance_in_a_batch_is_applied(
        self, provider: StorageProvider, first: str
    ) -> None:
        """Of two steps computed from one record, only the first can apply; a first step
        that leaves the record as it is still stops the second."""
        basis, before, (t0, t1) = self._stepping(provider, 2)
        one = self._step(basis, t0, keep_record=first == "keeps-record")
        two = self._step(basis, t1)
        outcomes, _ = self._steps(provider, [one, two])
        eager = provider.capabilities.eager_steps
        assert outcomes == [eager, False], f"outcomes: {outcomes}"
        expected = before + one.checkpoint.new_history if eager else before
        assert dumped(provider.get_history("act")) == dumped(expected)
        item = lock_orchestration(provider)
        assert item is not None
        got = sorted(m.event.task_scheduled_id for m in item.messages)  # type: ignore[attr-defined]
        assert got == ([1] if eager else [0, 1]), f"results delivered: {got}"

    @requires("eager_steps")
    def test_steps_of_different_instances_in_one_batch_are_each_applied(
        self, provider: StorageProvider
    ) -> None:
        running = self._two_instances_with_a_task_each(provider)
        steps = []
        for record, task in running:
            stored = provider.get_instance(record.instance_id)
            assert stored is not None
            steps.append(self._step(stored, task, runtime_status=OrchestrationStatus.COMPLETED))
        with provider.changes.watching("two") as status_may_have_changed:
            status_may_have_changed.clear()
            outcomes, _ = self._steps(provider, steps)
            assert outcomes == [True, True], f"outcomes: {outcomes}"
            assert status_may_have_changed.is_set(), (
                "a step that changed the instance's status did not wake its watchers"
            )
        for step in steps:
            assert step.checkpoint.instance is not None
            assert_same_record(
                provider.get_instance(step.basis.instance_id), step.checkpoint.instance
            )
        assert lock_orchestration(provider, timeout=BRIEFLY) is None, "a result was enqueued"

    @requires("eager_steps")
    def test_message_not_yet_visible_leaves_the_step_standing(
        self, provider: StorageProvider
    ) -> None:
        """A timer that is not due yet does not stop a step, and still fires at its time."""
        basis, before, (task,) = self._stepping(provider, 1)
        due = utcnow() + timedelta(milliseconds=500)
        provider.send_message(event_message("act", "timer", visible_at=due))
        step = self._step(basis, task)
        outcomes, _ = self._steps(provider, [step])
        if utcnow() < due:
            assert outcomes == [True], f"a timer not yet due stopped the step: {outcomes}"
        if outcomes != [True]:
            # This machine was too slow to commit before the timer was due.
            item = lock_orchestration(provider)
            assert item is not None
            kinds = sorted(type(m.event).__name__ for m in item.messages)
            assert kinds == ["EventRaised", "TaskCompleted"], f"delivered: {kinds}"
            return
        assert dumped(provider.get_history("act")) == dumped(before + step.checkpoint.new_history)
        fired = lock_orchestration(provider, timeout=PROMPTLY + 1)
        woke = utcnow()
        assert fired is not None, "the timer was lost by the applied step"
        assert event_names(fired.messages) == ["etimer"], f"delivered: {fired.messages}"
        assert woke >= due, f"the timer fired {due - woke} early"

    def test_default_step_commit_applies_no_step(self, provider: StorageProvider) -> None:
        """A provider without ``eager_steps`` (or the default it inherits) applies no step,
        even one that stands: every result is enqueued as ``complete_activity_work_items``
        enqueues it."""
        basis, before, (task,) = self._stepping(provider, 1)
        step = self._step(basis, task, (1,))
        if provider.capabilities.eager_steps:
            outcomes = StorageProvider.complete_activities_and_steps(provider, [step])
        else:
            outcomes = provider.complete_activities_and_steps([step])
        assert outcomes == [False], f"a step was applied without eager_steps: {outcomes}"
        self._assert_discarded(provider, step, before)
        item = lock_orchestration(provider)
        assert item is not None and [type(m.event) for m in item.messages] == [TaskCompleted]

    # -- exactly-once state changes -----------------------------------------------------------
    def test_complete_applies_the_whole_checkpoint(self, provider: StorageProvider) -> None:
        create(provider, "other")
        other_start = lock_orchestration(provider)
        assert other_start is not None
        consume(provider, other_start, runtime_status=OrchestrationStatus.RUNNING)
        record = create(provider, "main")
        item = lock_orchestration(provider)
        assert item is not None and item.instance_id == "main"
        new_history: list[HistoryEvent] = [
            item.messages[0].event,
            OrchestratorStarted(),
            TaskScheduled(task_id=0, name="conformance_activity", input='"x"'),
        ]
        updated = record.with_changes(
            runtime_status=OrchestrationStatus.RUNNING,
            custom_status='"busy"',
            history_size=3,
            last_updated_at=utcnow(),
        )
        timer = event_message("main", "timer", visible_at=utcnow() + timedelta(hours=1))
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=updated,
                new_history=new_history,
                activity_tasks=[activity_task(record, 0, '"x"')],
                messages=[event_message("other", "hi"), timer],
            ),
        )
        assert_same_record(provider.get_instance("main"), updated)
        assert dumped(provider.get_history("main")) == dumped(new_history)
        activity = lock_activity(provider)
        assert activity is not None and activity.task == activity_task(record, 0, '"x"')
        outbound = lock_orchestration(provider)
        assert outbound is not None and outbound.instance_id == "other"
        assert event_names(outbound.messages) == ["ehi"]
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None

    def test_checkpoint_without_a_record_appends_to_the_history(
        self, provider: StorageProvider
    ) -> None:
        """``instance=None`` leaves the record's status as it is and still appends the
        step's events after the earlier ones; a later step appends after those."""
        create(provider, "i1")
        first = lock_orchestration(provider)
        assert first is not None
        consume(provider, first, runtime_status=OrchestrationStatus.RUNNING)
        provider.send_message(event_message("i1", 1))
        second = lock_orchestration(provider)
        assert second is not None and event_names(second.messages) == ["e1"]
        appended: list[HistoryEvent] = [second.messages[0].event, OrchestratorStarted()]
        provider.complete_orchestration_work_item(
            second, OrchestrationCheckpoint(instance=None, new_history=appended)
        )
        expected = [first.messages[0].event, *appended]
        assert dumped(provider.get_history("i1")) == dumped(expected)
        stored = provider.get_instance("i1")
        assert stored is not None and stored.runtime_status is OrchestrationStatus.RUNNING
        provider.send_message(event_message("i1", 2))
        third = lock_orchestration(provider)
        assert third is not None and event_names(third.messages) == ["e2"]
        consume(provider, third)
        expected.append(third.messages[0].event)
        assert dumped(provider.get_history("i1")) == dumped(expected)

    def test_complete_consumes_exactly_the_messages_of_the_work_item(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        provider.send_message(event_message("i1", 1))  # arrives while locked
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        later = lock_orchestration(provider)
        assert later is not None, "a message that arrived during the lock was consumed"
        assert event_names(later.messages) == ["e1"]

    @pytest.mark.parametrize("release", ["complete", "abandon"])
    def test_message_behind_a_later_timer_is_handed_out_once_the_lock_is_released(
        self, provider: StorageProvider, release: str
    ) -> None:
        """An event and a far timer arrive while the instance is locked: once the lock is
        released (completed or abandoned), the event is handed out at once, not with the
        timer (an instance becomes claimable at its *earliest* remaining message)."""
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        far = utcnow() + timedelta(hours=1)
        provider.send_message(event_message("i1", "timer", visible_at=far))
        provider.send_message(event_message("i1", "now"))
        if release == "complete":
            consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        else:
            provider.abandon_orchestration_work_item(item)
        later = lock_orchestration(provider)
        assert later is not None, f"after {release}, the event waits behind the far timer"
        names = event_names(later.messages)
        assert "enow" in names and "etimer" not in names, names

    def test_completing_twice_raises_lock_lost_and_changes_nothing(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        stored = provider.get_instance("i1")
        events = dumped(provider.get_history("i1"))
        assert stored is not None
        with pytest.raises(WorkItemLockLost):
            provider.complete_orchestration_work_item(
                item,
                OrchestrationCheckpoint(
                    instance=stored.with_changes(runtime_status=OrchestrationStatus.COMPLETED),
                    new_history=[OrchestratorStarted()],
                    activity_tasks=[activity_task(stored, 9)],
                    messages=[event_message("i1", "stale")],
                ),
            )
        assert_same_record(provider.get_instance("i1"), stored)
        assert dumped(provider.get_history("i1")) == events
        assert lock_activity(provider, timeout=BRIEFLY) is None
        assert lock_orchestration(provider, timeout=BRIEFLY) is None

    def test_orchestration_steps_are_applied_exactly_once_end_to_end(
        self, provider: StorageProvider
    ) -> None:
        client = ot.Client(provider)
        with running_worker(provider):
            iid = client.schedule_new_orchestration(hello_cities)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert state.output == HELLO_RESULT
        kinds = Counter(type(e).__name__ for e in provider.get_history(iid))
        assert kinds["ExecutionStarted"] == 1
        assert kinds["TaskScheduled"] == 3
        assert kinds["TaskCompleted"] == 3
        assert kinds["ExecutionCompleted"] == 1

    # -- no lost message ------------------------------------------------------------------------
    def test_abandoned_work_item_messages_are_handed_out_again(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        provider.send_message(event_message("i1", 1))
        provider.send_message(event_message("i1", 2))
        item = lock_orchestration(provider)
        assert item is not None and len(item.messages) == 3
        provider.send_message(event_message("i1", 3))  # arrives while locked
        provider.abandon_orchestration_work_item(item)
        again = lock_orchestration(provider, "worker-2")
        assert again is not None, "abandoned messages were lost"
        got = set(message_ids(again.messages))
        assert set(message_ids(item.messages)) <= got, "an abandoned message was lost"
        delivered = event_names(again.messages)
        if "e3" not in delivered:
            consume(provider, again)
            rest = lock_orchestration(provider)
            assert rest is not None and event_names(rest.messages) == ["e3"]

    def test_abandon_with_delay_hides_messages_for_the_delay(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        before = utcnow()
        provider.abandon_orchestration_work_item(item, timedelta(milliseconds=300))
        again = lock_orchestration(provider, "worker-2")
        after = utcnow()
        assert again is not None, "messages abandoned with a delay never came back"
        assert after - before >= timedelta(milliseconds=300), "they came back before the delay"

    def test_abandon_delay_of_seconds_is_exact_to_the_millisecond(
        self, provider: StorageProvider
    ) -> None:
        """A delay of several seconds is as exact as a short one: a store that delays in whole
        seconds must still hide the messages for all of 2.6 s, not 2."""
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        due = utcnow() + timedelta(milliseconds=2600)
        provider.abandon_orchestration_work_item(item, timedelta(milliseconds=2600))
        again = lock_orchestration(provider, "worker-2", timeout=PROMPTLY + 3)
        woke = utcnow()
        assert again is not None, "messages abandoned with a delay never came back"
        assert message_ids(again.messages) == message_ids(item.messages)
        assert woke >= due, f"they came back {due - woke} before the delay ended"

    @requires("lock_expiry")
    def test_expired_lock_hands_the_messages_out_again(self, provider: StorageProvider) -> None:
        create(provider, "i1")
        first = lock_orchestration(provider, "crashed-worker", SHORT_LOCK)
        assert first is not None
        time.sleep(PAST_SHORT_LOCK)
        again = lock_orchestration(provider, "worker-2")
        assert again is not None, "the messages of an expired lock were never handed out again"
        assert message_ids(again.messages) == message_ids(first.messages)

    def test_no_message_is_lost_or_duplicated_with_concurrent_senders_and_workers(
        self, provider: StorageProvider
    ) -> None:
        instances = [f"inbox-{n}" for n in range(4)]
        for iid in instances:
            create(provider, iid)
        senders, per_sender = current_profile().concurrency, 25
        consumed: list[str] = []
        done = threading.Event()

        def send(i: int) -> None:
            for n in range(per_sender):
                provider.send_message(event_message(instances[n % 4], f"{i}-{n}"))

        def work(i: int) -> None:
            while not done.is_set():
                item = provider.lock_next_orchestration_work_item(f"worker-{i}", LONG_LOCK)
                if item is None:
                    time.sleep(0.001)
                    continue
                consume(provider, item)
                consumed.extend(event_names(item.messages))

        workers = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in workers:
            t.start()
        try:
            assert not run_threads(senders, send)
            expected = sorted(f"e{i}-{n}" for i in range(senders) for n in range(per_sender))
            deadline = time.monotonic() + 10
            while len(consumed) < len(expected) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            done.set()
            for t in workers:
                t.join()
        duplicated = [name for name, n in Counter(consumed).items() if n > 1]
        assert not duplicated, f"messages consumed twice: {duplicated[:5]}"
        missing = sorted(set(expected) - set(consumed))
        assert not missing, f"{len(missing)} messages were lost, e.g. {missing[:5]}"

    @requires("lock_expiry")
    @pytest.mark.parametrize("kind", [FaultKind.CRASH_BEFORE, FaultKind.CRASH_AFTER])
    @pytest.mark.parametrize("call", [1, 2, 3, 4, 5, 6, 7, 8])
    def test_no_message_is_lost_when_the_worker_crashes_between_provider_calls(
        self, provider: StorageProvider, kind: FaultKind, call: int
    ) -> None:
        calls = _hello_cities_calls(provider)
        if call > calls:
            pytest.skip(f"HelloCities makes {calls} worker calls on this provider, not {call}")
        faulty = FaultInjectingProvider(provider, FaultPlan({call: kind}))
        client = ot.Client(faulty)
        with running_worker(faulty, lock_timeout=SHORT_LOCK):
            iid = client.schedule_new_orchestration(hello_cities)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert faulty.injected, f"the run made fewer than {call} worker calls"
        assert state.output == HELLO_RESULT, describe_injected(faulty)

    # -- a checkpoint that failed after its sends ----------------------------------------------
    def test_retried_step_does_not_fail_its_running_sub_orchestration(
        self, provider: StorageProvider
    ) -> None:
        """The parent's step fails after its child's start went out; its retry starts the
        child again, which must count as a duplicate (not as another instance of that id)."""
        faulty = FaultInjectingProvider(provider, FaultPlan())
        faulty.send_then_raise_once(_starts_a_sub_orchestration)
        client = ot.Client(faulty)
        with running_worker(faulty):
            iid = client.schedule_new_orchestration(parent_of_waiting_child)
            child = f"{iid}-child"
            self._wait_for_child_started_by(client, iid, child)
            client.raise_orchestration_event(child, "go", data="went")
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert [e.method for e in faulty.injected] == ["complete_orchestration_work_item"]
        assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        assert state.output == "went"
        kinds = Counter(type(e).__name__ for e in provider.get_history(child))
        assert kinds["ExecutionStarted"] == 1 and kinds["ExecutionCompleted"] == 1

    def test_retried_step_gets_the_result_of_its_finished_sub_orchestration(
        self, provider: StorageProvider
    ) -> None:
        """The child finishes (and answers) before the parent's failed step is retried: the
        answer finds no open task and is dropped; the retried start brings it back."""
        faulty = FaultInjectingProvider(provider, FaultPlan())
        faulty.send_then_raise_once(_starts_a_sub_orchestration)
        client = ot.Client(faulty)
        with running_worker(faulty):
            iid = client.schedule_new_orchestration(parent_after_activity, input="v")
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert [e.method for e in faulty.injected] == ["complete_orchestration_work_item"]
        assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        assert state.output == ["v", "v"]
        kinds = Counter(type(e).__name__ for e in provider.get_history(f"{iid}-child"))
        assert kinds["ExecutionStarted"] == 1, "the child ran twice"

    def test_retried_continue_as_new_step_starts_the_same_next_execution(
        self, provider: StorageProvider
    ) -> None:
        """A continue-as-new step fails after its sends; its retry must send the very same
        next start (one execution id), so a non-transactional store never runs two."""
        faulty = FaultInjectingProvider(provider, FaultPlan())
        started: list[str] = []

        def continues(checkpoint: OrchestrationCheckpoint) -> bool:
            ids = _next_starts(checkpoint)
            started.extend(ids)
            return bool(ids)

        faulty.send_then_raise_once(continues)
        # After it fired, watch the retried step's completions too.
        original = faulty.complete_orchestration_work_item

        def complete(item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint) -> None:
            if started:
                started.extend(_next_starts(checkpoint))
            original(item, checkpoint)

        faulty.complete_orchestration_work_item = complete  # type: ignore[method-assign]
        client = ot.Client(faulty)
        with running_worker(faulty):
            iid = client.schedule_new_orchestration(continue_then_wait)
            client.raise_orchestration_event(iid, "next")
            self._wait_for_running_execution(client, iid, lambda e: e in started)
            client.raise_orchestration_event(iid, "go", data="went")
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert [e.method for e in faulty.injected] == ["complete_orchestration_work_item"]
        assert len(started) >= 2, "the failed continue-as-new step was not retried"
        assert len(set(started)) == 1, f"the retry started another execution: {started}"
        assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        assert state.output == "went"
        record = provider.get_instance(iid)
        assert record is not None and record.execution_id == started[0]

    def test_duplicate_start_of_a_child_that_continued_as_new_is_a_duplicate(
        self, provider: StorageProvider
    ) -> None:
        """A retried parent step's start reaches its child after the child continued as new:
        the child's chain keeps running and answers the parent (no 'already exists')."""
        client = ot.Client(provider)
        with running_worker(provider):
            iid = client.schedule_new_orchestration(parent_of_continuing_child)
            child = f"{iid}-child"
            first = self._first_start_of(client, child)
            assert first.parent is not None and first.parent.instance_id == iid
            client.raise_orchestration_event(child, "next")
            self._wait_for_running_execution(client, child, lambda e: e != first.execution_id)
            provider.send_message(OrchestrationMessage(instance_id=child, event=first))
            # An event sent after the duplicate, seen in the history: the duplicate was handled
            # by then (not in the step that completes the child, whose answer would mask it).
            client.raise_orchestration_event(child, "noise")
            self._wait_for_event_in_history(client, child, "noise")
            client.raise_orchestration_event(child, "go", data="went")
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
            assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
            assert state.output == "went"
            done = client.wait_for_orchestration_completion(child, timeout=COMPLETION_TIMEOUT)
        assert done.runtime_status is OrchestrationStatus.COMPLETED
        starts = [e for e in provider.get_history(child) if isinstance(e, ExecutionStarted)]
        assert len(starts) == 1 and starts[0].execution_id != first.execution_id

    def _first_start_of(self, client: ot.Client, instance_id: str) -> ExecutionStarted:
        """The ``ExecutionStarted`` of the instance's first execution, once it runs."""
        deadline = time.monotonic() + COMPLETION_TIMEOUT
        while time.monotonic() < deadline:
            state = client.get_orchestration_state(instance_id)
            if state is not None and state.runtime_status is OrchestrationStatus.RUNNING:
                for event in client.get_orchestration_history(instance_id):
                    if isinstance(event, ExecutionStarted):
                        return event
            time.sleep(0.02)
        raise AssertionError(f"{instance_id!r} did not start")

    def _wait_for_event_in_history(self, client: ot.Client, instance_id: str, name: str) -> None:
        deadline = time.monotonic() + COMPLETION_TIMEOUT
        while time.monotonic() < deadline:
            if any(
                isinstance(e, EventRaised) and e.name == name
                for e in client.get_orchestration_history(instance_id)
            ):
                return
            time.sleep(0.02)
        raise AssertionError(f"{instance_id!r} did not record the event {name!r}")

    def _wait_for_running_execution(
        self, client: ot.Client, instance_id: str, accept: Callable[[str | None], bool]
    ) -> None:
        """Until the instance runs (its history started) an execution whose id ``accept``s."""
        deadline = time.monotonic() + COMPLETION_TIMEOUT
        while time.monotonic() < deadline:
            state = client.get_orchestration_state(instance_id)
            if (
                state is not None
                and state.runtime_status is OrchestrationStatus.RUNNING
                and accept(state.execution_id)
                and any(
                    isinstance(e, ExecutionStarted)
                    for e in client.get_orchestration_history(instance_id)
                )
            ):
                return
            time.sleep(0.02)
        raise AssertionError(f"{instance_id!r} did not continue as new")

    def _wait_for_child_started_by(self, client: ot.Client, parent: str, child: str) -> None:
        """Until the child runs and the parent's retried step has recorded starting it."""
        deadline = time.monotonic() + COMPLETION_TIMEOUT
        while time.monotonic() < deadline:
            state = client.get_orchestration_state(child)
            recorded = any(
                type(e).__name__ == "SubOrchestrationInstanceCreated"
                for e in client.get_orchestration_history(parent)
            )
            running = state is not None and state.runtime_status is OrchestrationStatus.RUNNING
            if running and recorded:
                return
            time.sleep(0.02)
        raise AssertionError(f"{child!r} did not start, or {parent!r} did not record it")

    # -- one owner ------------------------------------------------------------------------------
    def test_locked_instance_is_not_handed_to_another_worker(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None
        provider.send_message(event_message("i1", 1))
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None, (
            "a new message made a locked instance available to a second worker"
        )

    def test_locked_activity_task_is_not_handed_to_another_worker(
        self, provider: StorageProvider
    ) -> None:
        self._running_with_activities(provider, 1)
        assert lock_activity(provider) is not None
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None

    @requires("lock_expiry")
    def test_stale_worker_gets_lock_lost_after_its_lock_expired_and_was_taken(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        stale = lock_orchestration(provider, "slow-worker", SHORT_LOCK)
        assert stale is not None
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_orchestration(provider, "worker-2")
        assert fresh is not None
        assert stale.instance is not None
        with pytest.raises(WorkItemLockLost):
            consume(provider, stale, runtime_status=OrchestrationStatus.COMPLETED)
        with pytest.raises(WorkItemLockLost):
            provider.abandon_orchestration_work_item(stale)
        with pytest.raises(WorkItemLockLost):
            provider.renew_orchestration_work_item_lock(stale, LONG_LOCK)
        assert lock_orchestration(provider, "worker-3", timeout=BRIEFLY) is None, (
            "the stale worker's calls released the new owner's lock"
        )
        consume(provider, fresh, runtime_status=OrchestrationStatus.RUNNING)
        stored = provider.get_instance("i1")
        assert stored is not None and stored.runtime_status is OrchestrationStatus.RUNNING
        assert len(provider.get_history("i1")) == 1, "both workers committed the work item"

    @requires("lock_expiry")
    def test_stale_activity_worker_gets_lock_lost(self, provider: StorageProvider) -> None:
        record = self._running_with_activities(provider, 1)
        stale = lock_activity(provider, "slow-worker", SHORT_LOCK)
        assert stale is not None
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_activity(provider, "worker-2")
        assert fresh is not None
        result = OrchestrationMessage(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            event=TaskCompleted(task_scheduled_id=0, result='"r"'),
        )
        with pytest.raises(WorkItemLockLost):
            provider.complete_activity_work_item(stale, result)
        with pytest.raises(WorkItemLockLost):
            provider.renew_activity_work_item_lock(stale, LONG_LOCK)
        provider.complete_activity_work_item(fresh, result)
        results = lock_orchestration(provider)
        assert results is not None and len(results.messages) == 1, "both workers committed"

    # -- batches mixing held and lost locks ------------------------------------------------------
    @requires("lock_expiry")
    def test_mixed_activity_batch_applies_only_the_items_still_locked(
        self, provider: StorageProvider
    ) -> None:
        """A batch with a task whose lock expired and was taken over, and a task still held:
        the first gets WorkItemLockLost, the second is applied, and the worker that took the
        first over still holds it (the batch touched nothing of it)."""
        record = self._running_with_activities(provider, 2)
        stale = lock_activity(provider, "slow-worker", SHORT_LOCK)
        held = lock_activity(provider, "slow-worker")
        assert stale is not None and held is not None
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_activity(provider, "worker-2")
        assert fresh is not None and fresh.task == stale.task

        outcomes = provider.complete_activity_work_items(
            [(stale, task_result(record, stale)), (held, task_result(record, held))]
        )
        assert len(outcomes) == 2 and isinstance(outcomes[0], WorkItemLockLost), outcomes
        assert outcomes[1] is None, outcomes
        provider.complete_activity_work_item(fresh, task_result(record, fresh))
        item = lock_orchestration(provider)
        assert item is not None
        ids = sorted(m.event.task_scheduled_id for m in item.messages)  # type: ignore[attr-defined]
        assert ids == [0, 1], f"results delivered: {ids} (each task once)"

    @requires("lock_expiry")
    def test_mixed_orchestration_batch_applies_only_the_items_still_locked(
        self, provider: StorageProvider
    ) -> None:
        """A batch with an instance whose lock expired and was taken over, and one still
        held: the first gets WorkItemLockLost and changes nothing, the second is applied."""
        create(provider, "i1")
        create(provider, "i2")
        stale = provider.lock_next_orchestration_work_items("slow-worker", SHORT_LOCK, 1)[0]
        held = lock_orchestration(provider, "slow-worker")
        assert held is not None and held.instance_id != stale.instance_id
        time.sleep(PAST_SHORT_LOCK)
        fresh = lock_orchestration(provider, "worker-2")
        assert fresh is not None and fresh.instance_id == stale.instance_id

        def checkpoint(item: OrchestrationWorkItem, status: str) -> OrchestrationCheckpoint:
            assert item.instance is not None
            return OrchestrationCheckpoint(
                instance=item.instance.with_changes(
                    runtime_status=OrchestrationStatus.RUNNING,
                    history_size=len(item.messages),
                    custom_status=json.dumps(status),
                ),
                new_history=[m.event for m in item.messages],
            )

        outcomes = provider.complete_orchestration_work_items(
            [(stale, checkpoint(stale, "stale")), (held, checkpoint(held, "held"))]
        )
        assert len(outcomes) == 2 and isinstance(outcomes[0], WorkItemLockLost), outcomes
        assert outcomes[1] is None, outcomes
        provider.complete_orchestration_work_item(fresh, checkpoint(fresh, "fresh"))
        for item, status in ((fresh, "fresh"), (held, "held")):
            stored = provider.get_instance(item.instance_id)
            assert stored is not None and stored.custom_status == json.dumps(status), stored
            assert len(provider.get_history(item.instance_id)) == 1

    @requires("lock_expiry")
    def test_renewed_lock_outlives_its_first_timeout(self, provider: StorageProvider) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider, "worker-1", SHORT_LOCK)
        assert item is not None
        first_deadline = item.locked_until
        provider.renew_orchestration_work_item_lock(item, LONG_LOCK)
        assert item.locked_until > first_deadline
        time.sleep(PAST_SHORT_LOCK)
        assert lock_orchestration(provider, "worker-2", timeout=BRIEFLY) is None
        consume(provider, item)

    @requires("lock_expiry")
    def test_renewed_activity_lock_outlives_its_first_timeout(
        self, provider: StorageProvider
    ) -> None:
        record = self._running_with_activities(provider, 1)
        item = lock_activity(provider, "worker-1", SHORT_LOCK)
        assert item is not None
        first_deadline = item.locked_until
        provider.renew_activity_work_item_lock(item, LONG_LOCK)
        assert item.locked_until > first_deadline
        time.sleep(PAST_SHORT_LOCK)
        assert lock_activity(provider, "worker-2", timeout=BRIEFLY) is None, (
            "the renewed activity lock expired on its first timeout"
        )
        provider.complete_activity_work_item(
            item,
            OrchestrationMessage(
                instance_id=record.instance_id,
                execution_id=record.execution_id,
                event=TaskCompleted(task_scheduled_id=0, result='"r"'),
            ),
        )

    def test_each_message_is_committed_by_exactly_one_worker_under_lock_races(
        self, provider: StorageProvider
    ) -> None:
        instances = [f"race-{n}" for n in range(3)]
        for iid in instances:
            create(provider, iid)
            for n in range(10):
                provider.send_message(event_message(iid, f"{iid}-{n}"))
        committed: list[str] = []
        expected = 3 * 11
        timeout = timedelta(milliseconds=5) if provider.capabilities.lock_expiry else LONG_LOCK

        def race(i: int) -> None:
            deadline = time.monotonic() + 10
            while len(committed) < expected and time.monotonic() < deadline:
                item = provider.lock_next_orchestration_work_item(f"racer-{i}", timeout)
                if item is None:
                    time.sleep(0.001)
                    continue
                time.sleep(0.004 * (i % 3))
                try:
                    consume(provider, item)
                except WorkItemLockLost:
                    continue
                committed.extend(m.message_id for m in item.messages)

        assert not run_threads(current_profile().concurrency, race)
        twice = [m for m, n in Counter(committed).items() if n > 1]
        assert not twice, f"{len(twice)} messages were committed by two workers"
        assert len(committed) == expected, f"{expected - len(committed)} messages were lost"

    # -- timers ---------------------------------------------------------------------------------
    def test_delayed_message_is_not_handed_out_before_visible_at(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        due = utcnow() + timedelta(milliseconds=300)
        provider.send_message(event_message("i1", "timer", visible_at=due))
        provider.send_message(event_message("i1", "now"))
        first = lock_orchestration(provider)
        assert first is not None
        if utcnow() < due:
            assert event_names(first.messages) == ["enow"], "a timer fired early"
        consume(provider, first)
        if "etimer" in event_names(first.messages):
            return  # this machine was too slow to see the gap; nothing fired early
        fired = lock_orchestration(provider)
        woke = utcnow()
        assert fired is not None, "the delayed message never arrived"
        assert event_names(fired.messages) == ["etimer"]
        assert woke >= due, f"the timer fired {due - woke} early"

    def test_timer_is_not_handed_out_before_visible_at_to_the_millisecond(
        self, provider: StorageProvider
    ) -> None:
        """``visible_at`` is exact below a second: a store that delays in whole seconds (a
        queue's visibility timeout) must still hold a 1.7 s timer until its due time."""
        create(provider, "i1")
        item = lock_orchestration(provider)
        assert item is not None
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        due = utcnow() + timedelta(milliseconds=1700)
        provider.send_message(event_message("i1", "timer", visible_at=due))
        fired = lock_orchestration(provider, timeout=PROMPTLY + 2)
        woke = utcnow()
        assert fired is not None, "the timer never fired"
        assert event_names(fired.messages) == ["etimer"]
        assert woke >= due, f"the timer fired {due - woke} early"

    def test_delayed_start_waits_for_its_time(self, provider: StorageProvider) -> None:
        record = new_record("later")
        due = utcnow() + timedelta(milliseconds=250)
        provider.create_instance(record, start_message(record, due), ReuseIdPolicy.REPLACE_TERMINAL)
        item = lock_orchestration(provider)
        woke = utcnow()
        assert item is not None, "the scheduled start never arrived"
        assert woke >= due, f"the scheduled start was handed out {due - woke} early"

    def test_durable_timer_never_fires_early_end_to_end(self, provider: StorageProvider) -> None:
        client = ot.Client(provider)
        with running_worker(provider):
            iid = client.schedule_new_orchestration(sleep_then_report, input=200)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        due, woke = (datetime.fromisoformat(t) for t in state.output)
        assert woke >= due, f"the timer fired {due - woke} early"

    # -- a terminal instance never runs again ---------------------------------------------------
    def _finished(self, provider: StorageProvider, client: ot.Client, terminate: bool) -> str:
        iid = client.schedule_new_orchestration(wait_for_go, instance_id="finished")
        client.wait_for_orchestration_start(iid, timeout=COMPLETION_TIMEOUT)
        if terminate:
            client.terminate_orchestration(iid, output="stopped")
        else:
            client.raise_orchestration_event(iid, "go", data="first")
        client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        return iid

    @pytest.mark.parametrize("ending", ["completed", "terminated"])
    def test_terminal_instance_never_runs_again(
        self, provider: StorageProvider, ending: str
    ) -> None:
        client = ot.Client(provider)
        with running_worker(provider):
            iid = self._finished(provider, client, terminate=ending == "terminated")
            before = client.get_orchestration_state(iid)
            events = dumped(provider.get_history(iid))
            client.raise_orchestration_event(iid, "go", data="second")
            client.resume_orchestration(iid)
            client.terminate_orchestration(iid, output="again")
            client.raise_orchestration_event(iid, "go", data="third")
            assert wait_until_consumed(provider), "the messages for a finished instance stayed"
        after = client.get_orchestration_state(iid)
        assert before is not None and after is not None
        assert after.runtime_status is before.runtime_status
        assert after.serialized_output == before.serialized_output
        assert dumped(provider.get_history(iid)) == events, "a finished instance ran again"

    # -- ambiguous commits: the write committed, the call raised --------------------------------
    def test_ambiguous_client_writes_change_no_result(self, provider: StorageProvider) -> None:
        """A create and an event whose calls committed and then raised (a connection reset
        after the commit): the caller's retry of the create is refused as a duplicate, the
        event is delivered once, and the result is what it would have been."""
        faulty = FaultInjectingProvider(
            provider, FaultPlan(ambiguous_client_writes=frozenset({1, 3}))
        )
        client = ot.Client(faulty)
        with running_worker(faulty):
            with pytest.raises(AmbiguousCommit):
                client.schedule_new_orchestration(wait_for_go, instance_id="ambiguous")
            with pytest.raises(InstanceAlreadyExistsError):
                client.schedule_new_orchestration(wait_for_go, instance_id="ambiguous")
            with pytest.raises(AmbiguousCommit):
                client.raise_orchestration_event("ambiguous", "go", data=7)
            state = client.wait_for_orchestration_completion(
                "ambiguous", timeout=COMPLETION_TIMEOUT
            )
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, describe_injected(faulty)
        assert state.output == 7
        kinds = Counter(type(e).__name__ for e in provider.get_history("ambiguous"))
        assert (kinds["ExecutionStarted"], kinds["EventRaised"]) == (1, 1), kinds

    @requires("lock_expiry")
    def test_ambiguous_completions_change_no_result(self, provider: StorageProvider) -> None:
        """Every kind of worker call commits and then raises once (lock claims stay held by
        nobody until they expire): HelloCities still gives its result, each step once."""
        last = _hello_cities_calls(provider)
        calls = sorted({1, 2, 3, (last + 2) // 2, last})
        plans = [FaultPlan({n: FaultKind.AMBIGUOUS_COMMIT}) for n in calls]
        client = ot.Client(provider)
        ids = []
        for n, plan in enumerate(plans):
            faulty = FaultInjectingProvider(provider, plan)
            with running_worker(faulty, lock_timeout=timedelta(milliseconds=300)):
                iid = ot.Client(faulty).schedule_new_orchestration(
                    hello_cities, instance_id=f"ambiguous-{n}"
                )
                state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
            assert state.output == HELLO_RESULT, describe_injected(faulty)
            assert faulty.injected, "no fault was injected"
            ids.append(iid)
        for iid in ids:
            kinds = Counter(type(e).__name__ for e in provider.get_history(iid))
            assert (kinds["TaskScheduled"], kinds["TaskCompleted"]) == (3, 3), (iid, kinds)
            assert kinds["ExecutionCompleted"] == 1, (iid, kinds)

    # -- events for missing or finished instances -------------------------------------------------
    def test_event_for_a_missing_instance_raises_instance_not_found(
        self, provider: StorageProvider
    ) -> None:
        client = ot.Client(provider)
        with pytest.raises(InstanceNotFoundError):
            client.raise_orchestration_event("no-such-instance", "go")
        with pytest.raises(InstanceNotFoundError):
            client.terminate_orchestration("no-such-instance")
        assert provider.get_instance("no-such-instance") is None

    def test_event_for_a_finished_instance_is_accepted_and_discarded(
        self, provider: StorageProvider
    ) -> None:
        client = ot.Client(provider)
        with running_worker(provider):
            iid = self._finished(provider, client, terminate=False)
            length = len(provider.get_history(iid))
            client.raise_orchestration_event(iid, "go", data="late")  # no error
            assert wait_until_consumed(provider), "the event for a finished instance stayed"
        state = client.get_orchestration_state(iid)
        assert state is not None and state.output == "first"
        assert len(provider.get_history(iid)) == length

    # -- reuse-id policy ------------------------------------------------------------------------
    @pytest.mark.parametrize("status", [OrchestrationStatus.PENDING, OrchestrationStatus.RUNNING])
    def test_create_of_an_active_instance_raises_and_changes_nothing(
        self, provider: StorageProvider, status: OrchestrationStatus
    ) -> None:
        record = create(provider, "i1", status=status)
        for policy in (ReuseIdPolicy.REPLACE_TERMINAL, ReuseIdPolicy.ERROR_IF_EXISTS):
            with pytest.raises(InstanceAlreadyExistsError):
                create(provider, "i1", policy=policy)
        assert_same_record(provider.get_instance("i1"), record)
        item = lock_orchestration(provider)
        assert item is not None and len(item.messages) == 1
        assert item.messages[0].execution_id == record.execution_id

    def _completed(self, provider: StorageProvider, instance_id: str) -> InstanceRecord:
        create(provider, instance_id)
        item = lock_orchestration(provider)
        assert item is not None
        consume(provider, item, runtime_status=OrchestrationStatus.COMPLETED)
        provider.send_message(event_message(instance_id, "late"))
        stored = provider.get_instance(instance_id)
        assert stored is not None
        return stored

    def test_create_replaces_a_finished_instance_with_its_history_and_messages(
        self, provider: StorageProvider
    ) -> None:
        self._completed(provider, "i1")
        fresh = create(provider, "i1")
        assert_same_record(provider.get_instance("i1"), fresh)
        assert provider.get_history("i1") == []
        item = lock_orchestration(provider)
        assert item is not None
        assert [m.execution_id for m in item.messages] == [fresh.execution_id], (
            "messages of the replaced instance survived"
        )

    def test_error_if_exists_refuses_a_finished_instance(self, provider: StorageProvider) -> None:
        old = self._completed(provider, "i1")
        with pytest.raises(InstanceAlreadyExistsError):
            create(provider, "i1", policy=ReuseIdPolicy.ERROR_IF_EXISTS)
        assert_same_record(provider.get_instance("i1"), old)

    def test_create_instances_reports_each_request_and_writes_the_rest(
        self, provider: StorageProvider
    ) -> None:
        active = create(provider, "taken", status=OrchestrationStatus.RUNNING)
        records = [new_record(f"bulk-{n}") for n in range(40)]
        again = new_record("bulk-3")
        policy = ReuseIdPolicy.REPLACE_TERMINAL
        requests = [(r, start_message(r), policy) for r in records]
        taken = new_record("taken")
        requests[10:10] = [(taken, start_message(taken), policy)]
        requests.append((again, start_message(again), policy))
        results = provider.create_instances(requests)
        assert len(results) == len(requests)
        assert isinstance(results[10], InstanceAlreadyExistsError)
        assert isinstance(results[-1], InstanceAlreadyExistsError), "a repeated id was created"
        assert [r for i, r in enumerate(results) if i not in (10, len(results) - 1)] == [None] * 40
        for record in records:
            assert_same_record(provider.get_instance(record.instance_id), record)
        assert_same_record(provider.get_instance("taken"), active)
        started = Counter(
            m.instance_id for m in drain(provider) if isinstance(m.event, ExecutionStarted)
        )
        assert started == Counter({**{r.instance_id: 1 for r in records}, "taken": 1})

    def test_replace_any_replaces_an_active_instance(self, provider: StorageProvider) -> None:
        create(provider, "i1", status=OrchestrationStatus.RUNNING)
        provider.send_message(event_message("i1", "old"))
        fresh = create(provider, "i1", policy=ReuseIdPolicy.REPLACE_ANY)
        assert_same_record(provider.get_instance("i1"), fresh)
        item = lock_orchestration(provider)
        assert item is not None
        assert [m.execution_id for m in item.messages] == [fresh.execution_id]

    def test_replacing_an_instance_takes_the_lock_from_the_worker_holding_it(
        self, provider: StorageProvider
    ) -> None:
        create(provider, "i1", status=OrchestrationStatus.RUNNING)
        old = lock_orchestration(provider, "old-worker")
        assert old is not None
        fresh = create(provider, "i1", policy=ReuseIdPolicy.REPLACE_ANY)
        with pytest.raises(WorkItemLockLost):
            consume(provider, old, runtime_status=OrchestrationStatus.COMPLETED)
        assert_same_record(provider.get_instance("i1"), fresh)
        assert provider.get_history("i1") == []
        item = lock_orchestration(provider, "new-worker")
        assert item is not None, "the new instance's start stayed locked by the old worker"
        assert [m.execution_id for m in item.messages] == [fresh.execution_id]

    def test_replaced_instance_is_handed_out_at_once_while_the_old_worker_holds_it(
        self, provider: StorageProvider
    ) -> None:
        """A replace ends the lock of the worker holding the old run at once: the new run is
        handed out before that worker calls again (by the same provider object), not when
        the old lock would have expired, and the old worker's calls then raise."""
        create(provider, "i1", status=OrchestrationStatus.RUNNING)
        old = lock_orchestration(provider, "old-worker")
        assert old is not None
        fresh = create(provider, "i1", policy=ReuseIdPolicy.REPLACE_ANY)
        item = lock_orchestration(provider, "new-worker")
        assert item is not None, "the new run stayed locked by the old run's worker"
        assert [m.execution_id for m in item.messages] == [fresh.execution_id]
        with pytest.raises(WorkItemLockLost):
            consume(provider, old, runtime_status=OrchestrationStatus.COMPLETED)
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        stored = provider.get_instance("i1")
        assert stored is not None and stored.execution_id == fresh.execution_id
        assert stored.runtime_status is OrchestrationStatus.RUNNING

    @pytest.mark.parametrize("existing", ["none", "completed"])
    def test_concurrent_creates_of_one_id_make_exactly_one_instance(
        self, provider: StorageProvider, existing: str
    ) -> None:
        if existing == "completed":
            self._completed(provider, "singleton")
            drain(provider)
        records = [new_record("singleton") for _ in range(current_profile().concurrency)]
        winners: list[InstanceRecord] = []

        def start(i: int) -> None:
            provider.create_instance(
                records[i], start_message(records[i]), ReuseIdPolicy.REPLACE_TERMINAL
            )
            winners.append(records[i])

        errors = run_threads(len(records), start)
        assert all(isinstance(e, InstanceAlreadyExistsError) for e in errors), errors
        assert len(winners) == 1, f"{len(winners)} concurrent creates of one id succeeded"
        assert_same_record(provider.get_instance("singleton"), winners[0])
        item = lock_orchestration(provider)
        assert item is not None
        assert [m.execution_id for m in item.messages] == [winners[0].execution_id]

    # -- purge ----------------------------------------------------------------------------------
    def test_purge_removes_everything_of_the_instance(self, provider: StorageProvider) -> None:
        record = create(provider, "doomed")
        item = lock_orchestration(provider)
        assert item is not None
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=record.with_changes(
                    runtime_status=OrchestrationStatus.COMPLETED, history_size=1
                ),
                new_history=[item.messages[0].event],
                activity_tasks=[activity_task(record, 0)],
                messages=[
                    event_message("doomed", "timer", visible_at=utcnow() + timedelta(hours=1))
                ],
            ),
        )
        provider.send_message(event_message("doomed", "late"))
        create(provider, "bystander", status=OrchestrationStatus.COMPLETED)
        assert provider.purge_instance("doomed", TERMINAL_STATUSES) is True
        assert provider.get_instance("doomed") is None
        assert provider.get_history("doomed") == []
        assert lock_activity(provider, timeout=BRIEFLY) is None, "an activity task survived purge"
        left = drain(provider)
        assert [m.instance_id for m in left] == ["bystander"], "a message survived purge"
        ids = [r.instance_id for r in provider.query_instances(InstanceQuery()).items]
        assert ids == ["bystander"]
        fresh = create(provider, "doomed")
        assert provider.get_history("doomed") == []
        again = lock_orchestration(provider)
        assert again is not None
        assert [m.execution_id for m in again.messages] == [fresh.execution_id]

    def test_purge_takes_the_lock_and_the_recreated_instance_is_handed_out_at_once(
        self, provider: StorageProvider
    ) -> None:
        """A purge while a worker holds the instance ends that worker's lock: its calls raise
        ``WorkItemLockLost``, and an instance created again under the same id is handed out
        at once (by the same provider object), not when the purged lock would have expired."""
        create(provider, "i1", status=OrchestrationStatus.COMPLETED)
        old = lock_orchestration(provider, "old-worker")
        assert old is not None
        assert provider.purge_instance("i1", TERMINAL_STATUSES) is True
        fresh = create(provider, "i1")
        item = lock_orchestration(provider, "new-worker")
        assert item is not None, "the recreated instance stayed locked by the purged one's worker"
        assert [m.execution_id for m in item.messages] == [fresh.execution_id]
        with pytest.raises(WorkItemLockLost):
            consume(provider, old, runtime_status=OrchestrationStatus.FAILED)
        consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
        stored = provider.get_instance("i1")
        assert stored is not None and stored.execution_id == fresh.execution_id
        assert stored.runtime_status is OrchestrationStatus.RUNNING
        assert provider.get_history("i1") == [m.event for m in item.messages]

    def test_purge_respects_the_status_condition(self, provider: StorageProvider) -> None:
        record = create(provider, "active", status=OrchestrationStatus.RUNNING)
        assert provider.purge_instance("active", TERMINAL_STATUSES) is False
        assert provider.purge_instance("missing", TERMINAL_STATUSES) is False
        assert_same_record(provider.get_instance("active"), record)
        assert lock_orchestration(provider) is not None, "a refused purge deleted messages"

    # -- the change signal ----------------------------------------------------------------------
    def test_writes_wake_waiters_in_the_process(self, provider: StorageProvider) -> None:
        """Every write others may wait for signals ``provider.changes`` before the call returns
        (in-process workers and clients wake at once, not at their poll timeout), and a step
        that changes an instance's status wakes that instance's watchers."""
        signal = provider.changes
        with signal.watching("watched") as status_may_have_changed:
            before = signal.version
            record = create(provider, "watched")
            assert signal.version > before, "create_instance did not signal its change"
            item = lock_orchestration(provider)
            assert item is not None
            status_may_have_changed.clear()
            before = signal.version
            provider.complete_orchestration_work_item(
                item,
                OrchestrationCheckpoint(
                    instance=record.with_changes(
                        runtime_status=OrchestrationStatus.RUNNING, history_size=1
                    ),
                    new_history=[item.messages[0].event],
                    activity_tasks=[activity_task(record, 0)],
                ),
            )
            assert signal.version > before, "a checkpoint did not signal its change"
            assert status_may_have_changed.is_set(), (
                "a checkpoint that changed the instance's status did not wake its watchers"
            )
        task = lock_activity(provider)
        assert task is not None
        before = signal.version
        provider.complete_activity_work_item(
            task,
            OrchestrationMessage(
                instance_id=record.instance_id,
                execution_id=record.execution_id,
                event=TaskCompleted(task_scheduled_id=0, result='"r"'),
            ),
        )
        assert signal.version > before, "an activity result did not signal its change"
        before = signal.version
        provider.send_message(event_message("watched", "ping"))
        assert signal.version > before, "send_message did not signal its change"

    # -- queries --------------------------------------------------------------------------------
    def _populate(self, provider: StorageProvider) -> list[InstanceRecord]:
        base = datetime(2024, 1, 1, tzinfo=UTC)
        statuses = list(OrchestrationStatus)
        records = []
        for n in range(23):
            record = new_record(
                f"{'ab'[n % 2]}{n:02d}",
                name=("alpha", "alphabet", "beta")[n % 3],
                status=statuses[n % len(statuses)],
                created_at=base + timedelta(minutes=n),
            )
            provider.create_instance(record, start_message(record), ReuseIdPolicy.REPLACE_ANY)
            records.append(record)
        return records

    def _query_all(self, provider: StorageProvider, query: InstanceQuery) -> list[str]:
        ids: list[str] = []
        pages = 0
        while True:
            page = provider.query_instances(query)
            assert len(page.items) <= query.page_size, "a page is larger than page_size"
            ids.extend(r.instance_id for r in page.items)
            pages += 1
            assert pages < 100, "paging does not end"
            if page.continuation_token is None:
                return ids
            query = replace(query, continuation_token=page.continuation_token)

    def test_query_filters_and_paging_are_exact(self, provider: StorageProvider) -> None:
        records = self._populate(provider)
        base = records[0].created_at
        statuses = list(OrchestrationStatus)
        queries = [
            InstanceQuery(),
            InstanceQuery(runtime_status=frozenset(TERMINAL_STATUSES)),
            InstanceQuery(runtime_status=frozenset({OrchestrationStatus.RUNNING})),
            InstanceQuery(name_prefix="alpha"),
            InstanceQuery(name_prefix="alphab"),
            InstanceQuery(instance_id_prefix="b"),
            InstanceQuery(instance_id_prefix="a1"),
            InstanceQuery(created_from=base + timedelta(minutes=5)),
            InstanceQuery(created_to=base + timedelta(minutes=5)),
            InstanceQuery(
                created_from=base + timedelta(minutes=3),
                created_to=base + timedelta(minutes=17),
                runtime_status=frozenset(statuses[:4]),
                name_prefix="alpha",
            ),
        ]
        for query in queries:
            expected = sorted(r.instance_id for r in records if query.matches(r))
            for page_size in (1, 2, 5, 100):
                sized = replace(query, page_size=page_size)
                got = self._query_all(provider, sized)
                assert got == expected, f"{sized} returned {got}, expected {expected}"

    def test_generated_queries_match_the_reference(self, provider: StorageProvider) -> None:
        records = self._populate(provider)
        base = records[0].created_at
        minutes = st.integers(-1, 24).map(lambda n: base + timedelta(minutes=n))
        queries = st.builds(
            InstanceQuery,
            runtime_status=st.none() | st.frozensets(st.sampled_from(list(OrchestrationStatus))),
            name_prefix=st.none() | st.sampled_from(["", "a", "alpha", "alphabet", "b", "z"]),
            instance_id_prefix=st.none() | st.sampled_from(["", "a", "b", "a0", "b1", "b13", "c"]),
            created_from=st.none() | minutes,
            created_to=st.none() | minutes,
            page_size=st.integers(1, 7),
        )

        @current_profile().hypothesis_settings(current_profile().property_examples)
        @given(query=queries)
        def check(query: InstanceQuery) -> None:
            expected = sorted(r.instance_id for r in records if query.matches(r))
            assert self._query_all(provider, query) == expected

        check()

    # -- payloads -------------------------------------------------------------------------------
    @pytest.mark.parametrize("size", list(PAYLOAD_SIZES.values()), ids=list(PAYLOAD_SIZES))
    def test_payload_round_trips(
        self, provider: StorageProvider, capabilities: ProviderCapabilities, size: int
    ) -> None:
        reason = payload_skip_reason(size, capabilities)
        if reason:
            pytest.skip(reason)
        payload = payload_of_size(size)
        record = create(provider, "big", input=payload)
        assert_same_record(provider.get_instance("big"), record)
        item = lock_orchestration(provider)
        assert item is not None
        started = item.messages[0].event
        assert isinstance(started, ExecutionStarted) and started.input == payload
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=record.with_changes(
                    runtime_status=OrchestrationStatus.RUNNING,
                    output=payload,
                    custom_status=payload,
                    history_size=2,
                ),
                new_history=[started, TaskScheduled(task_id=0, name="a", input=payload)],
                activity_tasks=[activity_task(record, 0, payload)],
            ),
        )
        stored = provider.get_instance("big")
        assert stored is not None
        assert stored.output == payload and stored.custom_status == payload, (
            "record payload changed"
        )
        events = provider.get_history("big")
        assert [history.dumps(e) for e in events] == [
            history.dumps(started),
            history.dumps(
                TaskScheduled(task_id=0, name="a", input=payload, timestamp=events[1].timestamp)
            ),
        ], "history payload changed"
        activity = lock_activity(provider)
        assert activity is not None and activity.task.input == payload, "activity input changed"
        provider.complete_activity_work_item(
            activity,
            OrchestrationMessage(
                instance_id="big",
                execution_id=record.execution_id,
                event=TaskCompleted(task_scheduled_id=0, result=payload),
            ),
        )
        provider.send_message(event_message("big", "data", payload=payload))
        results = lock_orchestration(provider)
        assert results is not None
        got = {type(m.event).__name__: m.event for m in results.messages}
        completed, raised = got["TaskCompleted"], got["EventRaised"]
        assert isinstance(completed, TaskCompleted) and completed.result == payload
        assert isinstance(raised, EventRaised) and raised.input == payload

    def test_large_payload_round_trips_end_to_end(
        self, provider: StorageProvider, capabilities: ProviderCapabilities
    ) -> None:
        size = 1024 * 1024
        reason = payload_skip_reason(size + 100, capabilities)
        if reason:
            pytest.skip(reason)
        value = json.loads(payload_of_size(size))
        client = ot.Client(provider)
        with running_worker(provider):
            iid = client.schedule_new_orchestration(echo, input=value)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert state.output == value

    def test_payload_over_the_declared_limit_is_refused_by_the_client(
        self, provider: StorageProvider, capabilities: ProviderCapabilities
    ) -> None:
        if capabilities.max_payload_bytes is None:
            pytest.skip(
                "provider declares no payload limit (ProviderCapabilities.max_payload_bytes)"
            )
        too_big = "x" * (capabilities.max_payload_bytes + 1)
        with pytest.raises(ot.PayloadTooLargeError):
            ot.Client(provider).schedule_new_orchestration("anything", input=too_big)

    # -- instance ids ---------------------------------------------------------------------------
    def _assert_id_round_trips(self, provider: StorageProvider, instance_id: str) -> None:
        record = create(provider, instance_id)
        assert_same_record(provider.get_instance(instance_id), record)
        listed = provider.query_instances(InstanceQuery(instance_id_prefix=instance_id)).items
        assert instance_id in [r.instance_id for r in listed], "query lost the id"
        item = lock_orchestration(provider)
        assert item is not None and item.instance_id == instance_id, (
            f"work item for {instance_id!r} came back as {item and item.instance_id!r}"
        )
        assert all(m.instance_id == instance_id for m in item.messages)
        consume(provider, item, runtime_status=OrchestrationStatus.COMPLETED)
        assert len(provider.get_history(instance_id)) == 1
        assert provider.purge_instance(instance_id, TERMINAL_STATUSES)
        assert provider.get_instance(instance_id) is None

    @pytest.mark.parametrize("instance_id", list(EDGE_CASE_IDS.values()), ids=list(EDGE_CASE_IDS))
    def test_edge_case_instance_id_round_trips(
        self, provider: StorageProvider, instance_id: str
    ) -> None:
        validate_instance_id(instance_id)
        self._assert_id_round_trips(provider, instance_id)

    def test_similar_ids_stay_distinct(self, provider: StorageProvider) -> None:
        ids = ["e\u0301", "\u00e9", "E\u0301", "a", "A", "a ", "\uff41"]
        for iid in ids:
            create(provider, iid, input=json.dumps(iid))
        for iid in ids:
            stored = provider.get_instance(iid)
            assert stored is not None and stored.input == json.dumps(iid), (
                f"{iid!r} was confused with another id"
            )

    def test_generated_instance_ids_round_trip(self, provider: StorageProvider) -> None:
        def valid(text: str) -> bool:
            try:
                validate_instance_id(text)
            except ot.InvalidInstanceIdError:
                return False
            return True

        ids = st.text(min_size=1, max_size=100).filter(valid)

        @current_profile().hypothesis_settings(current_profile().property_examples)
        @given(instance_id=ids)
        def check(instance_id: str) -> None:
            self._assert_id_round_trips(provider, instance_id)

        check()

    def test_unicode_instance_id_round_trips_end_to_end(self, provider: StorageProvider) -> None:
        client = ot.Client(provider)
        iid = "\u697d\u8b5c-\U0001f3b5-caf\u00e9"
        with running_worker(provider):
            client.schedule_new_orchestration(echo, input="ok", instance_id=iid)
            state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
        assert state.instance_id == iid and state.output == "ok"

    # -- concurrent workers end to end ----------------------------------------------------------
    def test_concurrent_workers_run_every_orchestration_once(
        self, provider: StorageProvider
    ) -> None:
        client = ot.Client(provider)
        with running_worker(provider), running_worker(provider):
            ids = [client.schedule_new_orchestration(hello_cities) for _ in range(10)]
            states = [
                client.wait_for_orchestration_completion(i, timeout=COMPLETION_TIMEOUT) for i in ids
            ]
        assert [s.output for s in states] == [HELLO_RESULT] * 10
        for iid in ids:
            kinds = Counter(type(e).__name__ for e in provider.get_history(iid))
            assert kinds["TaskCompleted"] == 3 and kinds["ExecutionCompleted"] == 1


def _next_starts(checkpoint: OrchestrationCheckpoint) -> list[str]:
    """The execution ids a continue-as-new checkpoint starts (``[]`` for other checkpoints)."""
    record = checkpoint.instance
    if record is None or record.runtime_status is not OrchestrationStatus.CONTINUED_AS_NEW:
        return []
    return [
        m.event.execution_id for m in checkpoint.messages if isinstance(m.event, ExecutionStarted)
    ]


def _starts_a_sub_orchestration(checkpoint: OrchestrationCheckpoint) -> bool:
    return any(
        isinstance(m.event, ExecutionStarted) and m.event.parent is not None
        for m in checkpoint.messages
    )


#: A work item a claim hands over.
Handed = TypeVar("Handed", ActivityWorkItem, OrchestrationWorkItem)


def _handed_once(handed: list[list[Handed]], what: str) -> list[Handed]:
    """What a claim's ``start`` (``handed.append``) was given: checked to have been called at
    most once, and never with nothing."""
    assert len(handed) <= 1, f"start was called {len(handed)} times"
    assert handed != [[]], f"start was called with no {what}"
    return handed[0] if handed else []


def _hello_cities_calls(provider: StorageProvider) -> int:
    """How many worker calls (as :class:`FaultInjectingProvider` counts them) one HelloCities
    makes on ``provider`` without faults, at most 8: the crash points of the fault tests
    (the number depends on the provider's capabilities, e.g. eager steps commit a result
    with its step in one call). Under a lock too long to be renewed, so it counts no
    renewal: a run with shorter locks makes at least as many calls."""
    counting = FaultInjectingProvider(provider, FaultPlan())
    with running_worker(counting, lock_timeout=LONG_LOCK):
        iid = ot.Client(counting).schedule_new_orchestration(hello_cities)
        state = ot.Client(provider).wait_for_orchestration_completion(
            iid, timeout=COMPLETION_TIMEOUT
        )
    assert state.output == HELLO_RESULT
    return min(counting.calls, 8)


def _worker_takes_eager_steps(provider: StorageProvider) -> bool:
    """Whether the worker commits results with their steps on ``provider``."""
    caps = provider.capabilities
    return caps.eager_steps and caps.eager_orchestrations and caps.transactional_checkpoints


class _CrashFirst:
    """Makes the first call of ``method`` on a fault-injecting provider crash before the call
    (its work item, or every work item of its batch, held by a crashed worker)."""

    def __init__(self, faulty: FaultInjectingProvider, method: str) -> None:
        self.fired = False
        original = getattr(faulty, method)

        def wrapper(*args: object) -> object:
            if not self.fired:
                self.fired = True
                first = args[0]
                items = (
                    [e.activity if isinstance(e, ResultStep) else e[0] for e in first]
                    if isinstance(first, list)
                    else [first]
                )
                for item in items:
                    token = getattr(item, "lock_token", None)
                    if isinstance(token, str):
                        faulty._kill(token)
                raise InjectedFault(f"injected crash before {method}")
            return original(*args)

        setattr(faulty, method, wrapper)
