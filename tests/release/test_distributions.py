"""The five distributions are ready to publish together: one version, complete metadata.

``python3 dev.py wheels`` (run by ``.ci/run`` after the tests) builds and installs them; this
checks what it relies on, fast, on every test run.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import ostinato
import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
MEMBERS = {
    "ostinato": ROOT / "core",
    "ostinato-conformance": ROOT / "conformance",
    "ostinato-postgres": ROOT / "providers" / "postgres",
    "ostinato-mssql": ROOT / "providers" / "mssql",
    "ostinato-azure": ROOT / "providers" / "azure",
}


def pyproject(directory: Path) -> dict[str, Any]:
    return tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_workspace_members_are_the_five_distributions() -> None:
    workspace = pyproject(ROOT)["tool"]["uv"]["workspace"]["members"]
    assert {ROOT / m for m in workspace} == set(MEMBERS.values())


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", VERSION), VERSION
    assert ostinato.__version__ == metadata.version("ostinato")


@pytest.mark.parametrize("name", MEMBERS)
def test_metadata_is_complete_and_versioned_from_one_place(name: str) -> None:
    directory = MEMBERS[name]
    data = pyproject(directory)
    project = data["project"]
    assert project["name"] == name
    assert "version" not in project and project["dynamic"] == ["version"]
    assert (directory / data["tool"]["hatch"]["version"]["path"]).resolve() == ROOT / "VERSION"
    assert project["requires-python"] == ">=3.11"
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (directory / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    readme = (directory / project["readme"]).read_text(encoding="utf-8")
    assert len(readme) > 1000, f"{name}'s long description (its README) is a stub"
    assert project["description"] and project["authors"]
    classifiers = project["classifiers"]
    for minor in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(project["urls"])
    pins = [d for d in project.get("dependencies", []) if re.match(r"ostinato\b(?!-)", d)]
    if name != "ostinato":
        assert pins == [f"ostinato=={VERSION}"], f"{name} must depend on this very ostinato"


def test_ci_builds_installs_and_runs_the_wheels_before_the_tests() -> None:
    # Before: the test runner's summary must close CI's output.
    steps = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith("python3 dev.py")
    ]
    assert steps == ["python3 dev.py lint", "python3 dev.py wheels", "python3 dev.py test"]


def test_the_release_workflow_publishes_what_dev_py_wheels_checked() -> None:
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert "run: python3 dev.py wheels" in workflow
    assert "path: dist/" in workflow and "pypa/gh-action-pypi-publish" in workflow
    assert 'test "${GITHUB_REF_NAME}" = "v$(cat VERSION)"' in workflow
