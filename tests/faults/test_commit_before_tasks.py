"""A worker runs an activity task only after its own commit of the step that scheduled it
has ended: a provider that writes a step in several requests (Azure Storage: tasks first,
then the history) makes the task visible before the step is written, and a poison task run
at once would kill the process mid-commit, so the step ran again and sent a second copy of
the task (with a delivery count of its own: the poison ran more than
``max_delivery_attempts`` times). A provider with transactional checkpoints shows the tasks
only once the step is written, so there its tasks do not wait for the rest of the call."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ostinato as ot
from ostinato.provider import OrchestrationCheckpoint, OrchestrationWorkItem

#: How long each commit that sends activity tasks goes on after they are visible.
COMMIT_TAIL = 0.5


class TasksFirst(ot.InMemoryProvider):
    """Commits whose end comes a while after their activity tasks are visible; with
    ``transactional=False`` it says so (its checkpoints are not applied all at once)."""

    def __init__(self, transactional: bool = False) -> None:
        super().__init__()
        # Tasks are polled (no eager claims): the commit's tail is what these tests time.
        self.capabilities = replace(
            ot.InMemoryProvider.capabilities,
            transactional_checkpoints=transactional,
            eager_activities=False,
        )
        self.commit_ends: list[float] = []

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        results = super().complete_orchestration_work_items(batch)
        if any(checkpoint.activity_tasks for _, checkpoint in batch):
            time.sleep(COMMIT_TAIL)  # the tasks are visible; the commit is not over
            self.commit_ends.append(time.monotonic())
        return results


def _starts_and_commit_ends(provider: TasksFirst) -> list[tuple[float, float]]:
    """Run an orchestration of two activities; when each activity started, and when the
    commit of the step that scheduled it ended."""
    app = ot.App()
    started: list[float] = []
    lock = threading.Lock()

    @app.activity
    def note(ctx: ot.ActivityContext, value: int) -> int:
        with lock:
            started.append(time.monotonic())
        return value

    @app.orchestrator
    def calls(ctx: ot.OrchestrationContext, _: Any) -> Any:
        first = yield ctx.call_activity(note, input=1)
        second = yield ctx.call_activity(note, input=2)
        return first + second

    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.01):
        instance_id = client.schedule_new_orchestration(calls)
        state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None and state.serialized_output == "3"
    assert len(started) == 2 and len(provider.commit_ends) == 2
    return list(zip(started, provider.commit_ends, strict=True))


def test_an_activity_runs_after_the_commit_of_the_step_that_scheduled_it() -> None:
    for start, commit_end in _starts_and_commit_ends(TasksFirst()):
        assert start >= commit_end


def test_with_transactional_checkpoints_an_activity_does_not_wait_for_the_commit_call() -> None:
    """A provider that applies a checkpoint at once shows its tasks only when the step is
    written: what is left of the commit call (SQLite's group sync) is not waited for."""
    for start, commit_end in _starts_and_commit_ends(TasksFirst(transactional=True)):
        assert start < commit_end - COMMIT_TAIL / 2
