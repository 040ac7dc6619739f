r"""Scenario 7, retries: a flaky activity retried with backoff, and a failure handled in code.

``retry_policy=ot.RetryPolicy(...)`` retries a failed activity on durable timers (so a worker
restart in between loses nothing). When the attempts run out, the failure reaches the
orchestrator as ``ot.TaskFailedError``, which it can catch like any exception, here to
compensate.

    ostinato worker examples.retries:app
    ostinato start charge_order --wait \
        --input '{"order_id": "o-1", "amount": 42.5, "failures_before_success": 2}'
    ostinato history <instance id>     # TaskFailed, TimerCreated, TimerFired, TaskScheduled...
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()

RETRY_POLICY = ot.RetryPolicy(
    first_retry_interval=timedelta(seconds=0.1),
    max_number_of_attempts=4,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=5),
)

_attempts: Counter[str] = Counter()
_attempts_lock = threading.Lock()


class GatewayUnavailable(Exception):
    """The (simulated) payment gateway is down."""


@dataclass(frozen=True)
class Charge:
    order_id: str
    amount: float
    #: How many calls fail before one succeeds (simulates an unreliable service).
    failures_before_success: int = 2


@app.activity
def charge_card(ctx: ot.ActivityContext, charge: Charge) -> dict[str, Any]:
    """Charge the card; fails the first ``failures_before_success`` times for this order."""
    with _attempts_lock:
        _attempts[ctx.instance_id] += 1
        attempt = _attempts[ctx.instance_id]
    if attempt <= charge.failures_before_success:
        raise GatewayUnavailable(f"payment gateway timed out (attempt {attempt})")
    return {"order_id": charge.order_id, "charged": charge.amount, "attempts": attempt}


@app.activity
def cancel_order(ctx: ot.ActivityContext, order_id: str) -> str:
    """Compensation: give up on the order."""
    return f"order {order_id} cancelled"


@app.orchestrator
def charge_order(
    ctx: ot.OrchestrationContext, charge: Charge
) -> Generator[Any, Any, dict[str, Any]]:
    try:
        receipt: dict[str, Any] = yield ctx.call_activity(
            charge_card, input=charge, retry_policy=RETRY_POLICY
        )
    except ot.TaskFailedError as exc:
        note = yield ctx.call_activity(cancel_order, input=charge.order_id)
        return {"order_id": charge.order_id, "outcome": note, "error": exc.details.message}
    return {"order_id": charge.order_id, "outcome": "charged", "receipt": receipt}


def main(provider: ot.StorageProvider | None = None, *, timeout: float = 30) -> dict[str, Any]:
    """Run two orders end to end: one that succeeds on a retry, one that exhausts its retries."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        flaky = client.schedule_new_orchestration(
            charge_order, input=Charge("o-1", 42.5, failures_before_success=2)
        )
        broken = client.schedule_new_orchestration(
            charge_order, input=Charge("o-2", 10.0, failures_before_success=100)
        )
        outputs = [
            ot.raise_if_failed(client.wait_for_orchestration_completion(i, timeout=timeout)).output
            for i in (flaky, broken)
        ]
    return {"recovered": outputs[0], "gave_up": outputs[1]}


if __name__ == "__main__":
    print(main())
