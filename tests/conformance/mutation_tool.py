"""Cosmic Ray (an automated mutation tool) over the real providers, with a conformance run as
its test command; writes ``docs/conformance-mutation-tool.md``.

Usage (from the repository root; CPU-heavy, so under ``nice`` on a shared machine)::

    nice -n 10 uv run python tests/conformance/mutation_tool.py --json R.json  # writes the doc
    nice -n 10 uv run python tests/conformance/mutation_tool.py --sample 40    # fewer mutants
    nice -n 10 uv run python tests/conformance/mutation_tool.py --dry-run      # count only
    uv run python tests/conformance/mutation_tool.py --from-json R.json  # re-render (triage)

What it does, for each target (the relational toolkit and the SQLite provider, run by the
SQLite conformance run; the example file provider, run by its own):

1. copies the repository's sources to a temporary folder (as ``mutants.py`` does; the working
   tree is never written) and runs the target's conformance run (quick profile) there once
   under ``coverage``: the baseline, which must pass, and the lines it executes;
2. ``cosmic-ray init`` generates every mutant of the target's modules; mutants of lines the run
   never executes, and of the operators in ``EXCLUDED_OPERATORS``, are marked skipped; of the
   rest, a seeded random sample of ``--sample`` mutants (split between the targets by their
   share of the mutants) is kept and the others are marked skipped;
3. ``cosmic-ray exec`` runs the conformance run against each sampled mutant (the suite's
   parts ordered so that most bugs fail soonest, stopping at the first failure; ``--timeout``
   seconds at most: a timeout counts as a kill, reported apart);
4. the doc lists the counts and every survivor with its diff and its triage from
   ``mutation_triage.TRIAGE`` (an equivalent mutant and why, or the test that closed the hole);
   a survivor with no triage is marked **untriaged** and the script exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mutant_runner import ROOT, check_imports, copy_tree, environment  # noqa: E402
from mutation_triage import TRIAGE  # noqa: E402

DOC = ROOT / "docs" / "conformance-mutation-tool.md"

#: Operators left out: they turn arithmetic into bit or power operations, or insert/replace
#: random variables, producing code no engineer writes (and that crashes at once).
EXCLUDED_OPERATORS = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|RShift|LShift|BitOr|BitAnd|BitXor)",
    r"core/ReplaceUnaryOperator_\w+_Invert",
    r"core/ReplaceUnaryOperator_Delete_Invert",
    r"core/VariableInserter",
    r"core/VariableReplacer",
)


#: The relational toolkit's modules (all but ``transfer``, the export/import statements that
#: only the operations tests drive: left out to keep the sample on the core contract's paths).
RELATIONAL_MODULES = (
    "provider", "statements", "dialect", "rows", "schema",
    "grouping", "leases", "retry", "connection", "migrations",
)  # fmt: skip


#: Seconds one test of a conformance run may take (pytest-timeout); a mutant's whole run is
#: bounded by ``--timeout``.
PER_TEST_TIMEOUT = 180


@dataclass(frozen=True)
class Target:
    """Modules mutated together, and the conformance run that must kill their mutants."""

    name: str
    run: str
    modules: tuple[str, ...]


TARGETS = (
    Target(
        "sqlite",
        "tests/sqlite/test_sqlite_conformance.py",
        (
            *(f"core/src/ostinato/relational/{m}.py" for m in RELATIONAL_MODULES),
            "core/src/ostinato/sqlite/provider.py",
        ),
    ),
    Target(
        "file",
        "tests/conformance/test_example_provider_conformance.py",
        ("examples/custom_provider/file_provider.py",),
    ),
)


@dataclass
class Mutant:
    """One sampled mutant and what the runs did with it."""

    target: str
    job_id: str
    path: str
    line: int
    operator: str
    occurrence: int
    source: str  # the mutated line, before the mutation
    diff: str = ""
    outcome: str = ""  # killed | timeout | survived | incompetent; "": not run (time box)
    seconds: float = 0.0

    @property
    def key(self) -> str:
        """Stable enough to triage by: the file, the operator and the mutated line's text."""
        mutated = next(
            (
                line[1:].strip()
                for line in self.diff.splitlines()
                if line.startswith("+") and not line.startswith("+++")
            ),
            self.source,
        )
        return f"{self.path.rsplit('/', 1)[-1]}|{self.operator.split('/')[-1]}|{mutated}"


