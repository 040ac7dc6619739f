"""The README's HelloCities, run on Azurite twice in a row, each run quick.

A run that ends without releasing its partition leases leaves the next one waiting for them
to expire (the lease duration, 30 s by default) before its start message is received.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from azure_helpers import new_hub_name

ROOT = Path(__file__).resolve().parents[2]
#: Seconds one run of the example may take on an idle machine, imports excluded.
RUN_LIMIT = 3.0
#: On a busy machine each call to Azurite waits for a core: the limit grows with the load
#: average per core, up to half the default lease duration (what a stall costs).
MAX_RUN_LIMIT = 15.0


def run_limit() -> float:
    busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(MAX_RUN_LIMIT, RUN_LIMIT * max(1.0, busy))


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Hello, cities") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README has no HelloCities example"
    code = match.group(1)
    assert "ot.InMemoryProvider()" in code
    return code.replace("ot.InMemoryProvider()", "ot.provider_from_config()")


def test_readme_example_runs_quickly_twice_in_a_row(connection_string: str, tmp_path: Path) -> None:
    script = (
        "import time\nimport ostinato_azure\n_started = time.perf_counter()\n"
        + readme_example()
        + "\nprint('ELAPSED', time.perf_counter() - _started)\n"
    )
    (tmp_path / "example.py").write_text(script, encoding="utf-8")
    env = {
        **os.environ,
        "OSTINATO_PROVIDER": "azure",
        "OSTINATO_AZURE_CONNECTION_STRING": connection_string,
        "OSTINATO_TASK_HUB": new_hub_name(),
    }
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']", done.stdout
        elapsed, limit = float(lines[1].split()[1]), run_limit()
        assert elapsed < limit, (
            f"run {run} took {elapsed:.1f} s (limit {limit:.1f} s):\n{done.stderr}"
        )
