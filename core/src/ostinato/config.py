"""Configuration: which storage provider to use, for which task hub, with which settings.

Sources, highest precedence first:

1. explicit overrides: keyword arguments of :func:`provider_from_config` (the CLI's
   ``--provider``, ``--task-hub`` and ``--set KEY=VALUE``);
2. environment variables: ``OSTINATO_PROVIDER`` (the provider's name), ``OSTINATO_TASK_HUB``
   and ``OSTINATO_<PROVIDER>_<SETTING>`` (e.g. ``OSTINATO_SQLITE_PATH``);
3. a config file: ``ostinato.toml``, or the ``[tool.ostinato]`` table of ``pyproject.toml``;
   the explicit ``path`` (or ``OSTINATO_CONFIG``), else the first one found from the current
   directory upwards;
4. defaults: the ``sqlite`` provider with its own defaults (``ostinato.db`` in the current
   directory).

A config file looks like this (in ``pyproject.toml`` the same keys go under ``[tool.ostinato]``
and ``[tool.ostinato.sqlite]``)::

    provider = "sqlite"
    task_hub = "orders"

    [sqlite]
    path = "var/ostinato.db"

Only the selected provider's table is read, so tables for several providers may sit side by
side. Settings are checked against the provider factory's signature: unknown keys and values
of the wrong type raise :class:`~ostinato.errors.ConfigurationError` naming the key, where it
came from, and what was expected. Text values (environment variables, ``--set``) are parsed
into the annotated type. Relative paths in a config file (settings named ``path`` or ending in
``_path``, ``_file`` or ``_dir``) are relative to that file's directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from ostinato.discovery import ProviderFactory, load_provider_factory
from ostinato.errors import ConfigurationError
from ostinato.provider import StorageProvider
from ostinato.runtime.retention import (
    RETENTION_OPTION_KEYS,
    RETENTION_STATUS_KEYS,
    RetentionPolicy,
    parse_duration,
)

#: The provider used when nothing names one.
DEFAULT_PROVIDER = "sqlite"
#: Environment variables with a meaning of their own (all others are ``OSTINATO_<PROVIDER>_*``).
ENV_PREFIX = "OSTINATO_"
ENV_PROVIDER = "OSTINATO_PROVIDER"
ENV_TASK_HUB = "OSTINATO_TASK_HUB"
ENV_CONFIG = "OSTINATO_CONFIG"
CONFIG_FILE_NAME = "ostinato.toml"
PYPROJECT_FILE_NAME = "pyproject.toml"

_TOP_LEVEL_KEYS = ("provider", "task_hub")
_TASK_HUB = "task_hub"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """A config file and the ostinato table read from it."""

    path: Path
    data: dict[str, Any]

    @property
    def label(self) -> str:
        """How messages name the file (and, for pyproject.toml, the table)."""
        if self.path.name == PYPROJECT_FILE_NAME:
            return f"{self.path} [tool.ostinato]"
        return str(self.path)

    def table_label(self, provider: str) -> str:
        if self.path.name == PYPROJECT_FILE_NAME:
            return f"{self.path} [tool.ostinato.{provider}]"
        return f"{self.path} [{provider}]"


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    """A resolved, validated configuration: the provider's name and its keyword arguments.

    ``sources`` says where each value came from (a file, an environment variable, an
    argument, or ``default``).
    """

    provider: str
    settings: dict[str, Any]
    sources: dict[str, str]
    config_file: Path | None = None

    @property
    def task_hub(self) -> str | None:
        """The configured task hub, if the provider has task hubs and one was set."""
        value = self.settings.get(_TASK_HUB)
        return None if value is None else str(value)

    def create(self) -> StorageProvider:
        """Build the provider."""
        factory = load_provider_factory(self.provider)
        try:
            return factory(**self.settings)
        except ConfigurationError:
            raise
        except ValueError as exc:
            raise ConfigurationError(
                f"Provider {self.provider!r} rejected its settings: {exc}"
            ) from exc

    def defaults(self) -> dict[str, Any]:
        """The provider's own defaults for the settings that were not set."""
        params, _ = _factory_params(load_provider_factory(self.provider))
        return {
            p.name: p.default
            for p in params.values()
            if not p.required and p.name not in self.settings
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``ostinato config --json``)."""
        return {
            "provider": self.provider,
            "task_hub": self.task_hub,
            "settings": {k: _jsonable(v) for k, v in self.settings.items()},
            "defaults": {k: _jsonable(v) for k, v in self.defaults().items()},
            "sources": dict(self.sources),
            "config_file": str(self.config_file) if self.config_file else None,
        }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


# -- finding and reading files ---------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigurationError(f"Config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigurationError(f"Config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"Config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"Config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason});"
            " TOML files must be saved as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"Config file {path} cannot be read: {exc}") from None


def _tool_table(path: Path, document: dict[str, Any]) -> dict[str, Any] | None:
    tool = document.get("tool")
    table = tool.get("ostinato") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [tool.ostinato] must be a table")
    return table


def read_config_file(path: str | os.PathLike[str]) -> ConfigFile:
    """Read an explicit config file: ``ostinato.toml`` style, or a ``pyproject.toml``.

    A directory means the config file in it. Raises ``ConfigurationError`` if the file is
    missing or unreadable, or a ``pyproject.toml`` has no ``[tool.ostinato]`` table.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        found = _config_in_dir(file)
        if found is None:
            raise ConfigurationError(
                f"No {CONFIG_FILE_NAME} or pyproject.toml with [tool.ostinato] in {file}"
            )
        return found
    document = _read_toml(file)
    if file.name == PYPROJECT_FILE_NAME:
        table = _tool_table(file, document)
        if table is None:
            raise ConfigurationError(f"{file} has no [tool.ostinato] table")
        return ConfigFile(file.resolve(), table)
    return ConfigFile(file.resolve(), document)


