"""The replay engine and the core's deduplication, driven directly (no worker, no threads)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from ostinato.clock import utcnow
from ostinato.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    TaskCompleted,
    TaskScheduled,
)
from ostinato.orchestration.engine import OrchestrationRun
from ostinato.provider import ActivityTask, OrchestrationMessage, OrchestrationWorkItem
from ostinato.runtime.processor import OrchestrationProcessor

CONVERTER = ot.JsonDataConverter()


def make_app(second_step: str = "b") -> ot.App:
    app = ot.App()

    @app.orchestrator
    def two_steps(ctx: ot.OrchestrationContext, _: Any) -> Any:
        a = yield ctx.call_activity("a")
        if second_step == "timer":
            yield ctx.create_timer(timedelta(seconds=1))
            return a
        b = yield ctx.call_activity(second_step)
        return [a, b]

    return app


def start(name: str = "two_steps", execution_id: str = "e1") -> ExecutionStarted:
    return ExecutionStarted(name=name, execution_id=execution_id)


def run_history(
    app: ot.App, steps: list[list[HistoryEvent]]
) -> tuple[OrchestrationRun, list[HistoryEvent]]:
    run = OrchestrationRun(app, "i1", CONVERTER)
    for events in steps:
        run.step(events, utcnow())
    return run, list(run.history)


def test_replay_reproduces_the_same_state() -> None:
    app = make_app()
    _run, history = run_history(
        app, [[start()], [TaskCompleted(task_scheduled_id=0, result='"A"')]]
    )
    replayed = OrchestrationRun(app, "i1", CONVERTER)
    replayed.replay(history)
    assert replayed.ended is None
    assert replayed.status is ot.OrchestrationStatus.RUNNING
    result = replayed.step([TaskCompleted(task_scheduled_id=1, result='"B"')], utcnow())
    assert isinstance(result.new_events[-1], ExecutionCompleted)
    assert replayed.output == '["A","B"]'


def test_changed_activity_name_is_nondeterminism_naming_both() -> None:
    _, history = run_history(
        make_app("b"), [[start()], [TaskCompleted(task_scheduled_id=0, result='"A"')]]
    )
    replayed = OrchestrationRun(make_app("c"), "i1", CONVERTER)
    replayed.replay(history)
    assert replayed.status is ot.OrchestrationStatus.FAILED
    assert replayed.failure is not None
    assert replayed.failure.error_type == "NonDeterminismError"
    assert "call_activity('b')" in replayed.failure.message
    assert "call_activity('c')" in replayed.failure.message
    # The failure is persisted by the next step even though nothing new applies.
    result = replayed.step([], utcnow())
    assert isinstance(result.new_events[-1], ExecutionCompleted)
    assert result.new_events[-1].status is ot.OrchestrationStatus.FAILED


def test_changed_action_type_is_nondeterminism() -> None:
    _, history = run_history(
        make_app("b"), [[start()], [TaskCompleted(task_scheduled_id=0, result='"A"')]]
    )
    replayed = OrchestrationRun(make_app("timer"), "i1", CONVERTER)
    replayed.replay(history)
    assert replayed.failure is not None
    assert "create_timer()" in replayed.failure.message
    assert "call_activity('b')" in replayed.failure.message


def test_removed_action_is_nondeterminism() -> None:
    app = ot.App()

    @app.orchestrator
    def two_steps(ctx: ot.OrchestrationContext, _: Any) -> Any:
        return "no activities any more"
        yield  # pragma: no cover

    _, history = run_history(make_app(), [[start()]])
    replayed = OrchestrationRun(app, "i1", CONVERTER)
    replayed.replay(history)
    assert replayed.failure is not None
    assert "no longer schedules it" in replayed.failure.message


def test_duplicate_and_unknown_completions_are_ignored() -> None:
    run, _ = run_history(make_app(), [[start()]])
    size = len(run.history)
    ignored = run.step([TaskCompleted(task_scheduled_id=7, result='"?"')], utcnow())
    assert ignored.new_events == [] and len(run.history) == size
    first = run.step([TaskCompleted(task_scheduled_id=0, result='"A"')], utcnow())
    assert [type(e).__name__ for e in first.new_events][:2] == [
        "TaskCompleted",
        "OrchestratorStarted",
    ]
    duplicate = run.step([TaskCompleted(task_scheduled_id=0, result='"A2"')], utcnow())
    assert duplicate.new_events == []
    done = run.step([TaskCompleted(task_scheduled_id=1, result='"B"')], utcnow())
    assert isinstance(done.new_events[-1], ExecutionCompleted)
    assert run.output == '["A","B"]'


def test_second_execution_started_is_dropped() -> None:
    run, _ = run_history(make_app(), [[start()]])
    result = run.step([start(execution_id="e1")], utcnow())
    assert result.new_events == []


def test_execution_started_is_applied_first() -> None:
    app = ot.App()

    @app.orchestrator
    def waits(ctx: ot.OrchestrationContext, _: Any) -> Any:
        return (yield ctx.wait_for_external_event("go"))

    run = OrchestrationRun(app, "i1", CONVERTER)
    result = run.step([EventRaised(name="go", input="1"), start("waits")], utcnow())
    assert [type(e).__name__ for e in result.new_events] == [
        "ExecutionStarted", "EventRaised", "OrchestratorStarted", "OrchestratorCompleted",
        "ExecutionCompleted",
    ]  # fmt: skip
    assert run.output == "1"


class CountingProvider(ot.InMemoryProvider):
    def __init__(self) -> None:
        super().__init__()
        self.history_reads = 0

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        self.history_reads += 1
        return super().get_history(instance_id)


def drive(processor: OrchestrationProcessor, provider: ot.InMemoryProvider) -> int:
    """Process orchestration work items and run activities inline until idle."""
    steps = 0
    while True:
        item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
        if item is not None:
            step = processor.process(item)
            provider.complete_orchestration_work_item(item, step.checkpoint)
            processor.committed(step)
            steps += 1
            continue
        activity = provider.lock_next_activity_work_item("w", timedelta(seconds=30))
        if activity is None:
            return steps
        task: ActivityTask = activity.task
        provider.complete_activity_work_item(
            activity,
            OrchestrationMessage(
                instance_id=task.instance_id,
                execution_id=task.execution_id,
                event=TaskCompleted(task_scheduled_id=task.task_id, result=f'"{task.name}!"'),
            ),
        )


@pytest.mark.parametrize("cache_size", [0, 1, 100])
def test_cached_and_cold_runs_give_the_same_history(cache_size: int) -> None:
    provider = CountingProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(make_app(), provider, CONVERTER, cache_size)
    ids = [client.schedule_new_orchestration("two_steps", instance_id=f"i{n}") for n in range(3)]
    drive(processor, provider)
    reads = provider.history_reads
    for instance_id in ids:
        state = client.get_orchestration_state(instance_id)
        assert state is not None and state.output == ["a!", "b!"]
        kinds = [type(e).__name__ for e in provider.get_history(instance_id)]
        assert kinds.count("TaskScheduled") == 2 and kinds[-1] == "ExecutionCompleted"
    if cache_size >= 3:
        assert reads == 0  # every step was served from the cache
    elif cache_size == 0:
        assert reads == 6  # two replays per instance


def test_messages_for_another_execution_are_dropped() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(make_app(), provider, CONVERTER, 10)
    client.schedule_new_orchestration("two_steps", instance_id="x")
    item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert item is not None
    step = processor.process(item)
    provider.complete_orchestration_work_item(item, step.checkpoint)
    processor.committed(step)
    provider.send_message(
        OrchestrationMessage(
            instance_id="x",
            execution_id="some-old-execution",
            event=TaskCompleted(task_scheduled_id=0, result='"stale"'),
        )
    )
    item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert item is not None
    step = processor.process(item)
    assert step.checkpoint.instance is None and step.checkpoint.new_history == []


def test_finished_instance_never_runs_again() -> None:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(make_app(), provider, CONVERTER, 10)
    client.schedule_new_orchestration("two_steps", instance_id="done")
    drive(processor, provider)
    before = provider.get_instance("done")
    assert before is not None and before.runtime_status is ot.OrchestrationStatus.COMPLETED
    client.raise_orchestration_event("done", "late", data=1)
    client.terminate_orchestration("done")
    provider.send_message(
        OrchestrationMessage(instance_id="done", event=start(execution_id=before.execution_id))
    )
    drive(processor, provider)
    assert provider.get_instance("done") == before
    assert len(provider.get_history("done")) == before.history_size


def test_history_events_round_trip_through_their_serialized_form() -> None:
    from ostinato import history

    app = ot.App()

    @app.orchestrator
    def everything(ctx: ot.OrchestrationContext, _: Any) -> Any:
        ctx.send_event("other", "e", data=1)
        yield ctx.create_timer(timedelta(0))
        yield ctx.call_sub_orchestrator("sub", instance_id="sub1")
        yield ctx.call_activity("a", input={"k": [1, 2]})
        return "ok"

    run = OrchestrationRun(app, "i1", CONVERTER)
    run.step([start("everything")], utcnow())
    events = list(run.history)
    for event in events:
        assert history.loads(history.dumps(event)) == event
    future = history.to_dict(events[0]) | {"v": history.FORMAT_VERSION + 1}
    with pytest.raises(ot.SerializationError, match="newer"):
        history.from_dict(future)
    with pytest.raises(ot.SerializationError, match="Unknown history event type"):
        history.from_dict({"v": 1, "type": "Nope"})


def test_task_scheduled_ids_are_deterministic() -> None:
    app = make_app()
    _run_a, history_a = run_history(
        app, [[start()], [TaskCompleted(task_scheduled_id=0, result="1")]]
    )
    _run_b, history_b = run_history(
        app, [[start()], [TaskCompleted(task_scheduled_id=0, result="1")]]
    )
    ids_a = [e.task_id for e in history_a if isinstance(e, TaskScheduled)]
    ids_b = [e.task_id for e in history_b if isinstance(e, TaskScheduled)]
    assert ids_a == ids_b == [0, 1]


def test_instance_events_arriving_with_a_continue_as_new_go_to_the_next_execution() -> None:
    from ostinato.history import ExecutionTerminated, TimerFired

    app = ot.App()

    @app.orchestrator
    def periodic(ctx: ot.OrchestrationContext, n: int) -> Any:
        yield ctx.create_timer(timedelta(seconds=1))
        ctx.continue_as_new(n + 1)

    run = OrchestrationRun(app, "i1", CONVERTER)
    first = run.step([ExecutionStarted(name="periodic", execution_id="e1", input="0")], utcnow())
    fire_at = first.messages[0].event.fire_at  # type: ignore[attr-defined]
    result = run.step(
        [
            TimerFired(timer_id=0, fire_at=fire_at),
            ExecutionTerminated(output='"stop"'),
            EventRaised(name="e", input="1"),
        ],
        utcnow(),
    )
    kinds = [type(m.event).__name__ for m in result.messages]
    assert kinds == ["ExecutionStarted", "ExecutionTerminated", "EventRaised"]
    assert all(m.instance_id == "i1" for m in result.messages)


def test_messages_sent_in_a_later_step_carry_that_step_s_time() -> None:
    app = ot.App()

    @app.orchestrator
    def notify(ctx: ot.OrchestrationContext, _: Any) -> Any:
        yield ctx.call_activity("a")
        ctx.send_event("other", "done")
        yield ctx.call_sub_orchestrator("child", instance_id="kid")

    run = OrchestrationRun(app, "i1", CONVERTER)
    began = utcnow()
    first = run.step([ExecutionStarted(name="notify", execution_id="e1")], began)
    assert first.messages == [] and len(first.activity_tasks) == 1
    later = began + timedelta(minutes=5)
    result = run.step([TaskCompleted(task_scheduled_id=0, result="1")], later)
    assert [type(m.event).__name__ for m in result.messages] == ["EventRaised", "ExecutionStarted"]
    assert [m.event.timestamp for m in result.messages] == [later, later]


@pytest.mark.parametrize("outcome", ["committed", "dropped"])
def test_next_step_waits_for_the_step_in_flight_instead_of_replaying(outcome: str) -> None:
    """A provider may unlock an instance a moment before its commit call returns (SQLite's
    group commit). A step of that instance on another thread then waits for the first step to
    settle: committed, it continues the cached run; dropped, it replays the history."""
    provider = CountingProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(make_app(), provider, CONVERTER, 10)
    client.schedule_new_orchestration("two_steps", instance_id="h")
    drive(processor, provider)  # ... up to the second activity's result, step by step:
    client.schedule_new_orchestration("two_steps", instance_id="h2")
    item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert item is not None
    first = processor.process(item)
    provider.complete_orchestration_work_item(item, first.checkpoint)  # unlocked, not settled
    activity = provider.lock_next_activity_work_item("w", timedelta(seconds=30))
    assert activity is not None
    provider.complete_activity_work_item(
        activity,
        OrchestrationMessage(
            instance_id="h2",
            execution_id=activity.task.execution_id,
            event=TaskCompleted(task_scheduled_id=activity.task.task_id, result='"a!"'),
        ),
    )
    following = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert following is not None and following.instance_id == "h2"
    steps: list[Any] = []
    other = threading.Thread(target=lambda: steps.append(processor.process(following)))
    reads = provider.history_reads
    other.start()
    other.join(0.2)
    assert other.is_alive()  # waiting for the first step to settle
    if outcome == "committed":
        processor.committed(first)
    else:
        processor.dropped(first)
    other.join(5)
    assert not other.is_alive() and len(steps) == 1
    assert [type(e).__name__ for e in steps[0].checkpoint.new_history].count("TaskCompleted") == 1
    if outcome == "committed":
        assert provider.history_reads == reads  # continued the cached run
    else:
        assert provider.history_reads == reads + 1  # the run was gone: replayed


def test_messages_between_executions_wait_for_the_next_start() -> None:
    """A store that writes a CONTINUED_AS_NEW record and the next execution's start
    separately may hand out a terminate before that start: the core keeps it (deferred) and
    drops only the finished execution's own messages."""
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(make_app(), provider, CONVERTER, 10)
    client.schedule_new_orchestration("two_steps", instance_id="c")
    drive(processor, provider)
    record = provider.get_instance("c")
    assert record is not None
    between = record.with_changes(runtime_status=ot.OrchestrationStatus.CONTINUED_AS_NEW)
    terminate = OrchestrationMessage(instance_id="c", event=ExecutionTerminated(output=None))
    stale = OrchestrationMessage(
        instance_id="c",
        execution_id=record.execution_id,
        event=TaskCompleted(task_scheduled_id=0, result='"late"'),
    )
    item = OrchestrationWorkItem(
        instance_id="c",
        messages=[terminate, stale],
        instance=between,
        lock_token="t",
        locked_until=utcnow() + timedelta(seconds=30),
    )
    step = processor.process(item)
    assert step.checkpoint.instance is None and step.checkpoint.new_history == []
    (kept,) = step.checkpoint.messages
    assert isinstance(kept.event, ExecutionTerminated)
    assert kept.visible_at is not None and kept.visible_at > utcnow()


