"""What every ``ostinato`` command shares: the group, its global options, state and output.

User mistakes (a bad option, bad JSON, an unknown instance, bad configuration, an app that
cannot be imported) end in one line on stderr and a non-zero exit code, never a traceback.
The commands themselves live in one module per family beside this one, and
:mod:`ostinato.cli.commands` assembles them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import click

from ostinato.cli import render
from ostinato.client import Client
from ostinato.config import ProviderConfig, load_config
from ostinato.errors import OstinatoError
from ostinato.orchestration.app import App
from ostinato.provider import StorageProvider
from ostinato.status import OrchestrationStatus

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# -- parameter types -------------------------------------------------------------------------
class JsonParam(click.ParamType):  # type: ignore[type-arg]
    """A JSON value (``'"Tokyo"'``, ``'[1, 2]'``, ``'{"a": 1}'``, ``null``)."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            hint = (
                f" (a string needs quotes: '{json.dumps(value)}')" if value.isidentifier() else ""
            )
            self.fail(f"{value!r} is not valid JSON: {exc}{hint}", param, ctx)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WhenParam(click.ParamType):  # type: ignore[type-arg]
    """A point in time: ISO 8601 (naive means UTC), or a duration ago such as ``30m``, ``7d``."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        match = _DURATION.match(text)
        if match:
            amount, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
            return datetime.now(UTC) - timedelta(**{unit: amount})
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not a time: give ISO 8601 (2026-01-31T12:00:00Z) or a duration"
                " ago (90s, 15m, 2h, 7d, 1w)",
                param,
                ctx,
            )
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class StatusParam(click.ParamType):  # type: ignore[type-arg]
    """A runtime status, case-insensitive; commas separate several."""

    name = "STATUS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list[OrchestrationStatus]:
        if isinstance(value, list):
            return value
        statuses = []
        for part in str(value).split(","):
            key = part.strip().upper().replace("-", "_")
            try:
                statuses.append(OrchestrationStatus[key])
            except KeyError:
                choices = ", ".join(s.value.lower() for s in OrchestrationStatus)
                self.fail(f"{part.strip()!r} is not a status; choose from {choices}", param, ctx)
        return statuses


JSON = JsonParam()
WHEN = WhenParam()
STATUS = StatusParam()


def flatten_statuses(
    groups: Sequence[list[OrchestrationStatus]],
) -> list[OrchestrationStatus] | None:
    statuses = [s for group in groups for s in group]
    return list(dict.fromkeys(statuses)) or None


# -- the shared state ------------------------------------------------------------------------
@dataclass
class CliState:
    """The global options and the provider built from them (once, closed at exit)."""

    config_path: str | None = None
    provider_name: str | None = None
    task_hub: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    _config: ProviderConfig | None = None
    _provider: StorageProvider | None = None

    def config(self) -> ProviderConfig:
        if self._config is None:
            self._config = load_config(
                self.config_path,
                settings=self.settings,
                provider=self.provider_name,
                task_hub=self.task_hub,
            )
        return self._config

    def provider(self) -> StorageProvider:
        if self._provider is None:
            self._provider = self.config().create()
        return self._provider

    def client(self) -> Client:
        return Client(self.provider())

    def close(self) -> None:
        if self._provider is not None:
            provider, self._provider = self._provider, None
            provider.close()


def state_of(ctx: click.Context) -> CliState:
    """The :class:`CliState` of the running command."""
    state = ctx.find_object(CliState)
    assert state is not None
    return state


def json_option(fn: F) -> F:
    """``--json``: print stable JSON on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON on stdout (for scripts)."
    )(fn)


def echo_json(data: Any) -> None:
    """Print ``data`` as the stable JSON of ``--json``."""
    click.echo(render.dumps_json(data))


def print_renderable(renderable: Any) -> None:
    """Print a rich table or text on stdout."""
    render.console().print(renderable)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """End the command with one line on stderr."""
    raise CliError(message, code)


