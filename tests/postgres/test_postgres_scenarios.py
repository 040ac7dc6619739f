"""DESIGN §5 scenarios 1, 3, 6 and 7 end to end on PostgreSQL, with a real ``ot.Worker``.

Each runs the example app's own ``main(provider)`` (the code a user runs) against a fresh task
hub on the throwaway server.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import ostinato as ot
from ostinato_postgres import PostgresProvider


def example(name: str) -> Any:
    return importlib.import_module(f"examples.{name}")


def test_1_hello_cities_and_its_history(provider: PostgresProvider) -> None:
    hello = example("hello_cities")
    assert hello.main(provider) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    client = ot.Client(provider)
    (instance,) = client.query_instances(name_prefix="hello_cities").items
    kinds = [type(e).__name__ for e in client.get_orchestration_history(instance.instance_id)]
    assert kinds[0] in ("ExecutionStarted", "OrchestratorStarted")
    assert "ExecutionStarted" in kinds[:2]
    assert kinds.count("TaskScheduled") == kinds.count("TaskCompleted") == 3
    assert kinds[-1] in ("ExecutionCompleted", "OrchestratorCompleted")
    assert "ExecutionCompleted" in kinds


def test_3_eternal_orchestration_keeps_its_history_bounded(provider: PostgresProvider) -> None:
    eternal = example("eternal")
    short = eternal.main(provider, iterations=2, interval_seconds=0.01)
    long = eternal.main(provider, iterations=6, interval_seconds=0.01)
    assert short["iterations"] == 2 and short["last_report"] == "cleanup #1 done"
    assert long["iterations"] == 6 and long["last_report"] == "cleanup #5 done"
    assert long["history_events"] == short["history_events"] <= 12


def test_6_course_recommendations_round_trip_composite_inputs(provider: PostgresProvider) -> None:
    courses = example("course_recommendations")
    assert courses.main(provider) == {
        "student": "Ada",
        "courses": ["CS201 Data Structures", "CS230 Distributed Systems", "CS310 Databases"],
        "credits": 17,
    }
    client = ot.Client(provider)
    instance = client.query_instances(name_prefix="recommend_courses").items[0]
    scheduled = [
        e
        for e in client.get_orchestration_history(instance.instance_id)
        if isinstance(e, ot.history.TaskScheduled)
    ]
    assert [e.input for e in scheduled] == ['["ComputerScience",2]']


def test_7_fan_out_fan_in(provider: PostgresProvider, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "img").mkdir(parents=True)
    sizes = {"index.html": 120, "about.html": 64, "img/logo.png": 2048, "img/bg.png": 4096}
    for name, size in sizes.items():
        (site / name).write_bytes(b"x" * size)
    assert example("fan_out_fan_in").main(provider, root_directory=site) == {
        "files": 4,
        "total_bytes": sum(sizes.values()),
    }


def test_7_sub_orchestrations(provider: PostgresProvider) -> None:
    result = example("sub_orchestrations").main(provider, device_ids=["d1", "d2", "d3", "d4"])
    assert result["children"] == {f"d{i}": "COMPLETED" for i in range(1, 5)}
    assert result["devices"] == [
        {
            "device_id": f"d{i}",
            "registered": True,
            "api_key": hashlib.sha256(f"key:d{i}".encode()).hexdigest()[:16],
        }
        for i in range(1, 5)
    ]


def test_7_external_event_and_timeout(provider: PostgresProvider) -> None:
    assert example("human_interaction").main(provider) == {
        "answered": {"request_id": "po-1", "outcome": "approved", "by": "alice"},
        "ignored": {
            "request_id": "po-2",
            "outcome": "escalated",
            "note": "po-2 escalated to a manager",
        },
    }


def test_7_retries_recover_and_give_up(provider: PostgresProvider) -> None:
    result = example("retries").main(provider)
    assert result["recovered"] == {
        "order_id": "o-1",
        "outcome": "charged",
        "receipt": {"order_id": "o-1", "charged": 42.5, "attempts": 3},
    }
    assert result["gave_up"] == {
        "order_id": "o-2",
        "outcome": "order o-2 cancelled",
        "error": "payment gateway timed out (attempt 4)",
    }
