"""Two revisions of ostinato side by side, in one run: HelloCities on SQLite, alternated.

    python3 dev.py run python benchmarks/compare.py 064506e HEAD
    python3 dev.py run python benchmarks/compare.py 064506e HEAD --rounds 5 --n 1000
    python3 dev.py run python benchmarks/compare.py 064506e HEAD --count 200

Each revision is checked out into a temporary git worktree, and every measurement runs in a
fresh process importing that worktree's ``core/src``; the revisions take turns (A, B, A,
B, ...) so that a machine getting busier or quieter weighs on both alike. Per round and
revision: ``--n`` HelloCities started at once from 16 client threads (orchestrations/s,
first start to last completion) and ``--latency`` HelloCities one at a time (p50 in ms).
The report gives the median of each column and the ratio B/A. Only the public API both
revisions share is used (``App``, ``Worker``, ``Client``, ``ostinato.sqlite``).

``--count N`` measures work instead of time, for a busy machine: each revision runs ``N``
HelloCities at once under a tracer that counts the Python bytecodes executed and the Python
calls made, per function (every thread; C code such as SQLite and ``json`` counts nothing
itself). The counts vary by a few percent with how the work happens to be batched; the
report gives the totals per HelloCities and the functions whose counts differ the most.
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


#: The counting run: the same workload (the text of :data:`CHILD` up to its timed part).
COUNT_CHILD = (
    CHILD.split("with tempfile.TemporaryDirectory()")[0]
    + r"""
import collections, threading
ops, calls, counting = collections.Counter(), collections.Counter(), [False]

def count_ops(frame, event, arg):
    if event == "opcode":
        ops[frame.f_code] += 1
    return count_ops

def count_call(frame, event, arg):
    if not counting[0]:
        return None
    calls[frame.f_code] += 1
    frame.f_trace_opcodes = True
    return count_ops

with tempfile.TemporaryDirectory() as tmp:
    provider = SqliteProvider(tmp + "/bench.db")
    threading.settrace(count_call)
    sys.settrace(count_call)
    with ot.Worker(app, provider):
        client = ot.Client(provider)
        wait_all(client, start(client, 1))
        counting[0] = True
        wait_all(client, start(client, n))
        counting[0] = False
    sys.settrace(None)
    threading.settrace(None)
    provider.close()
functions = collections.defaultdict(lambda: [0, 0])
for code in set(ops) | set(calls):
    # By module file name, so that a function keeps its key when its module moved.
    parts = code.co_filename.replace("\\", "/").split("/")
    where = "/".join(parts[-2:]) if parts[-1] == "__init__.py" else parts[-1]
    functions[f"{where}:{code.co_name}"][0] += calls[code]
    functions[f"{where}:{code.co_name}"][1] += ops[code]
print(json.dumps({"n": n, "functions": functions}))
"""
)


def count(core: Path, n: int) -> dict[str, list[int]]:
    """Python calls and bytecodes per function, ``n`` HelloCities of the revision at ``core``."""
    out = subprocess.run(
        [sys.executable, "-c", COUNT_CHILD, str(core), str(n), "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    functions: dict[str, list[int]] = json.loads(out.strip().splitlines()[-1])["functions"]
    return functions


def report_counts(counts: dict[str, dict[str, list[int]]], n: int, top: int = 25) -> None:
    """Totals per HelloCities for each revision, and the functions that differ the most."""
    print(f"\nPython work per HelloCities ({n} at once, SQLite):")
    for label, functions in counts.items():
        calls = sum(c for c, _ in functions.values()) / n
        ops = sum(o for _, o in functions.values()) / n
        print(f"  {label}: {ops:,.0f} bytecodes, {calls:,.0f} calls")
    (a_label, a), (b_label, b) = counts.items()
    names = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, [0, 0])[1] - a.get(k, [0, 0])[1]))
    print(f"  largest differences (bytecodes per HelloCities, {a_label} -> {b_label}):")
    for name in names[:top]:
        before, after = a.get(name, [0, 0])[1] / n, b.get(name, [0, 0])[1] / n
        print(f"    {before:8.1f} -> {after:8.1f}  ({after - before:+8.1f})  {name}")


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
    parser.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="count Python calls and bytecodes for N HelloCities instead of timing",
    )
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
            if args.count:
                counts = {
                    label: count(tree / "core" / "src", args.count) for label, tree in trees.items()
                }
                report_counts(counts, args.count)
                return 0
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