@dataclass
class TargetResult:
    target: Target
    generated: int = 0
    not_executed: int = 0
    excluded_operator: int = 0
    sampled: list[Mutant] = field(default_factory=list)
    baseline_seconds: float = 0.0
    seconds: float = 0.0


def _pytest(target: Target, timeout: int) -> list[str]:
    """The target's whole conformance run (quick profile), stopping at its first failure."""
    return [
        sys.executable, "-m", "pytest", target.run, "-x", "-q", "-p", "no:cacheprovider",
        f"--timeout={PER_TEST_TIMEOUT}",
    ]  # fmt: skip


def _write_config(root: Path, target: Target, timeout: int) -> Path:
    command = shlex.join(_pytest(target, timeout))
    modules = ", ".join(json.dumps(m) for m in target.modules)
    text = (
        "[cosmic-ray]\n"
        f"module-path = [{modules}]\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    path = root / f"cosmic-ray-{target.name}.toml"
    path.write_text(text, "utf-8")
    return path


def _executed_lines(root: Path, target: Target, timeout: int) -> dict[str, set[int]]:
    """Run the conformance run under coverage (the baseline); the lines it executed."""
    data = root / f".coverage-{target.name}"
    command = [
        sys.executable, "-m", "coverage", "run", f"--data-file={data}",
        f"--include={','.join(target.modules)}",
        "-m", *_pytest(target, timeout)[2:],
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=root, env=environment(root), capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        raise SystemExit(f"baseline of {target.name} fails:\n{run.stdout[-3000:]}{run.stderr}")
    out = root / f"coverage-{target.name}.json"
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(out)],
        cwd=root,
        env=environment(root),
        capture_output=True,
        check=True,
    )
    files = json.loads(out.read_text("utf-8"))["files"]
    return {
        str((root / name).resolve().relative_to(root.resolve())): set(info["executed_lines"])
        for name, info in files.items()
    }


def _cosmic_ray(root: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", *args],
        cwd=root,
        env=environment(root),
        check=True,
        capture_output=True,
    )


def generate(root: Path, target: Target, timeout: int) -> tuple[TargetResult, Path, list[Mutant]]:
    """Baseline, ``cosmic-ray init`` and the filters; the candidates (executed, kept
    operators), nothing sampled yet."""
    import re

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    result = TargetResult(target)
    started = time.monotonic()
    executed = _executed_lines(root, target, timeout)
    result.baseline_seconds = time.monotonic() - started
    config = _write_config(root, target, timeout)
    session = root / f"session-{target.name}.sqlite"
    _cosmic_ray(root, "init", config.name, session.name)
    excluded = re.compile("|".join(f"(?:{e})$" for e in EXCLUDED_OPERATORS))
    candidates: list[Mutant] = []
    skipped: dict[str, list[str]] = {"operator excluded": [], "line not executed by the run": []}
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            result.generated += 1
            (spec,) = item.mutations
            line = spec.start_pos[0]
            if excluded.match(spec.operator_name):
                skipped["operator excluded"].append(item.job_id)
            elif line not in executed.get(str(spec.module_path), set()):
                skipped["line not executed by the run"].append(item.job_id)
            else:
                text = (root / spec.module_path).read_text("utf-8").splitlines()[line - 1]
                candidates.append(
                    Mutant(
                        target.name,
                        item.job_id,
                        str(spec.module_path),
                        line,
                        spec.operator_name,
                        spec.occurrence,
                        text.strip(),
                    )
                )
        for reason, job_ids in skipped.items():
            skip = WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED)
            db.set_multiple_results(job_ids, skip)
    result.excluded_operator = len(skipped["operator excluded"])
    result.not_executed = len(skipped["line not executed by the run"])
    return result, session, candidates


