"""Scenario 3, an eternal orchestration: a periodic job that never ends, with bounded history.

Each execution runs the job once, sleeps on a durable timer, and ``continue_as_new``s with the
next iteration's state. Continuing as new starts an empty history, so the history never grows
however long the job runs (one execution's ~11 events), and the worker can be restarted at any
point: the timer is durable.

    ostinato worker examples.eternal:app
    ostinato start periodic_cleanup --id nightly-cleanup --input '{"interval_seconds": 10}'
    ostinato status nightly-cleanup        # custom status: the last run
    ostinato terminate nightly-cleanup     # the only way it ends (without max_iterations)
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()


@dataclass(frozen=True)
class JobState:
    """What one execution hands to the next."""

    iteration: int = 0
    interval_seconds: float = 3600.0
    #: Stop after this many runs (``None``: run forever).
    max_iterations: int | None = None


@app.activity
def cleanup(ctx: ot.ActivityContext, iteration: int) -> str:
    """The periodic work (here: a message; in real life, delete expired rows...)."""
    return f"cleanup #{iteration} done"


@app.orchestrator
def periodic_cleanup(
    ctx: ot.OrchestrationContext, state: JobState | None
) -> Generator[Any, Any, dict[str, Any] | None]:
    state = state or JobState()
    report = yield ctx.call_activity(cleanup, input=state.iteration)
    ctx.set_custom_status({"iteration": state.iteration, "last_report": report})
    runs = state.iteration + 1
    if state.max_iterations is not None and runs >= state.max_iterations:
        return {"iterations": runs, "last_report": report}
    yield ctx.create_timer(timedelta(seconds=state.interval_seconds))
    ctx.continue_as_new(replace(state, iteration=runs))
    return None


def main(
    provider: ot.StorageProvider | None = None,
    *,
    iterations: int = 5,
    interval_seconds: float = 0.05,
    timeout: float = 30,
) -> dict[str, Any]:
    """Run ``iterations`` periods end to end; returns the output and the final history size."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    start = JobState(interval_seconds=interval_seconds, max_iterations=iterations)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        instance_id = client.schedule_new_orchestration(periodic_cleanup, input=start)
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    output: dict[str, Any] = ot.raise_if_failed(state).output
    history = client.get_orchestration_history(instance_id)
    return output | {"history_events": len(history)}


if __name__ == "__main__":
    print(main())
