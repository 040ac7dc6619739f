"""Checks of examples/rewind_and_restart.py, shared by the SQLite, PostgreSQL and Azure tests."""

from __future__ import annotations

import ostinato as ot

from examples import rewind_and_restart


def check_rewind_and_restart(provider: ot.StorageProvider, order_id: str) -> None:
    """Rewind re-runs only the failed charge; restart runs the order again, new id or same."""
    before = rewind_and_restart.calls.copy()
    out = rewind_and_restart.main(provider, order_id=order_id)
    failed, rewound = out["failed"], out["rewound"]
    assert failed.runtime_status is ot.OrchestrationStatus.FAILED
    assert failed.failure_details is not None
    assert "payment service unavailable" in failed.failure_details.message
    assert rewound.runtime_status is ot.OrchestrationStatus.COMPLETED
    assert rewound.output == [f"reserved {order_id}", f"charged {order_id}"]
    assert rewound.failure_details is None
    kinds = [type(e).__name__ for e in out["history"]]
    assert "ExecutionRewound" in kinds and "TaskFailed" not in kinds
    assert kinds.count("ExecutionCompleted") == 1
    assert out["copy"].output == rewound.output
    assert out["copy"].instance_id != rewound.instance_id
    assert out["same_id"] == rewound.instance_id
    assert out["again"].output == rewound.output
    calls = rewind_and_restart.calls - before
    # The rewind did not reserve again: one reservation per run (original, copy, same id);
    # charges: the failure, its rerun, and one per restart.
    assert calls[f"reserve {order_id}"] == 3
    assert calls[f"charge {order_id}"] == 4