def _config_in_dir(directory: Path) -> ConfigFile | None:
    candidate = directory / CONFIG_FILE_NAME
    if candidate.is_file():
        return ConfigFile(candidate.resolve(), _read_toml(candidate))
    candidate = directory / PYPROJECT_FILE_NAME
    if candidate.is_file():
        table = _tool_table(candidate, _read_toml(candidate))
        if table is not None:
            return ConfigFile(candidate.resolve(), table)
    return None


def find_config_file(start: str | os.PathLike[str] | None = None) -> ConfigFile | None:
    """The first ``ostinato.toml``, or ``pyproject.toml`` with ``[tool.ostinato]``, from
    ``start`` (default: the current directory) upwards; ``None`` if there is none."""
    directory = Path(start if start is not None else Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        found = _config_in_dir(candidate)
        if found is not None:
            return found
    return None


# -- the factory's settings -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Param:
    name: str
    annotation: Any
    required: bool
    default: Any = None


def _factory_params(factory: ProviderFactory) -> tuple[dict[str, _Param], bool]:
    """The factory's keyword-settable parameters, and whether it takes ``**kwargs``."""
    target: Any = factory
    if inspect.isclass(factory):
        target = factory.__init__
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}, True
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - fall back to evaluating each annotation alone
        hints = {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    params: dict[str, _Param] = {}
    var_keyword = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))
            except Exception:  # noqa: BLE001 - an annotation we cannot evaluate: no checking
                annotation = Any
        if annotation is inspect.Parameter.empty:
            annotation = Any
        required = p.default is inspect.Parameter.empty
        params[p.name] = _Param(p.name, annotation, required, None if required else p.default)
    return params, var_keyword


# -- checking and converting values -----------------------------------------------------------
class _Invalid(Exception):
    """A value does not fit a type (internal; turned into ConfigurationError)."""


