"""A client's wait reads its instance when that instance's status may have changed, not on
every write of the process (a busy worker would otherwise wake every waiting client)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ostinato as ot
from ostinato.sqlite import SqliteProvider

app = ot.App()


@app.orchestrator
def wait_for_stop(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("stop")
    return "stopped"


@app.orchestrator
def count_events(ctx: ot.OrchestrationContext, _: Any) -> Any:
    count = 0
    while True:
        yield ctx.wait_for_external_event("tick")
        count += 1
        ctx.set_custom_status(count)


class CountingReads(SqliteProvider):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: dict[str, int] = {}

    def get_instance(self, instance_id: str) -> ot.InstanceRecord | None:
        self.reads[instance_id] = self.reads.get(instance_id, 0) + 1
        return super().get_instance(instance_id)


def test_a_wait_is_not_woken_by_other_instances_steps(db_path: Path) -> None:
    provider = CountingReads(db_path)
    client = ot.Client(provider)
    waiting = client.schedule_new_orchestration(wait_for_stop)
    busy = client.schedule_new_orchestration(count_events)
    outcome: list[ot.OrchestrationState] = []
    try:
        with ot.Worker(app, provider):
            client.wait_for_orchestration_start(waiting)
            client.wait_for_orchestration_start(busy)
            waiter = threading.Thread(
                target=lambda: outcome.append(
                    client.wait_for_orchestration_completion(waiting, timeout=30)
                )
            )
            reads_before = provider.reads[waiting]
            waiter.start()
            for n in range(1, 61):  # 60 events, 60 steps of the other instance
                client.raise_orchestration_event(busy, "tick")
                while client.get_orchestration_state(busy).custom_status != n:
                    threading.Event().wait(0.001)
            busy_reads = provider.reads[waiting] - reads_before
            client.raise_orchestration_event(waiting, "stop")
            waiter.join(10)
    finally:
        provider.close()
    assert outcome and outcome[0].runtime_status is ot.OrchestrationStatus.COMPLETED
    # 120 writes of the other instance (events and steps) went by: the waiter read only on
    # its own back-off (5 ms, doubling), a handful of times, not once per write.
    assert busy_reads < 15, busy_reads
