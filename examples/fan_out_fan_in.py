"""Scenario 7, fan-out/fan-in: back up every file of a directory in parallel.

One activity lists the files; one activity per file "copies" it (here: computes its size and
a checksum); ``ot.when_all`` waits for all of them and the orchestrator adds the sizes up.
The activities run in parallel, up to the worker's ``--max-concurrent-activities``.

    ostinato worker examples.fan_out_fan_in:app
    ostinato start backup_site_content --input '"examples"' --wait
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import ostinato as ot

app = ot.App()


@app.activity
def get_file_list(ctx: ot.ActivityContext, root_directory: str) -> list[str]:
    """Every file under ``root_directory``, sorted."""
    root = Path(root_directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root_directory!r} is not a directory")
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


@app.activity
def copy_file_to_blob(ctx: ot.ActivityContext, file_path: str) -> int:
    """Upload one file (simulated: read and checksum it); returns its size in bytes."""
    data = Path(file_path).read_bytes()
    hashlib.sha256(data).hexdigest()
    return len(data)


@app.orchestrator
def backup_site_content(
    ctx: ot.OrchestrationContext, root_directory: str | None
) -> Generator[Any, Any, dict[str, int]]:
    files: list[str] = yield ctx.call_activity(get_file_list, input=root_directory or ".")
    tasks = [ctx.call_activity(copy_file_to_blob, input=path) for path in files]  # fan out
    sizes: list[int] = yield ot.when_all(tasks)  # fan in
    return {"files": len(files), "total_bytes": sum(sizes)}


def main(
    provider: ot.StorageProvider | None = None,
    *,
    root_directory: str | os.PathLike[str] = Path(__file__).parent,
    timeout: float = 30,
) -> dict[str, int]:
    """Back up ``root_directory`` end to end; returns the file count and total size."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with ot.Worker(app, provider):
        instance_id = client.schedule_new_orchestration(
            backup_site_content, input=str(root_directory)
        )
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    output: dict[str, int] = ot.raise_if_failed(state).output
    return output


if __name__ == "__main__":
    print(main())
