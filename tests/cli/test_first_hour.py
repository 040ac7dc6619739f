"""Snags a new user hit in the first hour, each ending in one clear line, never a traceback.

Every command runs as a real ``python -m ostinato`` process in an empty directory with no
``OSTINATO_*`` variables, the way a user types it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from ostinato import discovery
from ostinato.config import load_config
from ostinato.errors import ConfigurationError

from .conftest import requires_sqlite


def ostinato(
    cwd: Path, *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")}
    return subprocess.run(
        [sys.executable, "-m", "ostinato", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single ``Error: ...`` line of a failed command (asserting there is nothing else)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@requires_sqlite
def test_a_config_file_not_in_utf8_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "ostinato.toml").write_bytes('provider = "sqlite"  # café\n'.encode("latin-1"))
    line = one_line_error(ostinato(tmp_path, "list"))
    assert "ostinato.toml is not UTF-8 text" in line


@requires_sqlite
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-1"])
def test_an_impossible_busy_timeout_is_one_line(tmp_path: Path, value: str) -> None:
    line = one_line_error(ostinato(tmp_path, "list", env={"OSTINATO_SQLITE_BUSY_TIMEOUT": value}))
    assert "OSTINATO_SQLITE_BUSY_TIMEOUT" in line or "busy_timeout" in line


@requires_sqlite
def test_an_instance_id_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(ostinato(tmp_path, "start", "hello_cities", "--id", b"job-\xff\xfe"))
    assert "lone surrogate" in line
    assert ostinato(tmp_path, "list").stdout == "No instances.\n"


@requires_sqlite
@pytest.mark.parametrize(
    "args",
    [(b"hello_\xff",), ("hello_cities", "--input", b'"caf\xe9"')],
    ids=["name", "input"],
)
def test_other_arguments_that_are_not_utf8_are_one_line(
    tmp_path: Path, args: tuple[str | bytes, ...]
) -> None:
    line = one_line_error(ostinato(tmp_path, "start", *args), code=2)
    assert "is not valid UTF-8 text" in line
    assert ostinato(tmp_path, "list").stdout == "No instances.\n"


@requires_sqlite
def test_a_sqlite_path_in_a_missing_directory_creates_it(tmp_path: Path) -> None:
    (tmp_path / "ostinato.toml").write_text('[sqlite]\npath = "var/dev.db"\n')
    result = ostinato(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "dev.db").is_file()


@requires_sqlite
def test_list_with_no_instances_prints_only_that(tmp_path: Path) -> None:
    result = ostinato(tmp_path, "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "No instances.\n", "")


def test_a_provider_package_that_is_not_installed_is_named(
    monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    real = discovery.entry_points

    def without_postgres(*, group: str) -> list[EntryPoint]:
        return [ep for ep in real(group=group) if ep.name != "postgres"]

    monkeypatch.setattr(discovery, "entry_points", without_postgres)
    with pytest.raises(ConfigurationError, match="pip install ostinato-postgres"):
        load_config(provider="postgres")
    with pytest.raises(ConfigurationError, match="Unknown provider 'nosuch'"):
        load_config(provider="nosuch")
