"""The DESIGN §5 scenarios, end to end with a real worker, on the provider under test.

Every provider must run the user-visible patterns, not just the contract: function chaining
(HelloCities), an eternal orchestration with bounded history, a critical section that many
instances contend for, composite inputs through the data converter, fan-out/fan-in,
sub-orchestrations, external events with a timeout, retries, the atomic singleton start, and
``call_http`` (an error status is a response; ``202`` + ``Location`` is polled).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ostinato as ot
from ostinato.provider import StorageProvider

from ostinato_conformance.base import ConformanceTestBase

app = ot.App()


@app.activity
def scenario_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def scenario_hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(scenario_hello, input=city)))
    return outputs


@app.orchestrator
def scenario_eternal(ctx: ot.OrchestrationContext, iteration: int) -> Any:
    ctx.set_custom_status({"iteration": iteration})
    yield ctx.create_timer(timedelta(milliseconds=10))
    ctx.continue_as_new(iteration + 1)


@app.entity
def scenario_counter(ctx: ot.EntityContext, value: int | None) -> int:
    if ctx.operation_name == "set":
        ctx.set_state(value)
    current: int = ctx.get_state(0)
    return current


@app.activity
def scenario_clock(ctx: ot.ActivityContext, _: Any) -> float:
    return time.time()


@app.orchestrator
def scenario_critical_section(ctx: ot.OrchestrationContext, key: str) -> Any:
    counter = ot.EntityId("scenario_counter", key)
    with (yield ctx.lock_entities(ot.EntityId("LockEntity", key))):
        entered = yield ctx.call_activity(scenario_clock)
        value = yield ctx.call_entity(counter, "get")
        yield ctx.create_timer(timedelta(milliseconds=10))
        yield ctx.call_entity(counter, "set", value + 1)
        left = yield ctx.call_activity(scenario_clock)
    return [entered, left]


@dataclass(frozen=True)
class Course:
    title: str
    credits: int


@app.activity
def scenario_recommend(ctx: ot.ActivityContext, query: tuple[str, int]) -> list[Course]:
    major, year = query
    return [Course(f"{major} {year}01", 3), Course(f"{major} {year}02", 4)]


@app.orchestrator
def scenario_courses(ctx: ot.OrchestrationContext, query: tuple[str, int]) -> Any:
    courses = yield ctx.call_activity(scenario_recommend, input=query)
    return [[c.title for c in courses], sum(c.credits for c in courses)]


@app.activity
def scenario_square(ctx: ot.ActivityContext, n: int) -> int:
    return n * n


@app.orchestrator
def scenario_fan_out(ctx: ot.OrchestrationContext, n: int) -> Any:
    squares = yield ot.when_all([ctx.call_activity(scenario_square, input=i) for i in range(n)])
    children = yield ot.when_all(
        [ctx.call_sub_orchestrator(scenario_hello_cities, input=None) for _ in range(2)]
    )
    return [sum(squares), children]


@app.orchestrator
def scenario_approval(ctx: ot.OrchestrationContext, timeout_ms: int) -> Any:
    approval = ctx.wait_for_external_event("Approval")
    timer = ctx.create_timer(timedelta(milliseconds=timeout_ms))
    winner = yield ot.when_any([approval, timer])
    return f"approved: {approval.get_result()}" if winner is approval else "timed out"


_flaky_attempts: dict[str, int] = {}
_flaky_guard = threading.Lock()


@app.activity
def scenario_flaky(ctx: ot.ActivityContext, key: str) -> str:
    with _flaky_guard:
        _flaky_attempts[key] = _flaky_attempts.get(key, 0) + 1
        attempt = _flaky_attempts[key]
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"ok after {attempt}"


@app.orchestrator
def scenario_retries(ctx: ot.OrchestrationContext, key: str) -> Any:
    policy = ot.RetryPolicy(timedelta(milliseconds=10), max_number_of_attempts=5)
    return (yield ctx.call_activity(scenario_flaky, input=key, retry_policy=policy))


@app.orchestrator
def scenario_check_site(ctx: ot.OrchestrationContext, url: str) -> Any:
    response = yield ctx.call_http("GET", url, poll_interval=timedelta(milliseconds=50))
    return [response.status_code, response.json()]


@app.orchestrator
def scenario_wait_forever(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("stop")


@app.orchestrator(name="scenario_changing")
def scenario_changing(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_activity(scenario_hello, input="Tokyo")
    return (yield ctx.wait_for_external_event("go"))


#: A redeployment of ``scenario_changing`` whose code no longer matches its history.
changed_app = ot.App()
changed_app.activity(scenario_square)


@changed_app.orchestrator(name="scenario_changing")
def scenario_changing_v2(ctx: ot.OrchestrationContext, _: Any) -> Any:
    yield ctx.call_activity(scenario_square, input=2)
    return (yield ctx.wait_for_external_event("go"))


#: Events written by the orchestration step itself, in the step's time order.
_STEP_EVENTS = ("OrchestratorStarted", "OrchestratorCompleted", "ExecutionCompleted")


class _Site(BaseHTTPRequestHandler):
    polls: dict[str, int] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, headers = 200, {}
        if self.path == "/missing":
            status = 400
        elif self.path.startswith("/slow"):
            self.polls[self.path] = self.polls.get(self.path, 0) + 1
            if self.polls[self.path] < 3:
                status, headers = 202, {"Location": self.path, "Retry-After": "0.05"}
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _worker(provider: StorageProvider) -> Iterator[ot.Client]:
    with ot.Worker(app, provider, max_poll_interval=0.05):
        yield ot.Client(provider)


def _finish(client: ot.Client, instance_id: str, timeout: float = 60) -> ot.OrchestrationState:
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    return ot.raise_if_failed(state)


class ScenarioTests(ConformanceTestBase):
    """DESIGN §5: the scenarios every provider must run, end to end with a real worker."""

    def test_scenario_hello_cities(self, provider: StorageProvider) -> None:
        with _worker(provider) as client:
            state = _finish(client, client.schedule_new_orchestration(scenario_hello_cities))
        assert state.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        kinds = [type(e).__name__ for e in client.get_orchestration_history(state.instance_id)]
        assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
        assert kinds.count("TaskScheduled") == kinds.count("TaskCompleted") == 3

    def test_scenario_eternal_orchestration_has_bounded_history(
        self, provider: StorageProvider
    ) -> None:
        with _worker(provider) as client:
            instance_id = client.schedule_new_orchestration(scenario_eternal, input=0)
            deadline = time.monotonic() + 60
            while True:
                state = client.get_orchestration_state(instance_id)
                if state is not None and (state.custom_status or {}).get("iteration", 0) >= 5:
                    break
                assert time.monotonic() < deadline, "the eternal orchestration stalled"
                time.sleep(0.01)
            assert len(client.get_orchestration_history(instance_id)) <= 10
            client.terminate_orchestration(instance_id, output="stopped")
            final = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert final.runtime_status is ot.OrchestrationStatus.TERMINATED

    def test_scenario_critical_section_never_overlaps(self, provider: StorageProvider) -> None:
        with _worker(provider) as client:
            ids = [
                client.schedule_new_orchestration(scenario_critical_section, input="crit")
                for _ in range(8)
            ]
            spans = sorted(tuple(_finish(client, i).output) for i in ids)
            counter = client.get_entity(ot.EntityId("scenario_counter", "crit"))
        assert counter is not None and counter.state == 8, "an update inside a section was lost"
        for (_, left), (entered, _) in itertools.pairwise(spans):
            assert left <= entered, "two instances were inside the critical section at once"

    def test_scenario_composite_inputs_round_trip(self, provider: StorageProvider) -> None:
        with _worker(provider) as client:
            instance_id = client.schedule_new_orchestration(
                scenario_courses, input=("ComputerScience", 2)
            )
            state = _finish(client, instance_id)
        assert state.output == [["ComputerScience 201", "ComputerScience 202"], 7]

    def test_scenario_fan_out_fan_in_and_sub_orchestrations(
        self, provider: StorageProvider
    ) -> None:
        with _worker(provider) as client:
            state = _finish(client, client.schedule_new_orchestration(scenario_fan_out, input=50))
        hello = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        assert state.output == [sum(i * i for i in range(50)), [hello, hello]]

    def test_scenario_external_event_with_timeout(self, provider: StorageProvider) -> None:
        with _worker(provider) as client:
            timed_out = client.schedule_new_orchestration(scenario_approval, input=100)
            approved = client.schedule_new_orchestration(scenario_approval, input=60_000)
            client.wait_for_orchestration_start(approved, timeout=60)
            client.raise_orchestration_event(approved, "Approval", data="alice")
            assert _finish(client, timed_out).output == "timed out"
            assert _finish(client, approved).output == "approved: alice"

    def test_scenario_retries(self, provider: StorageProvider) -> None:
        key = f"retry-{time.monotonic_ns()}"
        with _worker(provider) as client:
            state = _finish(client, client.schedule_new_orchestration(scenario_retries, input=key))
        assert state.output == "ok after 3"

    def test_scenario_history_after_nondeterminism_is_complete_and_ordered(
        self, provider: StorageProvider
    ) -> None:
        with _worker(provider) as client:
            instance_id = client.schedule_new_orchestration(scenario_changing)
            deadline = time.monotonic() + 60
            while len(client.get_orchestration_history(instance_id)) < 7:  # waits for "go"
                assert time.monotonic() < deadline, "the first version never reached its wait"
                time.sleep(0.01)
        with ot.Worker(changed_app, provider, max_poll_interval=0.05):
            client.raise_orchestration_event(instance_id, "go", data="now")
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state.runtime_status is ot.OrchestrationStatus.FAILED
        assert state.failure_details is not None
        assert state.failure_details.error_type == "NonDeterminismError"
        history = client.get_orchestration_history(instance_id)
        kinds = [type(e).__name__ for e in history]
        # The event that brought the failing step is recorded before the failure.
        assert kinds[-4:] == ["EventRaised", *_STEP_EVENTS], kinds
        assert getattr(history[-4], "name", None) == "go"
        step_times = [e.timestamp for e in history if type(e).__name__ in _STEP_EVENTS]
        assert step_times == sorted(step_times), f"step events out of time order: {history}"

    def test_scenario_singleton_start_is_atomic(self, provider: StorageProvider) -> None:
        client = ot.Client(provider)
        barrier = threading.Barrier(20)
        outcomes: list[str] = []

        def start() -> None:
            barrier.wait()
            try:
                client.schedule_new_orchestration(scenario_wait_forever, instance_id="singleton")
                outcomes.append("started")
            except ot.InstanceAlreadyExistsError:
                outcomes.append("conflict")

        threads = [threading.Thread(target=start) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict"] * 19 + ["started"]

    def test_scenario_check_site_available(self, provider: StorageProvider) -> None:
        with _site() as site, _worker(provider) as client:
            runs = {
                path: client.schedule_new_orchestration(scenario_check_site, input=site + path)
                for path in ("/", "/missing", f"/slow-{time.monotonic_ns()}")
            }
            results = {path: _finish(client, i).output for path, i in runs.items()}
        assert results["/"][0] == 200
        assert results["/missing"][0] == 400  # an error status is a response, not a failure
        slow = next(v for k, v in results.items() if k.startswith("/slow"))
        assert slow[0] == 200  # two 202s were polled on durable timers
