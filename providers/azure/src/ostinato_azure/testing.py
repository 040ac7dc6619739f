"""Azurite for tests and benchmarks, the storage-operation count of HelloCities, and hooks
that corrupt stored records past the provider, as a bug or a bad disk would, for the fault
tests (:func:`corrupt_history`, :func:`corrupt_activity_input`, :func:`rewrite_activity_tasks`).

:func:`azurite_connection_string` gives ``OSTINATO_AZURE_CONNECTION_STRING`` if set, else starts
the Azurite pinned in the repository's ``azurite/`` folder (stopped at interpreter exit).
:func:`benchmark_provider` is the benchmark harness's factory. As a script it measures
HelloCities throughput and storage operations per instance::

    python3 dev.py run python -m ostinato_azure.testing 200
"""

from __future__ import annotations

import atexit
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ostinato_azure.provider import AzureStorageProvider

ENV_CONNECTION_STRING = "OSTINATO_AZURE_CONNECTION_STRING"

_started: dict[str, Any] = {}


def _find_start_script() -> Path | None:
    for base in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        candidate = base / "azurite" / "start.py"
        if candidate.exists():
            return candidate
    return None


def azurite_connection_string() -> str:
    """A storage account to test against: the environment's, or a local Azurite."""
    if os.environ.get(ENV_CONNECTION_STRING):
        return os.environ[ENV_CONNECTION_STRING]
    if "azurite" not in _started:
        script = _find_start_script()
        if script is None:
            raise RuntimeError(
                f"Set {ENV_CONNECTION_STRING}, or run from the ostinato repository "
                "(azurite/start.py starts the pinned emulator)"
            )
        spec = importlib.util.spec_from_file_location("ostinato_azurite_start", script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        azurite = module.Azurite()
        azurite.start()
        atexit.register(azurite.stop)
        _started["azurite"] = azurite
    return str(_started["azurite"].connection_string)


def benchmark_provider(directory: Path | None = None, **settings: Any) -> AzureStorageProvider:
    """A provider on a fresh task hub of :func:`azurite_connection_string`."""
    del directory
    hub = "bench" + uuid.uuid4().hex[:12]
    return AzureStorageProvider(azurite_connection_string(), hub, **settings)


def corrupt_history(connection_string: str, task_hub: str, instance_id: str, text: str) -> int:
    """Overwrite every history row of the instance's current execution with ``text``;
    returns how many rows were overwritten."""
    from azure.data.tables import TableClient, UpdateMode

    from ostinato_azure._keys import table_key
    from ostinato_azure._names import HubNames

    names = HubNames(task_hub, 1)
    pk = table_key(instance_id)
    with TableClient.from_connection_string(connection_string, names.instances_table) as table:
        row = table.get_entity(pk, "")
        prefix = f"{row['ExecutionId']}."
        keys = [
            str(entity["RowKey"])
            for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
            if str(entity["RowKey"]).startswith(prefix)
        ]
        for key in keys:
            entity = {"PartitionKey": pk, "RowKey": key, "Event": text}
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)
    return len(keys)


def corrupt_activity_input(
    connection_string: str, task_hub: str, instance_id: str, text: str
) -> int:
    """Set the input of the instance's queued activity tasks to ``text``; returns how many
    were changed (see :func:`rewrite_activity_tasks`)."""
    return rewrite_activity_tasks(
        connection_string, task_hub, instance_id, lambda task: json.dumps({**task, "input": text})
    )


def rewrite_activity_tasks(
    connection_string: str,
    task_hub: str,
    instance_id: str,
    rewrite: Callable[[dict[str, Any]], str],
) -> int:
    """Replace the stored text of the instance's queued activity tasks with ``rewrite(task)``
    (``task``: the stored JSON object); returns how many were rewritten. The visible tasks
    are received for a moment (none may be held by a worker) and made visible again at once,
    their delivery count as it was (a receive here is no delivery)."""
    from azure.storage.queue import QueueClient

    from ostinato_azure._names import HubNames
    from ostinato_azure._queues import split_count, with_count

    names = HubNames(task_hub, 1)
    changed = 0
    with QueueClient.from_connection_string(connection_string, names.activity_queue) as queue:
        received = list(
            queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30)
        )
        for message in received:
            stored, body = split_count(str(message.content))
            task = json.loads(body)
            if task.get("instance_id") == instance_id:
                body = rewrite(task)
                changed += 1
            # No count yet: the first delivery is still to come (see _queues.with_count).
            content = with_count(0 if stored is None else stored, body)
            queue.update_message(
                message, pop_receipt=message.pop_receipt, content=content, visibility_timeout=0
            )
    return changed


