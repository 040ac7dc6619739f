"""Provider discovery and configuration: sources, precedence, conversion, and every error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.config import describe_type, find_config_file, load_config

from .conftest import requires_sqlite
from .fake_provider import FakeProvider

pytestmark = pytest.mark.usefixtures("isolated")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(**kwargs: Any) -> str:
    with pytest.raises(ot.ConfigurationError) as info:
        load_config(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- discovery and defaults ------------------------------------------------------------------
def test_provider_from_config_is_public() -> None:
    assert "provider_from_config" in ot.__all__
    assert ot.provider_from_config is ot.config.provider_from_config


@requires_sqlite
def test_no_configuration_means_sqlite_in_a_local_file(isolated: Path) -> None:
    config = load_config()
    assert config.provider == "sqlite"
    assert config.sources == {"provider": "default"}
    assert config.defaults()["path"] == "ostinato.db"
    provider = ot.provider_from_config()
    try:
        ot.Client(provider).query_instances()
        assert (isolated / "ostinato.db").is_file()
    finally:
        provider.close()


def test_memory_is_discovered_by_entry_point() -> None:
    assert "memory" in ot.discovery.installed_providers()
    assert isinstance(ot.provider_from_config(provider="memory"), ot.InMemoryProvider)


def test_a_third_party_provider_is_selectable_by_name(fake_providers: None) -> None:
    provider = ot.provider_from_config(provider="fake", dsn="x://y")
    assert isinstance(provider, FakeProvider)
    assert provider.settings["dsn"] == "x://y"


def test_unknown_provider_lists_the_installed_ones(fake_providers: None) -> None:
    message = error_of(provider="nosuch")
    assert "Unknown provider 'nosuch'" in message
    for name in ot.discovery.installed_providers():
        assert name in message
    assert "memory" in message and "fake" in message


def test_provider_that_cannot_be_imported(fake_providers: None) -> None:
    message = error_of(provider="broken")
    assert "Provider 'broken'" in message
    assert "could not be loaded" in message
    assert "ModuleNotFoundError" in message


# -- files -----------------------------------------------------------------------------------
def test_ostinato_toml_is_found_from_a_subdirectory(isolated: Path, fake_providers: None) -> None:
    write(
        isolated / "ostinato.toml",
        'provider = "fake"\ntask_hub = "orders"\n[fake]\ndsn = "db://a"\npool_size = 8\n',
    )
    sub = isolated / "a" / "b"
    sub.mkdir(parents=True)
    config = load_config(cwd=sub)
    assert config.provider == "fake"
    assert config.settings == {"task_hub": "orders", "dsn": "db://a", "pool_size": 8}
    assert config.config_file == isolated / "ostinato.toml"
    assert config.sources["pool_size"].endswith("ostinato.toml [fake]")


def test_pyproject_tool_table(isolated: Path, fake_providers: None) -> None:
    write(
        isolated / "pyproject.toml",
        '[project]\nname = "x"\n[tool.ostinato]\nprovider = "fake"\n'
        '[tool.ostinato.fake]\ndsn = "db://py"\nssl = true\n',
    )
    config = load_config()
    assert (config.provider, config.settings) == ("fake", {"dsn": "db://py", "ssl": True})
    assert "[tool.ostinato.fake]" in config.sources["dsn"]


def test_pyproject_without_the_table_is_skipped_on_the_way_up(
    isolated: Path, fake_providers: None
) -> None:
    write(isolated / "ostinato.toml", 'provider = "fake"\n[fake]\ndsn = "outer"\n')
    write(isolated / "inner" / "pyproject.toml", '[project]\nname = "inner"\n')
    assert load_config(cwd=isolated / "inner").settings["dsn"] == "outer"


def test_ostinato_toml_wins_over_pyproject_in_the_same_directory(
    isolated: Path, fake_providers: None
) -> None:
    write(isolated / "ostinato.toml", 'provider = "fake"\n[fake]\ndsn = "toml"\n')
    write(
        isolated / "pyproject.toml",
        '[tool.ostinato]\nprovider = "fake"\n[tool.ostinato.fake]\ndsn = "pyproject"\n',
    )
    assert load_config().settings["dsn"] == "toml"


def test_no_file_found(isolated: Path) -> None:
    assert find_config_file(isolated) is None


def test_explicit_path_and_ostinato_config_variable(
    isolated: Path, fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "ostinato.toml", 'provider = "memory"\n')
    other = write(isolated / "conf" / "prod.toml", 'provider = "fake"\n[fake]\ndsn = "prod"\n')
    assert load_config(other).settings == {"dsn": "prod"}
    assert load_config(isolated / "conf" / "prod.toml").provider == "fake"
    monkeypatch.setenv("OSTINATO_CONFIG", str(other))
    assert load_config().provider == "fake"
    # An explicit path beats OSTINATO_CONFIG.
    assert load_config(isolated / "ostinato.toml").provider == "memory"


def test_relative_paths_in_a_file_are_relative_to_the_file(isolated: Path) -> None:
    write(isolated / "proj" / "ostinato.toml", '[sqlite]\npath = "var/app.db"\n')
    write(isolated / "proj" / "other.toml", '[sqlite]\npath = ":memory:"\n')
    if "sqlite" not in ot.discovery.installed_providers():
        pytest.skip("the sqlite provider is not installed")
    config = load_config(cwd=isolated / "proj")
    assert Path(config.settings["path"]) == (isolated / "proj" / "var" / "app.db")
    assert load_config(isolated / "proj" / "other.toml").settings["path"] == ":memory:"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("provider = \n", "is not valid TOML"),
        ('colour = "blue"\n', "Unknown key 'colour'"),
        ("provider = 3\n", "must be a non-empty string, got 3"),
        ('provider = "memory"\nmemory = 5\n', "Unknown key 'memory'"),
    ],
)
def test_bad_files(isolated: Path, content: str, expected: str) -> None:
    write(isolated / "ostinato.toml", content)
    message = error_of()
    assert expected in message
    assert "ostinato.toml" in message


def test_missing_explicit_file(isolated: Path) -> None:
    assert "does not exist" in error_of(path=isolated / "nope.toml")


def test_explicit_pyproject_without_table(isolated: Path) -> None:
    write(isolated / "pyproject.toml", '[project]\nname = "x"\n')
    assert "has no [tool.ostinato] table" in error_of(path=isolated / "pyproject.toml")


# -- precedence ------------------------------------------------------------------------------
def test_precedence_argument_over_env_over_file(
    isolated: Path, fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        isolated / "ostinato.toml",
        'provider = "memory"\ntask_hub = "file-hub"\n'
        '[fake]\ndsn = "file"\npool_size = 1\nratio = 0.1\n',
    )
    # The file alone.
    assert load_config().provider == "memory"
    # OSTINATO_PROVIDER beats the file; the file's [fake] table is then used.
    monkeypatch.setenv("OSTINATO_PROVIDER", "fake")
    monkeypatch.setenv("OSTINATO_FAKE_POOL_SIZE", "2")
    monkeypatch.setenv("OSTINATO_TASK_HUB", "env-hub")
    config = load_config()
    assert config.provider == "fake"
    assert config.settings == {"task_hub": "env-hub", "dsn": "file", "pool_size": 2, "ratio": 0.1}
    assert config.sources["pool_size"] == "OSTINATO_FAKE_POOL_SIZE"
    assert config.sources["task_hub"] == "OSTINATO_TASK_HUB"
    assert config.sources["ratio"].endswith("[fake]")
    # Arguments beat the environment.
    config = load_config(task_hub="arg-hub", pool_size=3, ratio=None)
    assert config.settings["task_hub"] == "arg-hub"
    assert config.settings["pool_size"] == 3
    assert config.settings["ratio"] == 0.1  # None means "not given"
    assert config.sources["pool_size"] == "argument"
    provider = ot.provider_from_config(provider="memory")
    assert isinstance(provider, ot.InMemoryProvider)


def test_provider_specific_task_hub_beats_the_shared_one(
    isolated: Path, fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSTINATO_TASK_HUB", "shared")
    monkeypatch.setenv("OSTINATO_FAKE_TASK_HUB", "specific")
    assert load_config(provider="fake", dsn="d").task_hub == "specific"


def test_other_providers_variables_are_ignored(
    fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSTINATO_POSTGRES_DSN", "postgresql://x")
    monkeypatch.setenv("OSTINATO_FAKE_DSN", "mine")
    assert load_config(provider="fake").settings == {"dsn": "mine"}


def test_a_provider_without_task_hubs_ignores_the_shared_task_hub(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "ostinato.toml", 'task_hub = "file"\n')
    monkeypatch.setenv("OSTINATO_PROVIDER", "memory")
    assert load_config().settings == {}
    monkeypatch.setenv("OSTINATO_TASK_HUB", "env")
    assert isinstance(ot.provider_from_config(), ot.InMemoryProvider)
    # ...but an explicit argument is a mistake worth reporting.
    assert "Unknown setting 'task_hub' for provider 'memory'" in error_of(task_hub="x")


@requires_sqlite
def test_sqlite_from_the_environment(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_SQLITE_PATH", str(isolated / "env.db"))
    monkeypatch.setenv("OSTINATO_TASK_HUB", "hub1")
    monkeypatch.setenv("OSTINATO_SQLITE_BUSY_TIMEOUT", "2.5")
    config = load_config()
    assert config.settings == {
        "task_hub": "hub1",
        "path": str(isolated / "env.db"),
        "busy_timeout": 2.5,
    }
    provider = config.create()
    try:
        client = ot.Client(provider)
        client.schedule_new_orchestration("x", instance_id="i1")
        assert client.get_orchestration_state("i1") is not None
    finally:
        provider.close()
    assert (isolated / "env.db").is_file()


# -- settings: conversion and validation -----------------------------------------------------
def test_text_settings_are_parsed_into_the_annotated_types(
    fake_providers: None, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    env = {
        "OSTINATO_FAKE_DSN": "db://x",
        "OSTINATO_FAKE_POOL_SIZE": " 12 ",
        "OSTINATO_FAKE_SSL": "yes",
        "OSTINATO_FAKE_RATIO": "0.25",
        "OSTINATO_FAKE_TIMEOUT": "1.5",
        "OSTINATO_FAKE_MODE": "fast",
        "OSTINATO_FAKE_TAGS": "a, b,c",
        "OSTINATO_FAKE_DATA_DIR": "/srv/data",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    provider = ot.provider_from_config(provider="fake")
    assert isinstance(provider, FakeProvider)
    assert provider.settings == {
        "dsn": "db://x",
        "task_hub": "default",
        "pool_size": 12,
        "ssl": True,
        "ratio": 0.25,
        "timeout": timedelta(seconds=1.5),
        "mode": "fast",
        "tags": ["a", "b", "c"],
        "data_dir": Path("/srv/data"),
    }


def test_toml_values_of_the_right_type_pass_through(isolated: Path, fake_providers: None) -> None:
    write(
        isolated / "ostinato.toml",
        'provider = "fake"\n[fake]\ndsn = "d"\npool_size = 2\nssl = false\nratio = 1\n'
        'timeout = 30\ntags = ["x"]\ndata_dir = "rel"\n',
    )
    settings = load_config().settings
    assert settings["ratio"] == 1.0 and isinstance(settings["ratio"], float)
    assert settings["timeout"] == timedelta(seconds=30)
    assert settings["tags"] == ["x"]
    assert settings["data_dir"] == isolated / "rel"  # relative to the file, as a Path


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("POOL_SIZE", "many", "must be an integer, got 'many'"),
        ("SSL", "maybe", "must be a boolean (true/false), got 'maybe'"),
        ("RATIO", "half", "must be a finite number, got 'half'"),
        ("TIMEOUT", "-1", "must be a duration in seconds, got '-1'"),
        ("MODE", "turbo", "must be one of 'fast', 'safe', got 'turbo'"),
    ],
)
def test_bad_environment_values_name_the_key_and_the_type(
    fake_providers: None, monkeypatch: pytest.MonkeyPatch, key: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"OSTINATO_FAKE_{key}", value)
    message = error_of(provider="fake", dsn="d")
    assert f"Setting '{key.lower()}' of provider 'fake'" in message
    assert f"(from OSTINATO_FAKE_{key})" in message
    assert expected in message


def test_bad_file_value_names_the_file(isolated: Path, fake_providers: None) -> None:
    write(isolated / "ostinato.toml", 'provider = "fake"\n[fake]\ndsn = "d"\nssl = 1\n')
    message = error_of()
    assert "Setting 'ssl' of provider 'fake'" in message
    assert "ostinato.toml [fake]" in message
    assert "a boolean" in message


def test_unknown_setting_lists_the_known_ones(
    fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSTINATO_FAKE_POOLSIZE", "3")
    message = error_of(provider="fake", dsn="d")
    assert "Unknown setting 'poolsize' for provider 'fake' (from OSTINATO_FAKE_POOLSIZE)" in message
    assert "pool_size" in message and "dsn" in message


def test_missing_required_setting_says_how_to_set_it(fake_providers: None) -> None:
    message = error_of(provider="fake")
    assert "Provider 'fake' needs setting 'dsn' (a string)" in message
    assert "OSTINATO_FAKE_DSN" in message


@requires_sqlite
def test_sqlite_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_SQLITE_BUSY_TIMEOUT", "soon")
    message = error_of()
    assert "Setting 'busy_timeout' of provider 'sqlite'" in message
    assert "must be a finite number" in message


def test_describe_type() -> None:
    assert describe_type(int | None) == "an integer (or none)"
    assert describe_type(list[int]) == "a list of an integer"
    assert describe_type(str | Path) == "a string or a path"


def test_provider_rejecting_its_settings_is_a_configuration_error(
    fake_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("pool_size must be a power of two")

    monkeypatch.setattr(FakeProvider, "__init__", refuse)
    config = load_config(provider="fake")
    with pytest.raises(ot.ConfigurationError, match="rejected its settings: pool_size must"):
        config.create()
