"""The mutant zoo stays applicable: each mutant's old text occurs exactly once in the code it
mutates (a refactor that moves the code makes this fail here, not in a long mutant run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mutant_runner import CONFORMANCE_RUNS, ROOT, Mutant, MutantError  # noqa: E402
from mutants import MUTANTS  # noqa: E402


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_applies_exactly_once_to_the_current_code(mutant: Mutant, tmp_path: Path) -> None:
    assert mutant.provider in CONFORMANCE_RUNS
    assert mutant.old != mutant.new
    target = tmp_path / mutant.path
    target.parent.mkdir(parents=True)
    target.write_text((ROOT / mutant.path).read_text("utf-8"), "utf-8")
    mutant.apply(tmp_path)
    assert target.read_text("utf-8") != (ROOT / mutant.path).read_text("utf-8")


def test_a_mutant_whose_text_is_missing_or_ambiguous_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("x = 1\nx = 1\n", "utf-8")
    with pytest.raises(MutantError, match="found 2 times"):
        Mutant("Z1", "sqlite", "code.py", "x = 1", "x = 2", "twice").apply(tmp_path)
    with pytest.raises(MutantError, match="not found"):
        Mutant("Z2", "sqlite", "code.py", "y = 1", "y = 2", "missing").apply(tmp_path)
    with pytest.raises(MutantError, match="does not exist"):
        Mutant("Z3", "sqlite", "gone.py", "x", "y", "no file").apply(tmp_path)


def test_zoo_has_at_least_forty_mutants_with_distinct_ids() -> None:
    ids = [m.id for m in MUTANTS]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