def measure_hello_cities(n: int) -> dict[str, Any]:
    """Run ``n`` HelloCities at once on one worker; throughput and operations per instance.

    The client has its own provider object so that its polling (``wait_for_...``) is not
    counted: the counts are what the instances themselves cost (start + worker).
    """
    import ostinato as ot

    app = ot.App()

    @app.activity
    def say_hello(ctx: ot.ActivityContext, city: str) -> str:
        return f"Hello {city}!"

    @app.orchestrator
    def hello_cities(ctx: ot.OrchestrationContext, _: Any) -> Any:
        outputs = []
        for city in ("Tokyo", "Seattle", "London"):
            outputs.append((yield ctx.call_activity(say_hello, input=city)))
        return outputs

    connection_string = azurite_connection_string()
    hub = "bench" + uuid.uuid4().hex[:12]
    worker_provider = AzureStorageProvider(connection_string, hub)
    client_provider = AzureStorageProvider(connection_string, hub)
    starter = AzureStorageProvider(connection_string, hub)
    watcher = ot.Client(client_provider)
    try:
        with ot.Worker(app, worker_provider):
            warm = ot.Client(starter).schedule_new_orchestration(hello_cities)
            watcher.wait_for_orchestration_completion(warm, timeout=60)
            worker_provider.reset_operation_counts()
            starter.reset_operation_counts()
            started = time.perf_counter()
            ids = [ot.Client(starter).schedule_new_orchestration(hello_cities) for _ in range(n)]
            for instance_id in ids:
                state = watcher.wait_for_orchestration_completion(instance_id, timeout=600)
                assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
            elapsed = time.perf_counter() - started
            ops: Counter[str] = Counter(worker_provider.operations)
            ops.update(starter.operations)
    finally:
        for provider in (worker_provider, client_provider, starter):
            provider.close()
    receives = ops["queue.receive"]
    total = sum(ops.values())
    return {
        "instances": n,
        "seconds": round(elapsed, 2),
        "per_second": round(n / elapsed, 1),
        "operations_per_instance": round(total / n, 2),
        "operations_per_instance_without_receives": round((total - receives) / n, 2),
        "operations": dict(sorted(ops.items())),
    }


def measure_baseline(ref: str, n: int) -> dict[str, Any]:
    """:func:`measure_hello_cities` with this provider's code as of git ``ref`` (a subprocess
    on the same Azurite), for a before/after comparison on the same machine at the same time.
    """
    root = Path(__file__).resolve().parents[4]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "providers/azure/src/ostinato_azure"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="ostinato-baseline-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        src = Path(tmp) / "providers" / "azure" / "src"
        path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        env[ENV_CONNECTION_STRING] = azurite_connection_string()
        code = (
            "import json, ostinato_azure.testing as t; "
            f"assert t.__file__.startswith({str(src)!r}), t.__file__; "
            f"print(json.dumps(t.measure_hello_cities({n})))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"The baseline run ({ref}) failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["ref"] = ref
    return result


def operations_markdown(result: dict[str, Any], command: str) -> str:
    """``result`` of :func:`measure_hello_cities` as the generated OPERATIONS.md."""
    import platform
    from datetime import UTC, datetime

    n = result["instances"]
    lines = [
        "<!-- Generated by `python -m ostinato_azure.testing N --write`; do not edit. -->",
        "# Storage operations per HelloCities instance (Azurite)",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {n:,} HelloCities "
        "(three sequential activities) started at once on one worker; the client's polling "
        "goes through a separate provider object and is not counted. Machine: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average (1 min) "
        f"{result['load'][0]:.1f} at the start and {result['load'][1]:.1f} at the end, Azurite "
        "on the same machine. The machine is shared and noisy: rerun it rather than compare "
        "runs.",
        "",
        "| storage call | per instance |",
        "|---|---|",
    ]
    lines += [f"| `{kind}` | {count / n:.2f} |" for kind, count in result["operations"].items()]
    lines += [
        f"| **total** | **{result['operations_per_instance']:.2f}** "
        f"({result['operations_per_instance_without_receives']:.2f} without receives) |",
        "",
        f"Throughput: {result['per_second']:.1f} HelloCities/s ({n:,} in "
        f"{result['seconds']:.1f} s); Azurite's request rate on these cores is the limit, so "
        "fewer calls per instance is what raises it.",
        "",
    ]
    baseline = result.get("baseline")
    if baseline is not None:
        lines += [
            "## Before and after, in the same run",
            "",
            f"The same measurement with the provider as of `{baseline['ref']}` (run just before, "
            "in a subprocess on the same Azurite):",
            "",
            "| | storage calls per instance | without receives | HelloCities/s |",
            "|---|---|---|---|",
            f"| `{baseline['ref']}` | {baseline['operations_per_instance']:.2f} | "
            f"{baseline['operations_per_instance_without_receives']:.2f} | "
            f"{baseline['per_second']:.1f} |",
            f"| this version | {result['operations_per_instance']:.2f} | "
            f"{result['operations_per_instance_without_receives']:.2f} | "
            f"{result['per_second']:.1f} |",
            "",
            f"Throughput ratio (this version / `{baseline['ref']}`): "
            f"**{result['per_second'] / baseline['per_second']:.2f}**; calls per instance: "
            f"{result['operations_per_instance'] / baseline['operations_per_instance']:.2f}.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m ostinato_azure.testing [N] [--write [FILE]] [--baseline REF]``."""
    import argparse

    parser = argparse.ArgumentParser(description=measure_hello_cities.__doc__)
    parser.add_argument("instances", nargs="?", type=int, default=100)
    parser.add_argument(
        "--write",
        nargs="?",
        type=Path,
        const=Path(__file__).resolve().parents[2] / "OPERATIONS.md",
        help="write the table (default providers/azure/OPERATIONS.md)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="first measure the provider as of this git ref (e.g. main), for the ratio",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    baseline = measure_baseline(args.baseline, args.instances) if args.baseline else None
    result = measure_hello_cities(args.instances)
    result["load"] = [load, os.getloadavg()[0]]
    if baseline is not None:
        result["baseline"] = baseline
    print(json.dumps(result, indent=2))
    if args.write:
        command = "python -m ostinato_azure.testing " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        args.write.write_text(operations_markdown(result, command), encoding="utf-8")
        print(f"Wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
