"""Every example app end to end, in process, on SQLite (the in-memory provider without it).

Each example's ``main(provider)`` is the same code a user runs; ``ostinato worker
examples.<name>:app`` must find its app. tests/cli/test_subprocess.py runs hello_cities
through a real worker process.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.cli.commands import load_app

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

HAS_SQLITE = "sqlite" in ot.discovery.installed_providers()
EXAMPLES = [
    "hello_cities",
    "eternal",
    "course_recommendations",
    "fan_out_fan_in",
    "sub_orchestrations",
    "human_interaction",
    "retries",
    "rewind_and_restart",
]


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[ot.StorageProvider]:
    if HAS_SQLITE:
        p = ot.provider_from_config(provider="sqlite", settings={"path": tmp_path / "ex.db"})
    else:
        p = ot.provider_from_config(provider="memory")
    yield p
    p.close()


def example(name: str) -> Any:
    return importlib.import_module(f"examples.{name}")


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_cli_finds_each_examples_app(name: str) -> None:
    app = load_app(f"examples.{name}:app")
    assert app is example(name).app
    assert app.orchestrators and app.activities
    assert load_app(f"examples.{name}") is app  # ":app" is the default


def test_hello_cities(provider: ot.StorageProvider) -> None:
    assert example("hello_cities").main(provider) == [
        "Hello Tokyo!",
        "Hello Seattle!",
        "Hello London!",
    ]


def test_eternal_orchestration_keeps_its_history_bounded(provider: ot.StorageProvider) -> None:
    eternal = example("eternal")
    short = eternal.main(provider, iterations=2, interval_seconds=0.01)
    long = eternal.main(provider, iterations=6, interval_seconds=0.01)
    assert short["iterations"] == 2 and short["last_report"] == "cleanup #1 done"
    assert long["iterations"] == 6 and long["last_report"] == "cleanup #5 done"
    # continue_as_new starts each period with an empty history: its size does not grow.
    assert long["history_events"] == short["history_events"] <= 12


def test_eternal_orchestration_runs_until_terminated(provider: ot.StorageProvider) -> None:
    eternal = example("eternal")
    client = ot.Client(provider)

    def iteration(instance_id: str) -> int:
        state = client.get_orchestration_state(instance_id)
        return int(state.custom_status["iteration"]) if state and state.custom_status else -1

    with ot.Worker(eternal.app, provider, max_poll_interval=0.02):
        instance_id = client.schedule_new_orchestration(
            eternal.periodic_cleanup, input=eternal.JobState(interval_seconds=0.01)
        )
        deadline = time.monotonic() + 15
        while iteration(instance_id) < 3:
            assert time.monotonic() < deadline, "the job did not keep running"
            time.sleep(0.01)
        assert len(client.get_orchestration_history(instance_id)) <= 12
        client.terminate_orchestration(instance_id, output="stopped")
        final = client.wait_for_orchestration_completion(instance_id, timeout=15)
    assert final.runtime_status is ot.OrchestrationStatus.TERMINATED
    assert final.output == "stopped"


def test_course_recommendations_round_trip_tuples_and_dataclasses(
    provider: ot.StorageProvider,
) -> None:
    courses = example("course_recommendations")
    assert courses.main(provider) == {
        "student": "Ada",
        "courses": ["CS201 Data Structures", "CS230 Distributed Systems", "CS310 Databases"],
        "credits": 17,
    }
    maths = courses.main(provider, student=courses.Student("Emmy", "Mathematics", 1))
    assert maths == {
        "student": "Emmy",
        "courses": ["MA101 Calculus", "MA210 Linear Algebra"],
        "credits": 12,
    }


def test_course_recommendations_stores_the_tuple_as_a_json_array(
    provider: ot.StorageProvider,
) -> None:
    courses = example("course_recommendations")
    courses.main(provider)
    client = ot.Client(provider)
    instance = client.query_instances(name_prefix="recommend_courses").items[0]
    assert instance.input == {"name": "Ada", "major": "ComputerScience", "year": 2}
    scheduled = [
        e
        for e in client.get_orchestration_history(instance.instance_id)
        if isinstance(e, ot.history.TaskScheduled)
    ]
    assert [e.input for e in scheduled] == ['["ComputerScience",2]']


def test_fan_out_fan_in(provider: ot.StorageProvider, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "img").mkdir(parents=True)
    sizes = {"index.html": 120, "about.html": 64, "img/logo.png": 2048, "img/bg.png": 4096}
    for name, size in sizes.items():
        (site / name).write_bytes(b"x" * size)
    fan = example("fan_out_fan_in")
    assert fan.main(provider, root_directory=site) == {
        "files": 4,
        "total_bytes": sum(sizes.values()),
    }
    # All copies were scheduled in one step (fanned out), before any of them completed.
    client = ot.Client(provider)
    instance = client.query_instances(name_prefix="backup_site_content").items[0]
    kinds = [
        (type(e).__name__, getattr(e, "name", None))
        for e in client.get_orchestration_history(instance.instance_id)
    ]
    first_copy = kinds.index(("TaskScheduled", "copy_file_to_blob"))
    assert kinds[first_copy : first_copy + 4] == [("TaskScheduled", "copy_file_to_blob")] * 4


def test_sub_orchestrations(provider: ot.StorageProvider) -> None:
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


def test_human_interaction_event_and_timeout(provider: ot.StorageProvider) -> None:
    assert example("human_interaction").main(provider) == {
        "answered": {"request_id": "po-1", "outcome": "approved", "by": "alice"},
        "ignored": {
            "request_id": "po-2",
            "outcome": "escalated",
            "note": "po-2 escalated to a manager",
        },
    }


def test_retries_recover_and_give_up(provider: ot.StorageProvider) -> None:
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