def skip_unsampled(session: Path, chosen: list[Mutant]) -> None:
    """Mark the candidates not in the sample as skipped in the session."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    keep = {m.job_id for m in chosen}
    with use_db(str(session), WorkDB.Mode.open) as db:
        others = [item.job_id for item in db.pending_work_items if item.job_id not in keep]
        skip = WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED)
        db.set_multiple_results(others, skip)


def run_one(root: Path, session: Path, target: Target, mutant: Mutant, timeout: int) -> None:
    """Cosmic Ray's mutate-and-test for one mutant (what its local distributor does for each
    pending job), run in the copy with the copy's environment; the result goes into the
    session (so ``cr-report`` reads it) and into ``mutant``."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    with use_db(str(session), WorkDB.Mode.open) as db:
        (item,) = [i for i in db.pending_work_items if i.job_id == mutant.job_id]
    before, env = Path.cwd(), dict(os.environ)
    os.chdir(root)
    os.environ.clear()
    os.environ.update(environment(root))
    started = time.monotonic()
    try:
        work = mutate_and_test(item.mutations, shlex.join(_pytest(target, timeout)), timeout)
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(env)
    mutant.seconds = time.monotonic() - started
    with use_db(str(session), WorkDB.Mode.open) as db:
        db.set_result(item.job_id, work)
    mutant.diff = work.diff or ""
    if work.worker_outcome != WorkerOutcome.NORMAL:
        mutant.outcome = "incompetent"
    elif work.test_outcome == TestOutcome.KILLED:
        mutant.outcome = "timeout" if work.output == "timeout" else "killed"
    elif work.test_outcome == TestOutcome.SURVIVED:
        mutant.outcome = "survived"
    else:
        mutant.outcome = "incompetent"


