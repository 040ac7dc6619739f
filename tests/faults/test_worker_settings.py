"""Worker settings (lock timeout, poison threshold) from arguments, environment and config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from ostinato.cli.commands import cli
from ostinato.errors import ConfigurationError
from ostinato.worker_settings import load_worker_settings


def test_defaults_then_config_then_environment_then_arguments(tmp_path: Path) -> None:
    config = tmp_path / "ostinato.toml"
    config.write_text("[worker]\nlock_timeout = 8\nmax_delivery_attempts = 3\n")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_worker_settings(empty, env={}).options() == {
        "lock_timeout": timedelta(seconds=15),
        "max_delivery_attempts": 5,
    }
    assert load_worker_settings(config, env={}).options() == {
        "lock_timeout": timedelta(seconds=8),
        "max_delivery_attempts": 3,
    }
    env = {"OSTINATO_WORKER_LOCK_TIMEOUT": "4.5"}
    assert load_worker_settings(config, env=env).lock_timeout == timedelta(seconds=4.5)
    settings = load_worker_settings(config, env=env, lock_timeout=2, max_delivery_attempts=9)
    assert settings.options() == {"lock_timeout": timedelta(seconds=2), "max_delivery_attempts": 9}


def test_bad_values_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "ostinato.toml"
    config.write_text("[worker]\nmax_delivery_attempts = 0\n")
    with pytest.raises(ConfigurationError, match="max_delivery_attempts must be at least 1"):
        load_worker_settings(config, env={})
    config.write_text("[worker]\nlock_timout = 3\n")
    with pytest.raises(ConfigurationError, match="Unknown key 'lock_timout'"):
        load_worker_settings(config, env={})
    with pytest.raises(ConfigurationError, match="OSTINATO_WORKER_LOCK_TIMEOUT"):
        load_worker_settings(None, env={"OSTINATO_WORKER_LOCK_TIMEOUT": "soon"})


def test_worker_command_has_the_options() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0
    assert "--lock-timeout" in result.output
    assert "--max-delivery-attempts" in result.output
