"""The benchmark workloads on Microsoft's ``durabletask`` (see ../protocol.py).

Runs inside ``benchmarks/.venvs/durabletask`` (``requirements.txt`` beside this file). The back
end is ``durabletask.testing.create_test_backend``: the SDK's in-memory sidecar (a gRPC server
in this process, nothing durable), with its history limit raised so that the 10,000-activity
fan-out and the long history fit. Worker and client talk to it over gRPC on localhost, as they
would to the Durable Task Scheduler or the Go sidecar.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Generator
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from durabletask import client as dt_client
from durabletask import task, worker
from durabletask.testing import create_test_backend
from protocol import (
    ROUND_TRIPS,
    PeerBench,
    latency_result,
    main,
    rate_result,
    rss_bytes,
    start_at_once,
    sweep_waves,
)


def say_hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def hello_cities(ctx: task.OrchestrationContext, _: Any) -> Generator[Any, Any, list[str]]:
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity(say_hello, input="London")))
    return outputs


def square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


def fan_out(ctx: task.OrchestrationContext, n: int) -> Generator[Any, Any, int]:
    results = yield task.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    return sum(results)


def counter(ctx: task.OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
    count = 0
    while True:
        yield ctx.wait_for_external_event("event")
        count += 1
        ctx.set_custom_status(count)


def idle(ctx: task.OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
    yield ctx.wait_for_external_event("never")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DurableTaskBench(PeerBench):
    name = "durabletask"

    def version(self) -> str:
        return version("durabletask")

    def settings(self) -> str:
        return (
            "create_test_backend: in-memory gRPC sidecar in the same process (not durable); "
            "TaskHubGrpcWorker with default concurrency"
        )

    def setup(self) -> None:
        logging.getLogger("durabletask").setLevel(logging.WARNING)
        port = _free_port()
        self.backend = create_test_backend(port=port, max_history_size=10**7)
        address = f"localhost:{port}"
        self.worker = worker.TaskHubGrpcWorker(host_address=address)
        for orchestrator in (hello_cities, fan_out, counter, idle):
            self.worker.add_orchestrator(orchestrator)
        for activity in (say_hello, square):
            self.worker.add_activity(activity)
        self.worker.start()
        self.client = dt_client.TaskHubGrpcClient(host_address=address)

    def teardown(self) -> None:
        self.worker.stop()
        self.backend.stop()

    def _wave(self, k: int) -> None:
        ids = start_at_once(lambda: self.client.schedule_new_orchestration(hello_cities), k)
        for instance_id in ids:
            state = self.client.wait_for_orchestration_completion(instance_id, timeout=600)
            assert state is not None
            assert state.runtime_status == dt_client.OrchestrationStatus.COMPLETED

    def hello_cities(self, n: int) -> dict[str, Any]:
        self._wave(1)
        started = time.perf_counter()
        self._wave(n)
        return rate_result(n, time.perf_counter() - started)

    def latency(self, runs: int) -> dict[str, Any]:
        samples = []
        for i in range(runs + 5):
            started = time.perf_counter()
            self._wave(1)
            if i >= 5:
                samples.append((time.perf_counter() - started) * 1000)
        return latency_result(samples)

    def fan_out(self, n: int) -> dict[str, Any]:
        started = time.perf_counter()
        instance_id = self.client.schedule_new_orchestration(fan_out, input=n)
        state = self.client.wait_for_orchestration_completion(instance_id, timeout=3600)
        elapsed = time.perf_counter() - started
        assert state is not None and state.serialized_output is not None, state
        assert json.loads(state.serialized_output) == sum(i * i for i in range(n))
        return rate_result(n, elapsed)

    def _count(self, instance_id: str) -> int:
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=True)
        assert state is not None
        return int(json.loads(state.serialized_custom_status or "0"))

    def _round_trip(self, instance_id: str, count: int) -> float:
        started = time.perf_counter()
        self.client.raise_orchestration_event(instance_id, "event", data=count)
        while self._count(instance_id) != count:
            time.sleep(0.0005)
        return (time.perf_counter() - started) * 1000

    def replay(self, events: int) -> dict[str, Any]:
        instance_id = self.client.schedule_new_orchestration(counter)
        self.client.wait_for_orchestration_start(instance_id, timeout=60)
        count = 0
        short = []
        for _ in range(ROUND_TRIPS):
            count += 1
            short.append(self._round_trip(instance_id, count))
        while len(self.client.get_orchestration_history(instance_id)) < events:
            for _ in range(500):
                self.client.raise_orchestration_event(instance_id, "event", data=0)
            count += 500
            while self._count(instance_id) != count:
                time.sleep(0.01)
        history = len(self.client.get_orchestration_history(instance_id))
        long = []
        for _ in range(ROUND_TRIPS):
            count += 1
            long.append(self._round_trip(instance_id, count))
        self.client.terminate_orchestration(instance_id)
        return {
            "history_events": history,
            "short_ms": sorted(short)[len(short) // 2],
            "long_ms": sorted(long)[len(long) // 2],
        }

    def idle(self, n: int) -> dict[str, Any]:
        rss_before = rss_bytes()
        started = time.perf_counter()
        ids = [self.client.schedule_new_orchestration(idle) for _ in range(n)]
        for instance_id in ids:
            self.client.wait_for_orchestration_start(instance_id, timeout=600)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        result = {
            "n": n,
            "seconds": elapsed,
            "rss_bytes_per_instance": (rss_bytes() - rss_before) / n,
            "storage_bytes_per_instance": None,
        }
        for instance_id in ids:
            self.client.terminate_orchestration(instance_id)
        return result

    def sweep(self, levels: list[int], total: int) -> dict[str, Any]:
        return {str(level): sweep_waves(level, total, self._wave) for level in levels}


if __name__ == "__main__":
    sys.exit(main(DurableTaskBench()))