def render(results: list[TargetResult], sample: int, seed: int, time_box: float) -> str:
    lines = [
        "# Automated mutation testing of the real providers (Cosmic Ray)",
        "",
        "Generated by `nice -n 10 uv run python tests/conformance/mutation_tool.py"
        + (f" --sample {sample} --seed {seed}" if (sample, seed) != (DEFAULT_SAMPLE, 0) else "")
        + f" --time-box {time_box:g}"
        + " --json docs/conformance-mutation-tool.json`; do not edit by hand (the triage lives in"
        " `tests/conformance/mutation_triage.py`; `--from-json docs/conformance-mutation-tool.json`"
        " renders it again without a run).",
        "",
        "[Cosmic Ray](https://cosmic-ray.readthedocs.io) generates every mutant of the modules",
        "below (operators swapped, comparisons flipped, constants changed, `and`/`or`, `not`",
        "added, `break`/`continue`, loops run zero times, exceptions replaced, decorators",
        "removed). The test command is that provider's conformance run (the standard suite,",
        "nothing provider-specific) in its quick profile, ordered so that most bugs fail",
        "soonest (the mutant runner's order: state machine, contract tests, processes,",
        "programs, scenarios) and stopping at the first failure.",
        "Mutants of lines the run never executes (found by a baseline run under `coverage`)",
        "and of the operators that turn arithmetic into bit or power operations or insert",
        "random variables are left out; of the rest, a seeded random sample runs, in a",
        "shuffled order, until the time box ends (the whole population takes days on this",
        "machine's two shared cores): *run* counts the sampled mutants that ran. Timeouts",
        "count as kills and are shown apart.",
        "",
        "| target | modules | generated | operator left out | line not executed | candidates "
        "| sampled | run | killed | timeouts | survived | incompetent | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        count = {o: sum(m.outcome == o for m in r.sampled) for o in ("killed", "timeout")}
        survivors = [m for m in r.sampled if m.outcome == "survived"]
        candidates = r.generated - r.excluded_operator - r.not_executed
        incompetent = sum(m.outcome == "incompetent" for m in r.sampled)
        modules = "<br>".join(f"`{m.split('/src/')[-1]}`" for m in r.target.modules)
        lines.append(
            f"| {r.target.name} (`{r.target.run}`) | {modules} | {r.generated} "
            f"| {r.excluded_operator} | {r.not_executed} | {candidates} | {len(r.sampled)} "
            f"| {sum(bool(m.outcome) for m in r.sampled)} "
            f"| {count['killed']} | {count['timeout']} | {len(survivors)} "
            f"| {incompetent} | {r.seconds / 60:.0f} |"
        )
    survivors = [m for r in results for m in r.sampled if m.outcome == "survived"]
    lines += [
        "",
        "## Survivors and their triage",
        "",
        "Each survivor: its diff and its triage — an *equivalent* mutant (no run of any",
        "provider can tell it from the original; why), or a *hole* and the conformance test",
        "that now kills it.",
        "",
    ]
    if not survivors:
        lines.append("None.")
    for m in survivors:
        triage = TRIAGE.get(m.key, "**untriaged**")
        lines += [
            f"### `{m.path.rsplit('/', 1)[-1]}` line {m.line}: {m.operator.split('/')[-1]}",
            "",
            f"Triage: {triage}",
            "",
            "```diff",
            *[line for line in m.diff.splitlines() if not line.startswith(("---", "+++"))],
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


DEFAULT_SAMPLE = 36


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="mutants to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--timeout", type=int, default=480, help="seconds per mutant's run")
    parser.add_argument("--target", choices=[t.name for t in TARGETS], help="only this one")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument(
        "--from-json", help="render the doc from a --json file of an earlier run (no run)"
    )
    parser.add_argument("--dry-run", action="store_true", help="count the mutants; run none")
    parser.add_argument(
        "--time-box",
        type=float,
        default=45,
        help="minutes: no mutant starts after this (those left are reported as not run)",
    )
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if args.target in (None, t.name)]
    if args.from_json:
        results = _load(Path(args.from_json))
        return _finish(results, args)
    deadline = time.monotonic() + args.time_box * 60
    with tempfile.TemporaryDirectory(prefix="ostinato-cosmic-ray-") as temp:
        root = Path(temp) / "tree"
        copy_tree(root)
        check_imports(root)
        generated = [generate(root, t, args.timeout) for t in targets]
        total = sum(len(c) for _, _, c in generated)
        results, queue = [], []
        for result, session, candidates in generated:
            share = round(args.sample * len(candidates) / total) if total else 0
            chosen = random.Random(f"{args.seed}-{result.target.name}").sample(
                candidates, min(share, len(candidates))
            )
            result.sampled = chosen
            skip_unsampled(session, chosen)
            print(
                f"{result.target.name}: {result.generated} generated, "
                f"{result.excluded_operator} operator left out, {result.not_executed} not "
                f"executed, {len(candidates)} candidates, sampled {len(chosen)} "
                f"(baseline {result.baseline_seconds:.0f}s)",
                flush=True,
            )
            results.append(result)
            queue += [(result, session, m) for m in chosen]
        if args.dry_run:
            return 0
        # One shuffled queue, so that a run cut short by the time box is still a random
        # sample of every target.
        random.Random(args.seed).shuffle(queue)
        for result, session, mutant in queue:
            if time.monotonic() > deadline:
                break
            run_one(root, session, result.target, mutant, args.timeout)
            result.seconds += mutant.seconds
            print(
                f"{mutant.target} {mutant.path}:{mutant.line} {mutant.operator}: "
                f"{mutant.outcome} ({mutant.seconds:.0f}s)",
                flush=True,
            )
            if args.json:
                _save(results, Path(args.json))
    return _finish(results, args)


def _save(results: list[TargetResult], path: Path) -> None:
    raw = [
        {**r.__dict__, "target": r.target.name, "sampled": [m.__dict__ for m in r.sampled]}
        for r in results
    ]
    path.write_text(json.dumps(raw, indent=1), "utf-8")


def _load(path: Path) -> list[TargetResult]:
    targets = {t.name: t for t in TARGETS}
    results = []
    for raw in json.loads(path.read_text("utf-8")):
        sampled = [Mutant(**m) for m in raw.pop("sampled")]
        results.append(
            TargetResult(**{**raw, "target": targets[raw["target"]], "sampled": sampled})
        )
    return results


def _finish(results: list[TargetResult], args: argparse.Namespace) -> int:
    text = render(results, args.sample, args.seed, args.time_box)
    if args.stdout or args.target:
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    untriaged = [
        m.key for r in results for m in r.sampled if m.outcome == "survived" and m.key not in TRIAGE
    ]
    for key in untriaged:
        print(f"UNTRIAGED: {key}", file=sys.stderr)
    return 1 if untriaged else 0


if __name__ == "__main__":
    raise SystemExit(main())