def describe_type(annotation: Any) -> str:
    """A reader's name for the type a setting expects."""
    if annotation is Any:
        return "any value"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [describe_type(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(names))
        return f"{text} (or none)" if type(None) in args else text
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        inner = describe_type(args[0]) if args else "values"
        return f"a list of {inner}"
    if origin is dict or annotation is dict:
        return "a table"
    if annotation is bool:
        return "a boolean (true/false)"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a finite number"
    if annotation is str:
        return "a string"
    if annotation is dt.timedelta:
        return "a duration in seconds"
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if _is_path_type(annotation):
        return "a path"
    return getattr(annotation, "__name__", str(annotation))


def _is_path_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return inspect.isclass(origin) and (issubclass(origin, PurePath) or origin is os.PathLike)


def _convert(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation``; text is parsed. Raises ``_Invalid``."""
    if annotation is Any or annotation is object:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (
            isinstance(value, str) and value.strip().lower() in ("", "none")
        )
        if is_none and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        # Prefer a member that takes the value as it is (a str stays a str if str is allowed).
        for member in members:
            if member is str and isinstance(value, str):
                return value
        for member in members:
            try:
                return _convert(value, member)
            except _Invalid:
                continue
        raise _Invalid
    if value is None:
        raise _Invalid
    if origin is typing.Literal:
        for option in args:
            if value == option or (isinstance(value, str) and str(option) == value):
                return option
        raise _Invalid
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Invalid
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Invalid from None
        raise _Invalid
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _Invalid from None
        else:
            raise _Invalid
        if not math.isfinite(number):
            raise _Invalid
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Invalid
    if annotation is dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        seconds = _convert(value, float)
        if seconds < 0:
            raise _Invalid
        return dt.timedelta(seconds=seconds)
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        for member in annotation:
            if value == member.value or value == member.name or value is member:
                return member
            if isinstance(value, str) and value.lower() in (
                str(member.value).lower(),
                member.name.lower(),
            ):
                return member
        raise _Invalid
    if _is_path_type(annotation):
        if isinstance(value, (str, PurePath)):
            cls = typing.get_origin(annotation) or annotation
            return Path(value) if cls is os.PathLike else cls(value)
        raise _Invalid
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise _Invalid
        if isinstance(value, str):
            items = [item.strip() for item in items if item.strip()]
        inner = args[0] if args else Any
        converted = [_convert(item, inner) for item in items]
        container = origin or annotation
        return container(converted)
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return value
        raise _Invalid
    if inspect.isclass(annotation):
        if isinstance(value, annotation):
            return value
        raise _Invalid
    return value  # an annotation we do not understand (e.g. a Protocol): no checking


def _is_path_key(key: str) -> bool:
    return key == "path" or key.endswith(("_path", "_file", "_dir"))


def _relative_to(value: Any, base: Path) -> Any:
    """A relative file path from a config file, made relative to that file's directory."""
    if not isinstance(value, str) or not value or value.startswith(":") or "://" in value:
        return value
    if value.startswith("file:"):
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(base / path)


# -- resolving ---------------------------------------------------------------------------------
def _env_name(*parts: str) -> str:
    return ENV_PREFIX + "_".join(p.upper().replace("-", "_").replace(".", "_") for p in parts)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ProviderConfig:
    """Resolve and validate the configuration (see the module docstring for precedence).

    ``overrides`` may hold ``provider``, ``task_hub`` and provider settings; ``None`` values
    are ignored. ``settings`` holds more provider settings (for names that clash with this
    function's own parameters, such as the SQLite provider's ``path``).
    """
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {k: v for k, v in (settings or {}).items() if v is not None}
    merged |= {k: v for k, v in overrides.items() if v is not None}

    config_path = path if path is not None else env.get(ENV_CONFIG) or None
    if config_path is not None:
        config_file: ConfigFile | None = read_config_file(
            Path(cwd or ".") / Path(config_path).expanduser()
        )
    else:
        config_file = find_config_file(cwd)
    file_data = config_file.data if config_file else {}

    for key, value in file_data.items():
        if key not in _TOP_LEVEL_KEYS and not isinstance(value, dict):
            assert config_file is not None
            raise ConfigurationError(
                f"Unknown key {key!r} in {config_file.label}; expected 'provider', 'task_hub',"
                " or a table of settings named after a provider (e.g. [sqlite])"
            )

    sources: dict[str, str] = {}
    # The provider's name.
    name: Any
    if "provider" in merged:
        name, sources["provider"] = merged.pop("provider"), "argument"
    elif env.get(ENV_PROVIDER):
        name, sources["provider"] = env[ENV_PROVIDER], ENV_PROVIDER
    elif "provider" in file_data:
        assert config_file is not None
        name, sources["provider"] = file_data["provider"], config_file.label
    else:
        name, sources["provider"] = DEFAULT_PROVIDER, "default"
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(
            f"The provider name (from {sources['provider']}) must be a non-empty string,"
            f" got {name!r}"
        )
    name = name.strip()

    # Raw settings, lowest precedence first: file top level, file table, env, arguments.
    raw: dict[str, Any] = {}
    if config_file is not None:
        if _TASK_HUB in file_data:
            raw[_TASK_HUB] = file_data[_TASK_HUB]
            sources[_TASK_HUB] = config_file.label
        table = file_data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigurationError(f"{config_file.label}: '{name}' must be a table")
        for key, value in table.items():
            raw[key] = _relative_to(value, config_file.path.parent) if _is_path_key(key) else value
            sources[key] = config_file.table_label(name)
    if env.get(ENV_TASK_HUB):
        raw[_TASK_HUB], sources[_TASK_HUB] = env[ENV_TASK_HUB], ENV_TASK_HUB
    prefix = _env_name(name) + "_"
    for var, value in sorted(env.items()):
        if var.startswith(prefix) and len(var) > len(prefix):
            key = var[len(prefix) :].lower()
            raw[key], sources[key] = value, var
    for key, value in merged.items():
        raw[key], sources[key] = value, "argument"

    factory = load_provider_factory(name)
    params, takes_any = _factory_params(factory)
    validated: dict[str, Any] = {}
    for key, value in raw.items():
        param = params.get(key)
        if param is None:
            if key == _TASK_HUB and sources[key] in (
                ENV_TASK_HUB,
                getattr(config_file, "label", None),
            ):
                continue  # a provider without task hubs ignores the shared task_hub setting
            if takes_any:
                validated[key] = value
                continue
            known = f"its settings are: {', '.join(params)}" if params else "it takes none"
            raise ConfigurationError(
                f"Unknown setting {key!r} for provider {name!r} (from {sources[key]}); {known}"
            )
        try:
            validated[key] = _convert(value, param.annotation)
        except _Invalid:
            raise ConfigurationError(
                f"Setting {key!r} of provider {name!r} (from {sources[key]}) must be"
                f" {describe_type(param.annotation)}, got {value!r}"
            ) from None
    for param in params.values():
        if param.required and param.name not in validated:
            where = (
                f"the [{name}] table of {config_file.label}" if config_file else CONFIG_FILE_NAME
            )
            raise ConfigurationError(
                f"Provider {name!r} needs setting {param.name!r}"
                f" ({describe_type(param.annotation)}): set {_env_name(name, param.name)}"
                f" or '{param.name}' in {where}"
            )
    return ProviderConfig(
        provider=name,
        settings=validated,
        sources={k: v for k, v in sources.items() if k in validated or k == "provider"},
        config_file=config_file.path if config_file else None,
    )


def provider_from_config(
    path: str | os.PathLike[str] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> StorageProvider:
    """Build the configured storage provider.

    ``path`` is an explicit config file (``ostinato.toml`` or ``pyproject.toml``); without it
    ``OSTINATO_CONFIG`` or the nearest config file upwards from the current directory is used,
    and with none at all the SQLite provider in ``./ostinato.db``. ``overrides`` take
    precedence over everything: ``provider=``, ``task_hub=`` and the provider's settings
    (``settings={"path": ...}`` for a setting named like this function's ``path``).

    Raises :class:`~ostinato.errors.ConfigurationError` for an unknown provider (listing the
    installed ones), an unknown setting, or a value of the wrong type (naming the key and the
    expected type).
    """
    return load_config(path, settings=settings, **overrides).create()


def retention_from_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> RetentionPolicy | None:
    """The policy of the config file's ``[retention]`` table and ``OSTINATO_RETENTION_*``
    variables (which win), or ``None`` if neither sets anything. Keys: ``completed``,
    ``failed``, ``terminated`` (durations such as ``"7d"``), ``interval`` (seconds) and
    ``batch_size``."""
    env = os.environ if environ is None else environ
    config_path = path if path is not None else env.get(ENV_CONFIG) or None
    config_file = (
        read_config_file(Path(cwd or ".") / Path(config_path).expanduser())
        if config_path is not None
        else find_config_file(cwd)
    )
    values: dict[str, tuple[Any, str]] = {}
    table = (config_file.data if config_file else {}).get("retention", {})
    if not isinstance(table, dict):
        raise ConfigurationError("'retention' in the config file must be a table")
    for key, value in table.items():
        values[key] = (value, f"{config_file.label if config_file else ''} [retention]")
    for key in [*RETENTION_STATUS_KEYS, *RETENTION_OPTION_KEYS]:
        name = f"OSTINATO_RETENTION_{key.upper()}"
        if name in env:
            values[key] = (env[name], name)
    if not values:
        return None
    settings: dict[str, Any] = {}
    for key, (value, source) in values.items():
        try:
            if key in RETENTION_STATUS_KEYS:
                settings[key] = parse_duration(str(value))
            elif key == "interval":
                settings[key] = float(value)
            elif key == "batch_size":
                settings[key] = int(value)
            else:
                choices = ", ".join([*RETENTION_STATUS_KEYS, *RETENTION_OPTION_KEYS])
                raise ValueError(f"unknown key {key!r}; the keys are {choices}")
        except ValueError as exc:
            raise ConfigurationError(f"Retention setting {key!r} (from {source}): {exc}") from None
    try:
        return RetentionPolicy(**settings)
    except ValueError as exc:
        raise ConfigurationError(f"Retention settings: {exc}") from None


__all__ = [
    "DEFAULT_PROVIDER",
    "ConfigFile",
    "ProviderConfig",
    "describe_type",
    "find_config_file",
    "load_config",
    "provider_from_config",
    "read_config_file",
    "retention_from_config",
]
