r"""Rewinding a failed instance after a fix, and restarting an instance with the same input.

An order reserves stock, then charges a payment service that is down: the instance FAILS at
the charge. Once the service is back (a fix deployed, a dependency restored),
``client.rewind_orchestration(id)`` runs it again from its last step that did not fail: the
reservation is not redone, only the failed charge runs again, and the order completes.
``client.restart_orchestration(id)`` starts the orchestration again with the same input, as
a new instance (or under the same id, once it is finished).

    ostinato worker examples.rewind_and_restart:app
    ostinato start place_order --input '"o-1"'       # FAILED while the service is down
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Generator
from datetime import datetime
from typing import Any

import ostinato as ot

app = ot.App()

#: Whether the (simulated) payment service answers; and how often each activity ran, by input.
payment_service_up = threading.Event()
calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _count(what: str) -> None:
    with _calls_lock:
        calls[what] += 1


@app.activity
def reserve_stock(ctx: ot.ActivityContext, order_id: str) -> str:
    _count(f"reserve {order_id}")
    return f"reserved {order_id}"


@app.activity
def charge(ctx: ot.ActivityContext, order_id: str) -> str:
    _count(f"charge {order_id}")
    if not payment_service_up.is_set():
        raise ConnectionError("payment service unavailable")
    return f"charged {order_id}"


@app.orchestrator
def place_order(ctx: ot.OrchestrationContext, order_id: str) -> Generator[Any, Any, list[str]]:
    reserved = yield ctx.call_activity(reserve_stock, input=order_id)
    charged = yield ctx.call_activity(charge, input=order_id)
    return [reserved, charged]


def wait_after(
    client: ot.Client, instance_id: str, since: datetime, timeout: float
) -> ot.OrchestrationState:
    """Wait until the instance has finished again after ``since`` (its failure's time): right
    after ``rewind_orchestration`` it may still show the old failure."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
        if state.last_updated_at > since:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"'{instance_id}' was not rewound within {timeout}s")
        time.sleep(0.01)


def main(
    provider: ot.StorageProvider, order_id: str = "o-1", timeout: float = 60
) -> dict[str, Any]:
    """Fail an order, rewind it after the service is back, then restart it twice."""
    payment_service_up.clear()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        instance_id = client.schedule_new_orchestration(
            place_order, input=order_id, instance_id=f"order-{order_id}"
        )
        failed = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
        payment_service_up.set()  # the fix
        client.rewind_orchestration(instance_id, reason="payment service is back")
        rewound = wait_after(client, instance_id, failed.last_updated_at, timeout)
        rewound_history = client.get_orchestration_history(instance_id)
        copy_id = client.restart_orchestration(instance_id)
        copy = client.wait_for_orchestration_completion(copy_id, timeout=timeout)
        same_id = client.restart_orchestration(instance_id, restart_with_new_instance_id=False)
        again = client.wait_for_orchestration_completion(same_id, timeout=timeout)
    return {
        "failed": failed,
        "rewound": rewound,
        "copy": copy,
        "same_id": same_id,
        "again": again,
        "history": rewound_history,
    }


if __name__ == "__main__":
    from ostinato import provider_from_config

    outcome = main(provider_from_config())
    print(outcome["failed"].runtime_status.value, "->", outcome["rewound"].output)