def test_a_step_s_events_round_trip_as_one_text_and_corrupt_rows_raise_clearly() -> None:
    from ostinato import history as events_format

    events = [
        events_format.TaskCompleted(task_scheduled_id=0, result='"x"'),
        events_format.OrchestratorStarted(),
        events_format.TaskScheduled(task_id=1, name="act", input=None),
        events_format.OrchestratorCompleted(),
    ]
    assert events_format.loads_many(events_format.dumps_many(events)) == events
    assert events_format.loads_many(events_format.dumps_many(events[:1])) == events[:1]
    assert events_format.loads_many(events_format.dumps(events[0])) == events[:1]
    for corrupt in ("{broken", "[1, 2]", "42", '[{"v": 1, "type": "NoSuchEvent"}]'):
        with pytest.raises(ot.SerializationError):
            events_format.loads_many(corrupt)


def test_a_retried_parent_step_starts_its_child_once_and_gets_its_result_again() -> None:
    """A parent step that is processed again (its first commit failed after the sends) sends
    the same child start; the child drops it while running and answers it once finished."""
    app = ot.App()

    @app.orchestrator
    def child(ctx: ot.OrchestrationContext, value: Any) -> Any:
        return (yield ctx.call_activity("a", input=value))

    @app.orchestrator
    def parent(ctx: ot.OrchestrationContext, _: Any) -> Any:
        return (yield ctx.call_sub_orchestrator(child, input=1, instance_id="kid"))

    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    processor = OrchestrationProcessor(app, provider, CONVERTER, 0)
    client.schedule_new_orchestration(parent, instance_id="p")
    item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert item is not None
    sends = [processor.process(item).checkpoint.messages for _ in range(2)]  # first, retry
    starts = [
        [(m.instance_id, getattr(m.event, "execution_id", None)) for m in sent] for sent in sends
    ]
    assert len(starts[0]) == 1 and starts[0] == starts[1], "the retry started another execution"
    child_start = sends[0][0]
    provider.send_message(child_start)  # the first attempt's send, then the retried step
    step = processor.process(item)
    provider.complete_orchestration_work_item(item, step.checkpoint)
    processor.committed(step)
    drive(processor, provider)
    done = provider.get_instance("p")
    assert done is not None and done.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert done.output == '"a!"'
    history = provider.get_history("kid")
    assert sum(isinstance(e, ExecutionStarted) for e in history) == 1

    # The same start once more, after both finished: the child answers with its result.
    provider.send_message(child_start)
    item = provider.lock_next_orchestration_work_item("w", timedelta(seconds=30))
    assert item is not None and item.instance_id == "kid"
    replies = processor.process(item).checkpoint.messages
    assert [(m.instance_id, type(m.event).__name__) for m in replies] == [
        ("p", "SubOrchestrationInstanceCompleted")
    ]
    assert getattr(replies[0].event, "result", None) == '"a!"'
