"""Generated orchestration programs: run end to end, compared with a pure interpreter.

A *program* is plain JSON data, so it can be the input of one generic orchestrator,
:func:`run_program`, which interprets it with real durable operations. :func:`interpret`
computes the same result directly in Python. :func:`programs` is the hypothesis strategy.

A program is a list of *segments* (each one execution; the orchestrator moves to the next
with ``continue_as_new``); a segment is a list of steps::

    {"op": "activity", "id": 3, "value": 5}               -> 11  (activity: 2 * value + 1)
    {"op": "fan", "id": 4, "values": [1, 2]}                -> [3, 5]  (fan-out/fan-in)
    {"op": "timer", "id": 5, "ms": 20}                      -> "timer"
    {"op": "event", "id": 6, "value": 7}                    -> 7  (the test raises event "ev6")
    {"op": "sub", "id": 7, "program": [[...]]}              -> the sub-program's result
    {"op": "flaky", "id": 8, "value": 1, "fail_times": 2, "attempts": 3}
                                                            -> 3, or "failed:1" if attempts run out

Every step's result is appended to the result list, which continues across segments.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import ostinato as ot
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from ostinato.provider import ProviderCapabilities

from ostinato_conformance.base import ConformanceTestBase, ProviderFactory
from ostinato_conformance.faults import (
    FaultInjectingProvider,
    FaultKind,
    FaultPlan,
    describe_injected,
)
from ostinato_conformance.support import COMPLETION_TIMEOUT
from ostinato_conformance.workers import running_worker

Step = dict[str, Any]
Program = list[list[Step]]

program_app = ot.App()

RETRY_INTERVAL = timedelta(milliseconds=10)

# Which task ids each flaky call has seen, so a re-run of the same attempt (at-least-once
# delivery) fails or succeeds exactly like the first run of that attempt.
_attempts: dict[tuple[str, int], list[int]] = {}
_attempts_mutex = threading.Lock()


class FlakyActivityError(Exception):
    """The planned failure of a ``flaky`` step's attempt."""


@program_app.activity
def double_plus_one(ctx: ot.ActivityContext, value: int) -> int:
    """The program's unit of work: ``2 * value + 1``."""
    return 2 * value + 1


@program_app.activity
def flaky(ctx: ot.ActivityContext, request: dict[str, int]) -> int:
    """Fails attempts 1..``fail_times`` of step ``id``, then computes ``2 * value + 1``."""
    key = (ctx.instance_id, request["id"])
    with _attempts_mutex:
        seen = _attempts.setdefault(key, [])
        if ctx.task_id not in seen:
            seen.append(ctx.task_id)
        attempt = seen.index(ctx.task_id) + 1
    if attempt <= request["fail_times"]:
        raise FlakyActivityError(f"attempt {attempt} of step {request['id']} fails as planned")
    return 2 * request["value"] + 1


@program_app.orchestrator
def run_program(ctx: ot.OrchestrationContext, state: dict[str, Any]) -> Any:
    """Interprets ``state["segments"][0]`` with durable operations (see the module docstring)."""
    segments: Program = state["segments"]
    results: list[Any] = list(state.get("results", []))
    for step in segments[0]:
        op = step["op"]
        if op == "activity":
            results.append((yield ctx.call_activity(double_plus_one, input=step["value"])))
        elif op == "fan":
            tasks = [ctx.call_activity(double_plus_one, input=v) for v in step["values"]]
            results.append(list((yield ot.when_all(tasks))))
        elif op == "timer":
            yield ctx.create_timer(timedelta(milliseconds=step["ms"]))
            results.append("timer")
        elif op == "event":
            results.append((yield ctx.wait_for_external_event(f"ev{step['id']}")))
        elif op == "sub":
            child = {"segments": step["program"], "results": []}
            results.append((yield ctx.call_sub_orchestrator(run_program, input=child)))
        elif op == "flaky":
            policy = ot.RetryPolicy(RETRY_INTERVAL, max_number_of_attempts=step["attempts"])
            request = {k: step[k] for k in ("id", "value", "fail_times")}
            try:
                results.append((yield ctx.call_activity(flaky, input=request, retry_policy=policy)))
            except ot.TaskFailedError:
                results.append(f"failed:{step['value']}")
        else:  # pragma: no cover - programs come from the strategy
            raise ValueError(f"unknown step {step!r}")
    if len(segments) > 1:
        ctx.continue_as_new({"segments": segments[1:], "results": results}, save_events=True)
        return None
    return results


def interpret(program: Program) -> list[Any]:
    """The result ``program`` must produce, computed directly."""
    results: list[Any] = []
    for segment in program:
        for step in segment:
            op = step["op"]
            if op == "activity":
                results.append(2 * step["value"] + 1)
            elif op == "fan":
                results.append([2 * v + 1 for v in step["values"]])
            elif op == "timer":
                results.append("timer")
            elif op == "event":
                results.append(step["value"])
            elif op == "sub":
                results.append(interpret(step["program"]))
            elif op == "flaky":
                ok = step["fail_times"] < step["attempts"]
                results.append(2 * step["value"] + 1 if ok else f"failed:{step['value']}")
    return results


