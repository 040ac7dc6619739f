"""Scenario 4, a critical section: many instances contend for one lock and never overlap.

Each ``transfer`` locks the ``LockEntity`` ``MyLockIdentifier`` for its critical section, reads
a shared counter entity, does slow work (an activity and a durable timer) and writes the
counter back. Without the lock, concurrent instances would lose updates; with it, the final
counter equals the number of instances and no two sections overlap in time.

    ostinato worker examples.critical_section:app
    ostinato start transfer              # start several at once
"""

from __future__ import annotations

import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()

LOCK = ot.EntityId("LockEntity", "MyLockIdentifier")
COUNTER = ot.EntityId("counter", "shared")


@app.entity
def counter(ctx: ot.EntityContext, value: int | None) -> int:
    if ctx.operation_name == "set":
        ctx.set_state(value)
    current: int = ctx.get_state(0)
    return current


@app.entity
def lockentity(ctx: ot.EntityContext, _: Any) -> None:
    """The lock's entity: it only exists to be locked."""


@app.activity
def now(ctx: ot.ActivityContext, _: Any) -> float:
    """The wall-clock time (activities may read clocks; orchestrators may not)."""
    return time.time()


@app.orchestrator
def transfer(ctx: ot.OrchestrationContext, _: Any) -> Generator[Any, Any, dict[str, float]]:
    with (yield ctx.lock_entities(LOCK)):
        entered = yield ctx.call_activity(now)
        value = yield ctx.call_entity(COUNTER, "get")
        yield ctx.create_timer(timedelta(milliseconds=20))  # slow work inside the section
        yield ctx.call_entity(COUNTER, "set", value + 1)
        left = yield ctx.call_activity(now)
    return {"entered": entered, "left": left}


def main(
    provider: ot.StorageProvider | None = None, *, instances: int = 10, timeout: float = 60
) -> dict[str, Any]:
    """Run ``instances`` contending transfers; returns the counter and their sections."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with ot.Worker(app, provider):
        ids = [client.schedule_new_orchestration(transfer) for _ in range(instances)]
        sections = [
            ot.raise_if_failed(client.wait_for_orchestration_completion(i, timeout=timeout)).output
            for i in ids
        ]
        shared = client.get_entity(COUNTER)
    return {"counter": shared.state if shared else None, "sections": sections}


if __name__ == "__main__":
    result = main()
    print(f"counter = {result['counter']} after {len(result['sections'])} transfers")
