"""Applies one mutant to a temporary copy of the repository and runs that provider's
conformance run there (the machinery of ``mutants.py``; the zoo itself is data in
``mutants.py``).

The copy holds the sources (``core``, ``conformance``, ``providers``, ``examples``,
``tests``, ``azurite`` without its ``node_modules``, which is linked); the run puts the
copy's source folders first on ``PYTHONPATH``, so its Python imports the mutated code, and
checks that it does before running anything. The working tree is never written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Each provider's conformance run (the suite subclassed once, nothing provider-specific).
CONFORMANCE_RUNS = {
    "sqlite": "tests/sqlite/test_sqlite_conformance.py",
    "postgres": "tests/postgres/test_postgres_conformance.py",
    "azure": "tests/azure/test_azure_conformance.py",
    "file": "tests/conformance/test_example_provider_conformance.py",
}
#: The distributions' source folders, imported from the copy.
SOURCE_FOLDERS = (
    "core/src",
    "conformance/src",
    "providers/azure/src",
    "providers/postgres/src",
    "providers/mssql/src",
    ".",
)
#: Written into the copy: the run takes the suite's parts in this order (the ones that catch
#: most bugs soonest first), so that ``-x`` stops early; every test still runs for a survivor.
_ORDER_CONFTEST = '''"""Written by the mutant runner (tests/conformance/mutant_runner.py)."""

RANK = {"machine": 0, "contract": 1, "processes": 2, "programs": 3, "scenarios": 4}


def pytest_collection_modifyitems(items):
    def rank(item):
        module = getattr(getattr(item, "obj", None), "__module__", "") or ""
        return RANK.get(module.rsplit(".", 1)[-1], 5)

    items.sort(key=rank)
'''
_COPIED = ("core", "conformance", "providers", "examples", "tests", "azurite", "pyproject.toml")
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "node_modules", ".hypothesis", ".pytest_cache", "*.pyc", "*.db"
)


class MutantError(Exception):
    """A mutant that cannot be applied (its old text is missing or ambiguous)."""


@dataclass(frozen=True)
class Mutant:
    """One realistic single-change bug in a real provider's code.

    ``old`` must occur exactly once in ``path``; it is replaced by ``new``. ``why``: why an
    engineer could plausibly write it. ``provider``: whose conformance run must kill it.
    """

    id: str
    provider: str
    path: str
    old: str
    new: str
    why: str

    def apply(self, root: Path) -> None:
        """Write the mutation into the tree at ``root`` (a copy)."""
        target = root / self.path
        if not target.exists():
            raise MutantError(f"{self.id}: {self.path} does not exist")
        text = target.read_text("utf-8")
        count = text.count(self.old)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times"
            raise MutantError(f"{self.id}: old text {where} in {self.path}: {self.old!r}")
        target.write_text(text.replace(self.old, self.new), "utf-8")


@dataclass
class Outcome:
    """What the conformance run did with one mutant."""

    mutant: Mutant
    status: str  # killed | survived | error
    killed_by: list[str] = field(default_factory=list)
    passed: int = 0
    seconds: float = 0.0
    detail: str = ""


def copy_tree(destination: Path) -> None:
    """Copy the sources needed for a conformance run to ``destination``."""
    for name in _COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=_IGNORED, symlinks=True)
        elif source.exists():
            shutil.copy2(source, destination / name)
    (destination / "conftest.py").write_text(_ORDER_CONFTEST, "utf-8")
    modules = ROOT / "azurite" / "node_modules"
    if modules.exists():
        (destination / "azurite" / "node_modules").symlink_to(modules)


def environment(root: Path) -> dict[str, str]:
    paths = [str(root / folder) for folder in SOURCE_FOLDERS]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "OSTINATO_CONFORMANCE_NO_SHRINK": "1",
        # Generous waits: the runs share a busy machine, and a kill must come from a bug.
        "OSTINATO_CONFORMANCE_PROMPTLY": os.environ.get("OSTINATO_CONFORMANCE_PROMPTLY", "15"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


_CHECK_IMPORTS = (
    "import ostinato, ostinato_conformance, ostinato_postgres, ostinato_azure, sys;"
    "print('\\n'.join(m.__file__ for m in "
    "(ostinato, ostinato_conformance, ostinato_postgres, ostinato_azure)))"
)


def check_imports(root: Path) -> None:
    """Fail unless Python, run as the conformance run will be, imports the copy's code."""
    run = subprocess.run(
        [sys.executable, "-c", _CHECK_IMPORTS],
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
        check=False,
    )
    files = run.stdout.split()
    if run.returncode != 0 or len(files) != 4:
        raise MutantError(f"cannot import the copied sources: {run.stderr.strip()}")
    outside = [f for f in files if not Path(f).resolve().is_relative_to(root.resolve())]
    if outside:
        raise MutantError(f"the run would import code outside the mutated copy: {outside}")


def run_conformance(
    root: Path, provider: str, timeout: float, extra: list[str] | None = None
) -> tuple[list[str], int, str]:
    """Run ``provider``'s conformance run in ``root`` (stopping at the first failure).

    Returns the failing tests, how many passed, and the tail of the output.
    """
    report = root / "report.xml"
    command = [
        sys.executable, "-m", "pytest", CONFORMANCE_RUNS[provider], "-x", "-q",
        "-p", "no:cacheprovider", f"--timeout={int(timeout)}", f"--junitxml={report}",
        "-o", "junit_family=xunit1", *(extra or []),
    ]  # fmt: skip
    try:
        run = subprocess.run(
            command,
            cwd=root,
            env=environment(root),
            capture_output=True,
            text=True,
            timeout=timeout + 120,
            check=False,
        )
        output = run.stdout + run.stderr
    except subprocess.TimeoutExpired as exc:
        output = f"the run took more than {timeout + 120:.0f}s: {exc}"
    failed: list[str] = []
    passed = 0
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(case.get("name", "?"))
            elif case.find("skipped") is None:
                passed += 1
    lines = output.strip().splitlines()
    reasons = [line for line in lines if line.startswith("E   ")][:4]
    tail = "\n".join([*reasons, *lines[-6:]])
    return failed, passed, tail


def evaluate(
    mutant: Mutant | None, provider: str, timeout: float, select: str | None = None
) -> Outcome:
    """Copy the tree, apply ``mutant`` (``None``: the unmutated baseline), run (only the tests
    ``-k select`` picks, if given), classify."""
    started = time.monotonic()
    placeholder = Mutant("baseline", provider, "", "", "", "the code as it is")
    with tempfile.TemporaryDirectory(prefix="ostinato-mutant-") as temp:
        root = Path(temp) / "tree"
        copy_tree(root)
        try:
            if mutant is not None:
                mutant.apply(root)
            check_imports(root)
        except MutantError as exc:
            return Outcome(mutant or placeholder, "error", detail=str(exc))
        extra = ["-k", select] if select else None
        failed, passed, tail = run_conformance(root, provider, timeout, extra)
    seconds = time.monotonic() - started
    subject = mutant or placeholder
    if failed:
        return Outcome(subject, "killed", failed, passed, seconds, tail)
    if passed == 0:
        return Outcome(subject, "error", [], 0, seconds, f"nothing ran:\n{tail}")
    return Outcome(subject, "survived", [], passed, seconds, tail)
