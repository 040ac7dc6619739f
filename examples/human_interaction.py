r"""Scenario 7, human interaction: wait for an approval event, with a timeout.

The orchestrator asks a person for approval, then races the external event ``approval``
against a durable timer with ``ot.when_any``: whichever comes first wins. Events that arrive
before the orchestrator waits are buffered, so nothing is lost to a race.

    ostinato worker examples.human_interaction:app
    ostinato start approval_workflow --id po-1234 \
        --input '{"request_id": "po-1234", "amount": 250, "timeout_seconds": 3600}'
    ostinato raise-event po-1234 approval --data '{"approved": true, "approver": "alice"}'
    ostinato status po-1234
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ostinato as ot

app = ot.App()

APPROVAL_EVENT = "approval"


@dataclass(frozen=True)
class ApprovalRequest:
    request_id: str
    amount: float
    timeout_seconds: float = 24 * 3600


@dataclass(frozen=True)
class Decision:
    approved: bool
    approver: str = "unknown"


@app.activity
def request_approval(ctx: ot.ActivityContext, request: ApprovalRequest) -> None:
    """Notify the approver (an e-mail, a chat message...)."""


@app.activity
def escalate(ctx: ot.ActivityContext, request: ApprovalRequest) -> str:
    """Nobody answered in time: escalate to a manager."""
    return f"{request.request_id} escalated to a manager"


@app.orchestrator
def approval_workflow(
    ctx: ot.OrchestrationContext, request: ApprovalRequest
) -> Generator[Any, Any, dict[str, Any]]:
    yield ctx.call_activity(request_approval, input=request)
    ctx.set_custom_status("waiting for approval")
    approval = ctx.wait_for_external_event(APPROVAL_EVENT)
    timeout = ctx.create_timer(timedelta(seconds=request.timeout_seconds))
    winner = yield ot.when_any([approval, timeout])
    if winner is approval:
        data = approval.get_result() or {}
        decision = Decision(bool(data.get("approved")), str(data.get("approver", "unknown")))
        ctx.set_custom_status("decided")
        return {
            "request_id": request.request_id,
            "outcome": "approved" if decision.approved else "rejected",
            "by": decision.approver,
        }
    note = yield ctx.call_activity(escalate, input=request)
    ctx.set_custom_status("escalated")
    return {"request_id": request.request_id, "outcome": "escalated", "note": note}


def main(
    provider: ot.StorageProvider | None = None, *, timeout: float = 30
) -> dict[str, dict[str, Any]]:
    """Run two requests end to end: one approved by an event, one that times out."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.05):
        answered = client.schedule_new_orchestration(
            approval_workflow, input=ApprovalRequest("po-1", 250.0, timeout_seconds=60)
        )
        ignored = client.schedule_new_orchestration(
            approval_workflow, input=ApprovalRequest("po-2", 99.0, timeout_seconds=0.2)
        )
        client.raise_orchestration_event(
            answered, APPROVAL_EVENT, data={"approved": True, "approver": "alice"}
        )
        results = {
            instance_id: ot.raise_if_failed(
                client.wait_for_orchestration_completion(instance_id, timeout=timeout)
            ).output
            for instance_id in (answered, ignored)
        }
    return {"answered": results[answered], "ignored": results[ignored]}


if __name__ == "__main__":
    print(main())