def events_of(program: Program) -> list[Step]:
    """The ``event`` steps of the top-level program (the test raises these)."""
    return [step for segment in program for step in segment if step["op"] == "event"]


def _numbered(program: Program, ids: Iterator[int]) -> Program:
    numbered: Program = []
    for segment in program:
        steps = []
        for step in segment:
            step = {**step, "id": next(ids)}
            if step["op"] == "sub":
                step["program"] = _numbered(step["program"], ids)
            steps.append(step)
        numbered.append(steps)
    return numbered


def programs(
    *,
    max_segments: int = 3,
    max_steps: int = 4,
    allow_events: bool = True,
    depth: int = 1,
    min_steps: int = 0,
) -> st.SearchStrategy[Program]:
    """Programs of up to ``max_segments`` executions of up to ``max_steps`` steps each.

    Sub-programs (up to ``depth`` levels deep) have no events but may continue-as-new too.
    The first segment has at least ``min_steps`` steps. Step ids are unique in a program.
    """
    values = st.integers(0, 50)
    leaf = st.one_of(
        st.fixed_dictionaries({"op": st.just("activity"), "value": values}),
        st.fixed_dictionaries({"op": st.just("fan"), "values": st.lists(values, max_size=4)}),
        st.fixed_dictionaries({"op": st.just("timer"), "ms": st.integers(1, 40)}),
        st.fixed_dictionaries(
            {
                "op": st.just("flaky"),
                "value": values,
                "fail_times": st.integers(0, 2),
                "attempts": st.integers(1, 3),
            }
        ),
    )
    options: list[st.SearchStrategy[Step]] = [leaf]
    if allow_events:
        options.append(st.fixed_dictionaries({"op": st.just("event"), "value": values}))
    if depth > 0:
        sub = programs(max_segments=2, max_steps=2, allow_events=False, depth=depth - 1)
        options.append(st.fixed_dictionaries({"op": st.just("sub"), "program": sub}))
    step = st.one_of(*options)
    first = st.lists(step, min_size=min_steps, max_size=max(max_steps, min_steps))
    rest = st.lists(st.lists(step, max_size=max_steps), max_size=max_segments - 1)
    raw = st.tuples(first, rest).map(lambda fr: [fr[0], *fr[1]])
    return raw.map(lambda p: _numbered(p, itertools.count()))


def run_on(provider: ot.StorageProvider, program: Program, **worker_options: Any) -> Any:
    """Run ``program`` on ``provider`` with a real worker; return the output (fails on FAILED)."""
    client = ot.Client(provider)
    with running_worker(provider, program_app, **worker_options):
        iid = client.schedule_new_orchestration(
            run_program, input={"segments": program, "results": []}
        )
        for step in events_of(program):
            client.raise_orchestration_event(iid, f"ev{step['id']}", data=step["value"])
        state = client.wait_for_orchestration_completion(iid, timeout=COMPLETION_TIMEOUT)
    ot.raise_if_failed(state)
    return state.output


def fault_plans(
    capabilities: ProviderCapabilities, max_call: int = 12
) -> st.SearchStrategy[FaultPlan]:
    """Up to three faults at worker-call numbers 1..``max_call`` the provider can recover from."""
    kinds = [
        k
        for k in FaultKind
        if (capabilities.lock_expiry or not k.needs_lock_expiry)
        and k is not FaultKind.SEND_THEN_RAISE  # has its own contract tests
    ]
    return st.dictionaries(
        st.integers(1, max_call), st.sampled_from(kinds), min_size=1, max_size=3
    ).map(lambda faults: FaultPlan(faults, hang_seconds=0.3))


class OrchestrationProgramTests(ConformanceTestBase):
    """Generated programs, run by a real worker, compared with the pure interpreter."""

    def test_generated_programs_match_the_interpreter(self, new_provider: ProviderFactory) -> None:
        profile = self.profile()

        @profile.hypothesis_settings(profile.program_examples)
        @given(program=programs())
        def check(program: Program) -> None:
            assert run_on(new_provider(), program) == interpret(program)

        check()

    def test_generated_programs_give_the_same_result_under_injected_faults(
        self, new_provider: ProviderFactory, capabilities: ProviderCapabilities
    ) -> None:
        profile = self.profile()

        @profile.hypothesis_settings(profile.fault_examples)
        @given(
            program=programs(max_segments=2, max_steps=3, min_steps=1),
            plan=fault_plans(capabilities),
        )
        def check(program: Program, plan: FaultPlan) -> None:
            faulty = FaultInjectingProvider(new_provider(), plan)
            try:
                output = run_on(faulty, program, lock_timeout=timedelta(milliseconds=200))
            except (TimeoutError, ot.OrchestrationFailedError) as exc:
                pytest.fail(f"{exc} ({describe_injected(faulty)})")
            note(describe_injected(faulty))
            assert output == interpret(program), describe_injected(faulty)

        check()