class CliError(Exception):
    """An error to report as one line, with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def say(message: str) -> None:
    """A note for people, on stderr (so stdout stays clean for data)."""
    click.echo(message, err=True)


# -- the group: global options and one-line errors -------------------------------------------
class OstinatoGroup(click.Group):
    """Turns every user-facing error into one line on stderr and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "ostinato"
            _error(f"{exc.format_message()} (see '{command} --help')", EXIT_USAGE)
        except click.ClickException as exc:
            _error(exc.format_message(), exc.exit_code)
        except CliError as exc:
            _error(exc.message, exc.exit_code)
        except click.exceptions.Abort:
            _error("Interrupted", EXIT_INTERRUPTED)
        except OstinatoError as exc:
            _error(str(exc), EXIT_ERROR)
        except UnicodeEncodeError as exc:
            # Arguments are decoded with surrogateescape: bytes that were not UTF-8 arrive as
            # lone surrogates (U+DC80-U+DCFF), which no store accepts.
            if not all("\udc80" <= ch <= "\udcff" for ch in exc.object[exc.start : exc.end]):
                raise
            text = exc.object[:60].encode("utf-8", "surrogateescape")
            _error(
                f"An argument is not valid UTF-8 text ({text!r}); give names, ids and inputs"
                " as UTF-8",
                EXIT_USAGE,
            )
        except TimeoutError as exc:
            _error(str(exc) or "Timed out", EXIT_ERROR)
        except KeyboardInterrupt:
            _error("Interrupted", EXIT_INTERRUPTED)
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return result


def _error(message: str, code: int) -> NoReturn:
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"Error: {one_line}", err=True)
    sys.exit(code)


def _parse_set(values: Sequence[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--set'")
        settings[key.strip().replace("-", "_")] = value
    return settings


@click.group(
    name="ostinato", cls=OstinatoGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    "-c",
    "config_path",
    metavar="FILE",
    help="Config file (ostinato.toml or pyproject.toml); default: the nearest one upwards.",
)
@click.option("--provider", "-p", metavar="NAME", help="Storage provider (e.g. sqlite).")
@click.option("--task-hub", "-t", metavar="NAME", help="Task hub.")
@click.option(
    "--set",
    "-s",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider setting, e.g. --set path=app.db (repeatable).",
)
@click.version_option(package_name="ostinato", prog_name="ostinato")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    provider: str | None,
    task_hub: str | None,
    settings: tuple[str, ...],
) -> None:
    """Run and manage durable orchestrations.

    The storage provider comes from --provider/--task-hub/--set, OSTINATO_* environment
    variables, ostinato.toml or [tool.ostinato] in pyproject.toml, in that order; with no
    configuration at all, SQLite in ./ostinato.db.
    """
    state = CliState(config_path, provider, task_hub, _parse_set(settings))
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- shared by several commands ------------------------------------------------------------
def load_app(target: str) -> App:
    """The :class:`~ostinato.App` named by ``module:attribute`` (``module`` means ``module:app``).

    The current directory is importable, as with ``python -m``. The attribute may be an
    ``App`` or a function returning one. Raises :class:`CliError` with a one-line reason.
    """
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if not module_name or not re.fullmatch(r"[\w.]+", module_name):
        fail(f"{target!r} is not MODULE:APP (e.g. examples.hello_cities:app)", EXIT_USAGE)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            fail(f"Cannot import {module_name!r}: no module named {exc.name!r}")
        fail(f"Importing {module_name!r} failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the user's module failed on import
        fail(f"Importing {module_name!r} failed: {type(exc).__name__}: {exc}")
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            fail(f"Module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(obj, App) and callable(obj) and _takes_no_arguments(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the user's factory failed
            fail(f"{module_name}:{attribute}() failed: {type(exc).__name__}: {exc}")
    if not isinstance(obj, App):
        fail(f"{module_name}:{attribute} is a {type(obj).__name__}, not an ostinato.App")
    return obj


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind()
    except (TypeError, ValueError):
        return False
    return True


def echo_json_line(data: Any) -> None:
    """Print one JSON line and flush (for streamed output)."""
    click.echo(json.dumps(data, ensure_ascii=False))
    sys.stdout.flush()


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``: with rich on a terminal, plain lines otherwise."""
    err = render.console(stderr=True)
    if err.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def task_hub_of(config: ProviderConfig) -> str | None:
    """The task hub in use: the configured one, else the provider's default (if it has hubs)."""
    hub = config.task_hub or config.defaults().get("task_hub")
    return None if hub is None else str(hub)


__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "JSON",
    "STATUS",
    "WHEN",
    "CliError",
    "CliState",
    "OstinatoGroup",
    "cli",
    "configure_logging",
    "echo_json",
    "echo_json_line",
    "fail",
    "flatten_statuses",
    "json_option",
    "load_app",
    "print_renderable",
    "say",
    "state_of",
    "task_hub_of",
]
