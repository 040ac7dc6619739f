"""Two revisions of ostinato side by side, in one run: HelloCities on SQLite, alternated.

    python3 dev.py run python benchmarks/compare.py 064506e HEAD
    python3 dev.py run python benchmarks/compare.py 064506e HEAD --rounds 5 --n 1000

Each revision is checked out into a temporary git worktree, and every measurement runs in a
fresh process importing that worktree's ``core/src``; the revisions take turns (A, B, A,
B, ...) so that a machine getting busier or quieter weighs on both alike. Per round and
revision: ``--n`` HelloCities started at once from 16 client threads (orchestrations/s,
first start to last completion) and ``--latency`` HelloCities one at a time (p50 in ms).
The report gives the median of each column and the ratio B/A. Only the public API both
revisions share is used (``App``, ``Worker``, ``Client``, ``ostinato.sqlite``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The measurement, run in a child process whose ``sys.path`` starts with a revision's core.
CHILD = r"""
import json, statistics, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
import ostinato as ot
from ostinato.sqlite import SqliteProvider

assert ot.__file__.startswith(sys.argv[1]), ot.__file__
n, latency_runs = int(sys.argv[2]), int(sys.argv[3])
app = ot.App()

@app.activity
def say_hello(ctx, city):
    return f"Hello {city}!"

@app.orchestrator
def hello_cities(ctx, _):
    outputs = []
    for city in ("Tokyo", "Seattle", "London"):
        outputs.append((yield ctx.call_activity(say_hello, input=city)))
    return outputs

def start(client, k):
    threads = min(16, k)
    shares = [k // threads + (1 if i < k % threads else 0) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        chunks = pool.map(
            lambda share: [client.schedule_new_orchestration(hello_cities) for _ in range(share)],
            shares,
        )
        return [i for chunk in chunks for i in chunk]

def wait_all(client, ids):
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=600)
        assert state.runtime_status.name == "COMPLETED", state

with tempfile.TemporaryDirectory() as tmp:
    provider = SqliteProvider(tmp + "/bench.db")
    with ot.Worker(app, provider):
        client = ot.Client(provider)
        wait_all(client, start(client, 1))
        began = time.perf_counter()
        wait_all(client, start(client, n))
        per_s = n / (time.perf_counter() - began)
    provider.close()
with tempfile.TemporaryDirectory() as tmp:
    provider = SqliteProvider(tmp + "/bench.db")
    samples = []
    with ot.Worker(app, provider):
        client = ot.Client(provider)
        for i in range(latency_runs + 5):
            began = time.perf_counter()
            wait_all(client, [client.schedule_new_orchestration(hello_cities)])
            if i >= 5:
                samples.append((time.perf_counter() - began) * 1000)
    provider.close()
print(json.dumps({"per_s": per_s, "p50_ms": statistics.median(samples)}))
"""


def measure(core: Path, n: int, latency_runs: int) -> dict[str, float]:
    """One round for the revision whose ``core/src`` is ``core``."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(core), str(n), str(latency_runs)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", help="the first revision (the baseline)")
    parser.add_argument("b", help="the second revision")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per revision")
    parser.add_argument("--n", type=int, default=1000, help="HelloCities started at once")
    parser.add_argument("--latency", type=int, default=200, help="one-at-a-time runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path] = {}
        for label in (args.a, args.b):
            tree = Path(tmp) / f"tree{len(trees)}"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), label],
                check=True,
            )
            trees[label] = tree
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
        try:
            for round_ in range(args.rounds):
                for label, tree in trees.items():
                    result = measure(tree / "core" / "src", args.n, args.latency)
                    runs[label].append(result)
                    print(
                        f"round {round_ + 1} {label}: {result['per_s']:,.0f} HelloCities/s, "
                        f"p50 {result['p50_ms']:.2f} ms",
                        flush=True,
                    )
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    medians: dict[str, dict[str, Any]] = {
        label: {key: statistics.median(r[key] for r in results) for key in ("per_s", "p50_ms")}
        for label, results in runs.items()
    }
    a, b = medians[args.a], medians[args.b]
    print(f"\nmedians of {args.rounds} alternated rounds, SQLite, {args.n} HelloCities at once:")
    for label, median in medians.items():
        spread = ", ".join(f"{r['per_s']:,.0f}" for r in runs[label])
        print(
            f"  {label}: {median['per_s']:,.0f} HelloCities/s ({spread}), "
            f"p50 {median['p50_ms']:.2f} ms"
        )
    print(
        f"  {args.b} / {args.a}: throughput {b['per_s'] / a['per_s']:.2f}x, "
        f"p50 {b['p50_ms'] / a['p50_ms']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
