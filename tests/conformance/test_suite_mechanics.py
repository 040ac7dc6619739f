"""The suite's own mechanics: the override guard, capability skips, profiles, fault plans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.history import TaskCompleted
from ostinato.provider import (
    ActivityClaim,
    ActivityWorkItem,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    ProviderCapabilities,
    ResultStep,
    StorageProvider,
)
from ostinato.status import OrchestrationStatus
from ostinato_conformance import FaultInjectingProvider, FaultKind, FaultPlan, InjectedFault
from ostinato_conformance.base import overridden_without_xfail
from ostinato_conformance.contract import ProviderContractTests
from ostinato_conformance.profiles import PROFILES, select_profile
from ostinato_conformance.programs import interpret
from ostinato_conformance.requirements import payload_skip_reason, skip_reason
from ostinato_conformance.stress import SWITCH_INTERVAL, Stress
from ostinato_conformance.support import (
    LONG_LOCK,
    activity_task,
    create,
    lock_activity,
    lock_orchestration,
    payload_of_size,
)

HERE = Path(__file__).resolve().parent


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )


def test_guard_rejects_a_standard_test_overridden_without_xfail() -> None:
    class Sneaky(ProviderContractTests):
        def test_purge_removes_everything_of_the_instance(self, provider: StorageProvider) -> None:
            pass

    assert overridden_without_xfail(Sneaky) == [
        "Sneaky.test_purge_removes_everything_of_the_instance"
    ]


def test_guard_accepts_an_override_marked_xfail_with_a_reason() -> None:
    class Honest(ProviderContractTests):
        @pytest.mark.xfail(reason="our store cannot purge yet (issue 12)")
        def test_purge_removes_everything_of_the_instance(self, provider: StorageProvider) -> None:
            pass

    class Reasonless(ProviderContractTests):
        @pytest.mark.xfail
        def test_purge_removes_everything_of_the_instance(self, provider: StorageProvider) -> None:
            pass

    assert overridden_without_xfail(Honest) == []
    assert overridden_without_xfail(Reasonless) != []


def test_skip_reasons_name_the_missing_capability() -> None:
    reason = skip_reason(("lock_expiry",), ProviderCapabilities(lock_expiry=False))
    assert reason is not None and "lock_expiry" in reason
    assert skip_reason(("lock_expiry",), ProviderCapabilities()) is None
    small = ProviderCapabilities(max_payload_bytes=64 * 1024)
    too_big = payload_skip_reason(1024 * 1024, small)
    assert too_big is not None and "max_payload_bytes" in too_big
    assert payload_skip_reason(1024, small) is None


def test_run_reports_skipped_guarantees_with_the_capability_named() -> None:
    run = _pytest("no_lock_expiry_suite.py", "-rs", "-q", "-k", "expire or stale")
    assert run.returncode == 0, run.stdout + run.stderr
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips, run.stdout
    assert all("lock_expiry" in line for line in skips), skips


def test_profile_is_shown_in_the_report_header() -> None:
    run = _pytest("test_memory_conformance.py", "--co", "--ostinato-profile=thorough")
    assert "ostinato conformance: profile=thorough" in run.stdout, run.stdout
    select_profile("quick")


def test_thorough_profile_tries_harder_than_quick() -> None:
    quick, thorough = PROFILES["quick"], PROFILES["thorough"]
    assert thorough.machine_examples > quick.machine_examples
    assert thorough.machine_steps > quick.machine_steps
    assert thorough.program_examples > quick.program_examples


def test_quick_profile_scale_shrinks_only_the_quick_profiles_example_budgets() -> None:
    class Slow(ProviderContractTests):
        quick_profile_scale = 0.35

    quick = PROFILES["quick"]
    try:
        select_profile("quick")
        scaled = Slow.profile()
        assert scaled.machine_examples == round(quick.machine_examples * 0.35)
        assert 1 <= scaled.program_examples < quick.program_examples
        assert 1 <= scaled.fault_examples < quick.fault_examples
        # What each example proves is unchanged: steps, properties and threads.
        assert scaled.machine_steps == quick.machine_steps
        assert scaled.property_examples == quick.property_examples
        assert scaled.concurrency == quick.concurrency
        assert ProviderContractTests.profile() == quick
        for name in ("thorough", "stress"):
            select_profile(name)
            assert Slow.profile() == PROFILES[name], f"the {name} profile was scaled"
    finally:
        select_profile("quick")
    with pytest.raises(ValueError, match="scale"):
        quick.scaled(0)
    with pytest.raises(ValueError, match="scale"):
        quick.scaled(1.5)


def test_command_line_option_runs_the_suite_against_a_named_factory() -> None:
    run = _pytest(
        "--pyargs",
        "ostinato_conformance.cli",
        "--ostinato-provider=ostinato:InMemoryProvider",
        "-q",
        "-k",
        "purge",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout


def test_payload_sizes_are_exact() -> None:
    for size in (0, 1, 2, 3, 100, 45 * 1024, 64 * 1024):
        assert len(payload_of_size(size).encode("utf-8")) == size


@pytest.mark.parametrize("kind", list(FaultKind))
def test_fault_injecting_provider_injects_the_planned_fault(kind: FaultKind) -> None:
    inner = ot.InMemoryProvider()
    faulty = FaultInjectingProvider(inner, FaultPlan({1: kind}, hang_seconds=0.01))
    create(inner, "i1")
    if kind is FaultKind.HANG:
        assert lock_orchestration(faulty) is not None
    else:
        with pytest.raises(InjectedFault):
            faulty.lock_next_orchestration_work_item("w", LONG_LOCK)
    assert [e.kind for e in faulty.injected] == [kind]
    leftover = lock_orchestration(inner, "w2", timeout=0.05)
    if kind in (FaultKind.RAISE_BEFORE, FaultKind.RAISE_AFTER, FaultKind.SEND_THEN_RAISE):
        # SEND_THEN_RAISE is RAISE_BEFORE outside complete_orchestration_work_item.
        assert leftover is not None, "an abandoned lock must free the work at once"
    else:
        assert leftover is None, "a crashed or hung worker still holds the lock"


@pytest.mark.parametrize("kind", [None, FaultKind.RAISE_BEFORE, FaultKind.CRASH_AFTER])
def test_fault_injecting_provider_passes_step_commits_on_with_their_faults(
    kind: FaultKind | None,
) -> None:
    """``complete_activities_and_steps`` reaches the inner provider (the step applies and its
    claimed task is started) unless the plan fails it first; a worker that crashed after the
    commit never starts the task its commit claimed."""
    inner = ot.InMemoryProvider()
    faulty = FaultInjectingProvider(inner, FaultPlan({} if kind is None else {1: kind}))
    record = create(inner, "i1")
    item = lock_orchestration(inner)
    assert item is not None
    running = record.with_changes(runtime_status=OrchestrationStatus.RUNNING, history_size=1)
    inner.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=running,
            new_history=[item.messages[0].event],
            activity_tasks=[activity_task(running, 0)],
        ),
    )
    task = lock_activity(inner)
    assert task is not None
    result = OrchestrationMessage(
        instance_id="i1",
        execution_id=running.execution_id,
        event=TaskCompleted(task_scheduled_id=0, result='"r"'),
    )
    step = ResultStep(
        task,
        result,
        running,
        OrchestrationCheckpoint(
            instance=running.with_changes(history_size=2),
            new_history=[result.event],
            activity_tasks=[activity_task(running, 1)],
        ),
    )
    handed: list[list[ActivityWorkItem]] = []
    claim = ActivityClaim("w", LONG_LOCK, 1, handed.append)
    if kind is None:
        assert faulty.complete_activities_and_steps([step], claim) == [True]
    else:
        with pytest.raises(InjectedFault):
            faulty.complete_activities_and_steps([step], claim)
    assert [e.kind for e in faulty.injected] == ([] if kind is None else [kind])
    applied = len(inner.get_history("i1")) == 2
    assert applied is (kind is not FaultKind.RAISE_BEFORE)
    started = [i.task.task_id for items in handed for i in items]
    assert started == ([1] if kind is None else []), f"claimed tasks started: {started}"


def test_interpreter_computes_the_documented_results() -> None:
    program = [
        [{"op": "activity", "id": 0, "value": 5}, {"op": "fan", "id": 1, "values": [1, 2]}],
        [
            {"op": "flaky", "id": 2, "value": 1, "fail_times": 2, "attempts": 2},
            {"op": "sub", "id": 3, "program": [[{"op": "timer", "id": 4, "ms": 1}]]},
            {"op": "event", "id": 5, "value": 7},
        ],
    ]
    assert interpret(program) == [11, [3, 5], "failed:1", ["timer"], 7]


def test_report_lists_each_guarantee_with_capabilities_and_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "sheet"
    run = _pytest(
        "no_lock_expiry_suite.py", "-q", "-k", "expire or purge", f"--ostinato-report={path}"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(path.with_suffix(".json").read_text("utf-8"))
    (sheet,) = data["providers"]
    assert sheet["provider"].endswith("NoExpiryMemoryProvider")
    assert sheet["capabilities"]["lock_expiry"] is False
    outcomes = {g["test"]: g for g in sheet["guarantees"]}
    skipped = outcomes["test_expired_lock_hands_the_messages_out_again"]
    assert skipped["outcome"] == "skipped" and "lock_expiry" in skipped["reason"]
    passed = outcomes["test_purge_removes_everything_of_the_instance"]
    assert passed["outcome"] == "passed" and passed["section"] == "Contract"
    assert sheet["counts"]["passed"] > 0 and sheet["counts"]["failed"] == 0
    assert sheet["budgets"]["machine_examples"] == PROFILES["quick"].machine_examples
    assert sheet["budgets"]["quick_profile_scale"] == 1.0
    markdown = path.with_suffix(".md").read_text("utf-8")
    assert "`lock_expiry`: `False`" in markdown
    assert f"Budgets: state machines {PROFILES['quick'].machine_examples}x" in markdown
    assert "| `test_expired_lock_hands_the_messages_out_again` | skipped: provider" in markdown


def test_report_marks_failed_guarantees(tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "kill_matrix_suite.py",
         "-q", "-k", "purge_removes_everything", f"--ostinato-report={path}"],
        cwd=HERE, capture_output=True, text=True, check=False,
        env={**os.environ, "OSTINATO_KILL_MATRIX_VARIANTS": "PurgeLeavesHistory"},
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    data = json.loads(path.with_suffix(".json").read_text("utf-8"))
    (sheet,) = data["providers"]
    (outcome,) = sheet["guarantees"]
    assert outcome["outcome"] == "failed", outcome
    assert "| failed: " in path.read_text("utf-8")


def test_stress_runs_cpu_hogs_and_switches_threads_often() -> None:
    before = sys.getswitchinterval()
    stress = Stress(hogs=2)
    stress.start()
    try:
        assert stress.running == 2
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    finally:
        stress.stop()
    assert stress.running == 0
    assert sys.getswitchinterval() == pytest.approx(before)


def test_stress_option_selects_the_stress_profile() -> None:
    run = _pytest("test_memory_conformance.py", "--co", "--ostinato-stress")
    assert "ostinato conformance: profile=stress (stress:" in run.stdout, run.stdout
    stress = PROFILES["stress"]
    assert stress.stress and stress.machine_examples > PROFILES["thorough"].machine_examples
    select_profile("quick")


def test_fault_injecting_provider_passes_on_every_method_its_inner_provider_implements() -> None:
    """A contract default left in place would hide the inner provider's behaviour (its dead
    letters, leases, backlog, ...) from the core under test."""
    contract = [
        name
        for name, member in vars(StorageProvider).items()
        if callable(member) and not name.startswith("_")
    ]
    implemented = [name for name in contract if name in vars(ot.InMemoryProvider)]
    assert implemented, "the in-memory provider implements the contract"
    missing = [name for name in implemented if name not in vars(FaultInjectingProvider)]
    assert missing == []
