"""The ``ostinato`` commands (click), printing with rich, or JSON with ``--json``.

User mistakes (a bad option, bad JSON, an unknown instance, bad configuration, an app that
cannot be imported) end in one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ostinato.app import App
from ostinato.cli import render
from ostinato.client import Client
from ostinato.config import ProviderConfig, load_config
from ostinato.discovery import installed_providers
from ostinato.errors import InstanceNotFoundError, OrchestrationFailedError, OstinatoError
from ostinato.history import HistoryEvent
from ostinato.provider import StorageProvider
from ostinato.status import OrchestrationState, OrchestrationStatus
from ostinato.worker import Worker

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


def _flatten(groups: Sequence[list[OrchestrationStatus]]) -> list[OrchestrationStatus] | None:
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


def _state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    assert state is not None
    return state


def json_option(fn: F) -> F:
    """``--json``: print stable JSON on stdout instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON on stdout (for scripts)."
    )(fn)


def _echo_json(data: Any) -> None:
    click.echo(render.dumps_json(data))


def _print(renderable: Any) -> None:
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


def _say(message: str) -> None:
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


# -- config ----------------------------------------------------------------------------------
@cli.command("config")
@json_option
@click.pass_context
def config_command(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved provider configuration.

    Prints the provider, its settings and where each value came from, and the installed
    providers.
    """
    config = _state(ctx).config()
    data = config.to_dict() | {"installed_providers": installed_providers()}
    if as_json:
        _echo_json(data)
        return
    lines = [f"Provider: {config.provider}  (from {config.sources.get('provider', 'default')})"]
    lines.append(f"Config file: {config.config_file or 'none'}")
    for key, value in config.settings.items():
        lines.append(f"  {key} = {value!r}  (from {config.sources.get(key, '?')})")
    for key, value in config.defaults().items():
        lines.append(f"  {key} = {value!r}  (default)")
    lines.append(f"Installed providers: {', '.join(installed_providers())}")
    click.echo("\n".join(lines))


# -- worker ----------------------------------------------------------------------------------
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


@cli.command()
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--max-concurrent-orchestrations", type=click.IntRange(min=1), default=100, show_default=True
)
@click.option(
    "--max-concurrent-activities", type=click.IntRange(min=1), default=100, show_default=True
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds in-flight work gets to finish on stop.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
@json_option
@click.pass_context
def worker(
    ctx: click.Context,
    target: str,
    max_concurrent_orchestrations: int,
    max_concurrent_activities: int,
    grace_period: float,
    log_level: str,
    as_json: bool,
) -> None:
    """Run a worker for MODULE:APP until Ctrl-C or SIGTERM.

    Stopping is graceful: no new work is taken and in-flight work gets --grace-period seconds;
    anything unfinished is handed to another worker. A second Ctrl-C stops at once (nothing is
    lost: unfinished work is retried when its lock expires).
    """
    app = load_app(target)
    state = _state(ctx)
    config = state.config()
    provider = state.provider()
    _configure_logging(log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            _say("Stopping now.")
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        w = Worker(
            app,
            provider,
            max_concurrent_orchestrations=max_concurrent_orchestrations,
            max_concurrent_activities=max_concurrent_activities,
            grace_period=grace_period,
        )
        w.start()
        info = {
            "event": "started",
            "worker_id": w.worker_id,
            "app": target,
            "provider": config.provider,
            "task_hub": _task_hub(config),
            "orchestrators": sorted(app.orchestrators),
            "activities": sorted(app.activities),
            "pid": os.getpid(),
        }
        if as_json:
            _echo_json_line(info)
        else:
            hub = f", task hub {_task_hub(config)!r}" if _task_hub(config) else ""
            orchestrators = ", ".join(sorted(app.orchestrators)) or "none"
            activities = ", ".join(a for a in sorted(app.activities) if "." not in a) or "none"
            _say(
                f"Worker {w.worker_id} running {target} on {config.provider}{hub}"
                f" (orchestrators: {orchestrators}; activities: {activities})."
                " Press Ctrl+C to stop."
            )
        while not stop.wait(0.2):
            pass
        if not as_json:
            _say("Stopping: finishing in-flight work (Ctrl+C again to stop at once)...")
        w.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        _echo_json_line({"event": "stopped", "worker_id": w.worker_id})
    else:
        _say("Worker stopped.")


def _echo_json_line(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))
    sys.stdout.flush()


def _configure_logging(level: str) -> None:
    err = render.console(stderr=True)
    if err.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _task_hub(config: ProviderConfig) -> str | None:
    """The task hub in use: the configured one, else the provider's default (if it has hubs)."""
    hub = config.task_hub or config.defaults().get("task_hub")
    return None if hub is None else str(hub)


# -- starting and reading --------------------------------------------------------------------
def _show_state(state: OrchestrationState, as_json: bool) -> None:
    if as_json:
        _echo_json(render.state_to_json(state))
    else:
        _print(render.state_table(state))


def _get_state(client: Client, instance_id: str) -> OrchestrationState:
    state = client.get_orchestration_state(instance_id)
    if state is None:
        raise InstanceNotFoundError(instance_id)
    return state


def _finish_wait(state: OrchestrationState, as_json: bool) -> None:
    _show_state(state, as_json)
    if state.runtime_status is OrchestrationStatus.FAILED:
        raise OrchestrationFailedError(state.instance_id, state.failure_details)
    if state.runtime_status is OrchestrationStatus.TERMINATED:
        fail(f"Orchestration {state.instance_id!r} was terminated")


@cli.command()
@click.argument("name")
@click.option("--input", "input_", type=JSON, default=None, help="The input, as JSON.")
@click.option("--id", "instance_id", metavar="ID", help="Instance id (default: a random UUID).")
@click.option("--start-at", type=WHEN, default=None, help="Start later: ISO 8601 time.")
@click.option("--wait", is_flag=True, help="Wait for the instance to finish (needs a worker).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="With --wait: seconds to wait.",
)
@json_option
@click.pass_context
def start(
    ctx: click.Context,
    name: str,
    input_: Any,
    instance_id: str | None,
    start_at: datetime | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Start an orchestration NAME and print its instance id.

    With --wait, print its final state; the exit code is 1 if it failed or was terminated.
    """
    client = _state(ctx).client()
    if start_at is not None and start_at <= datetime.now(UTC):
        start_at = None
    new_id = client.schedule_new_orchestration(
        name, input=input_, instance_id=instance_id, start_at=start_at
    )
    if wait:
        _finish_wait(client.wait_for_orchestration_completion(new_id, timeout=timeout), as_json)
    elif as_json:
        _echo_json({"instance_id": new_id, "name": name})
    else:
        click.echo(new_id)
        _say(f"Started orchestration {name!r} as instance {new_id!r}.")


@cli.command("wait")
@click.argument("instance_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@json_option
@click.pass_context
def wait_command(ctx: click.Context, instance_id: str, timeout: float, as_json: bool) -> None:
    """Wait for an instance to finish and print its state.

    The exit code is 1 if it failed or was terminated.
    """
    client = _state(ctx).client()
    _get_state(client, instance_id)
    _finish_wait(client.wait_for_orchestration_completion(instance_id, timeout=timeout), as_json)


@cli.command()
@click.argument("instance_id", metavar="ID")
@json_option
@click.pass_context
def status(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show an instance's status, input, output and failure."""
    _show_state(_get_state(_state(ctx).client(), instance_id), as_json)


@cli.command()
@click.argument("instance_id", metavar="ID")
@json_option
@click.pass_context
def history(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show an instance's history table.

    Columns: event type, timestamp, name, input, result, status.
    """
    events: list[HistoryEvent] = _state(ctx).client().get_orchestration_history(instance_id)
    rows = render.history_rows(events)
    if as_json:
        _echo_json({"instance_id": instance_id, "events": [row.to_json() for row in rows]})
    else:
        _print(render.history_table(rows))


@cli.command("list")
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Only these statuses (repeatable, or comma-separated).",
)
@click.option("--name-prefix", metavar="PREFIX", help="Only orchestrations whose name starts so.")
@click.option("--id-prefix", metavar="PREFIX", help="Only instance ids that start so.")
@click.option("--created-from", type=WHEN, help="Created at or after (ISO 8601, or 7d ago).")
@click.option("--created-to", type=WHEN, help="Created at or before (ISO 8601, or 1h ago).")
@click.option("--page-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--continuation-token", metavar="TOKEN", help="Continue after a previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow continuation tokens to the end.")
@json_option
@click.pass_context
def list_command(
    ctx: click.Context,
    statuses: tuple[list[OrchestrationStatus], ...],
    name_prefix: str | None,
    id_prefix: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    page_size: int,
    continuation_token: str | None,
    all_pages: bool,
    as_json: bool,
) -> None:
    """List instances, ordered by instance id, one page at a time."""
    client = _state(ctx).client()
    states: list[OrchestrationState] = []
    token = continuation_token
    while True:
        page = client.query_instances(
            runtime_status=_flatten(statuses),
            name_prefix=name_prefix,
            instance_id_prefix=id_prefix,
            created_from=created_from,
            created_to=created_to,
            page_size=page_size,
            continuation_token=token,
        )
        states.extend(page.items)
        token = page.continuation_token
        if not all_pages or token is None:
            break
    if as_json:
        _echo_json(
            {
                "instances": [render.state_to_json(s) for s in states],
                "continuation_token": token,
            }
        )
        return
    _print(render.instances_table(states))
    if token is not None:
        _say(f"More instances: pass --continuation-token {token}")
    elif not states:
        _say("No instances.")


# -- signalling ------------------------------------------------------------------------------
def _done(as_json: bool, instance_id: str, action: str, message: str) -> None:
    if as_json:
        _echo_json({"instance_id": instance_id, "action": action, "ok": True})
    else:
        click.echo(message)


@cli.command("raise-event")
@click.argument("instance_id", metavar="ID")
@click.argument("event_name", metavar="NAME")
@click.option("--data", type=JSON, default=None, help="The event's data, as JSON.")
@json_option
@click.pass_context
def raise_event(
    ctx: click.Context, instance_id: str, event_name: str, data: Any, as_json: bool
) -> None:
    """Send event NAME (with --data) to an instance."""
    _state(ctx).client().raise_orchestration_event(instance_id, event_name, data=data)
    _done(as_json, instance_id, "raise-event", f"Raised event {event_name!r} on {instance_id!r}.")


@cli.command()
@click.argument("instance_id", metavar="ID")
@click.option("--output", type=JSON, default=None, help="The instance's output, as JSON.")
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="Terminate its sub-orchestrations too.",
)
@json_option
@click.pass_context
def terminate(
    ctx: click.Context, instance_id: str, output: Any, recursive: bool, as_json: bool
) -> None:
    """Terminate an instance."""
    _state(ctx).client().terminate_orchestration(instance_id, output=output, recursive=recursive)
    _done(as_json, instance_id, "terminate", f"Terminating {instance_id!r}.")


@cli.command()
@click.argument("instance_id", metavar="ID")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@click.pass_context
def suspend(ctx: click.Context, instance_id: str, reason: str | None, as_json: bool) -> None:
    """Suspend an instance: its events wait until it is resumed."""
    _state(ctx).client().suspend_orchestration(instance_id, reason=reason)
    _done(as_json, instance_id, "suspend", f"Suspending {instance_id!r}.")


@cli.command()
@click.argument("instance_id", metavar="ID")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@click.pass_context
def resume(ctx: click.Context, instance_id: str, reason: str | None, as_json: bool) -> None:
    """Resume a suspended instance."""
    _state(ctx).client().resume_orchestration(instance_id, reason=reason)
    _done(as_json, instance_id, "resume", f"Resuming {instance_id!r}.")


# -- purging ---------------------------------------------------------------------------------
@cli.command()
@click.argument("instance_id", metavar="[ID]", required=False)
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    help="Bulk: only these finished statuses (default: completed, failed, terminated).",
)
@click.option("--created-after", type=WHEN, help="Bulk: created at or after (ISO 8601 or 7d).")
@click.option("--created-before", type=WHEN, help="Bulk: created at or before (ISO 8601 or 7d).")
@click.option("--all", "purge_all", is_flag=True, help="Bulk: every finished instance.")
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="With ID: purge its sub-orchestrations too.",
)
@json_option
@click.pass_context
def purge(
    ctx: click.Context,
    instance_id: str | None,
    statuses: tuple[list[OrchestrationStatus], ...],
    created_after: datetime | None,
    created_before: datetime | None,
    purge_all: bool,
    recursive: bool,
    as_json: bool,
) -> None:
    """Delete finished instances, one by ID or in bulk.

    Bulk purges take filters and show a progress bar.

    Only COMPLETED, FAILED and TERMINATED instances are ever purged.
    """
    bulk = bool(statuses) or created_after is not None or created_before is not None or purge_all
    if instance_id is not None and bulk:
        fail("Give an instance ID or bulk filters, not both", EXIT_USAGE)
    if instance_id is None and not bulk:
        fail(
            "Give an instance ID, or filters for a bulk purge"
            " (--status, --created-before, --created-after, or --all)",
            EXIT_USAGE,
        )
    client = _state(ctx).client()
    if instance_id is not None:
        deleted = client.purge_orchestration(instance_id, recursive=recursive)
        count = deleted.deleted_instance_count
    else:
        wanted = _flatten(statuses)
        active = [s for s in wanted or () if not s.is_terminal]
        if active:
            fail(
                "Only finished instances can be purged; not " + ", ".join(s.value for s in active),
                EXIT_USAGE,
            )
        with _progress(enabled=not as_json) as on_progress:
            result = client.purge_orchestrations_by(
                created_time_from=created_after,
                created_time_to=created_before,
                runtime_status=wanted,
                on_progress=on_progress,
            )
        count = result.deleted_instance_count
    if as_json:
        _echo_json({"deleted_instance_count": count})
    else:
        click.echo(f"Purged {count} instance{'s' if count != 1 else ''}.")


class _ProgressContext:
    """A spinner with the running count on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = None
        err = render.console(stderr=True)
        if enabled and err.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("Purging finished instances: {task.completed} deleted"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
        self.task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self.progress is None:
            return lambda count: None
        self.progress.start()
        self.task = self.progress.add_task("purge", total=None)
        progress = self.progress

        def update(count: int) -> None:
            progress.update(self.task, completed=count)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(enabled: bool) -> _ProgressContext:
    return _ProgressContext(enabled)


# -- demo ------------------------------------------------------------------------------------
@cli.command()
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@json_option
@click.pass_context
def demo(ctx: click.Context, timeout: float, as_json: bool) -> None:
    """Run HelloCities end to end and show its history.

    Starts a worker in this process, runs the orchestration, prints the result and the
    history table. With no configuration this is SQLite in ./ostinato.db.
    """
    from ostinato.cli.demo import app, hello_cities

    state = _state(ctx)
    config = state.config()
    provider = state.provider()
    client = Client(provider)
    with Worker(app, provider, max_poll_interval=0.05):
        instance_id = client.schedule_new_orchestration(hello_cities)
        final = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    rows = render.history_rows(client.get_orchestration_history(instance_id))
    if as_json:
        _echo_json(render.state_to_json(final) | {"history": [row.to_json() for row in rows]})
    else:
        where = config.provider
        hub = _task_hub(config)
        location = config.settings.get("path", config.defaults().get("path"))
        if location is not None:
            where += f" ({location})"
        if hub:
            where += f", task hub {hub!r}"
        _say(f"Ran hello_cities as instance {instance_id!r} on {where}.")
        click.echo(f"Status: {final.runtime_status.value}")
        click.echo(f"Result: {json.dumps(final.output, ensure_ascii=False)}")
        _print(render.history_table(rows, title=f"History of {instance_id}"))
    if final.runtime_status is not OrchestrationStatus.COMPLETED:
        raise OrchestrationFailedError(instance_id, final.failure_details)


cli.add_command(importlib.import_module("ostinato.cli.serve").serve)  # ostinato serve (HTTP API)
cli.add_command(importlib.import_module("ostinato.cli.replay").replay)  # ostinato replay
_recovery = importlib.import_module("ostinato.cli.recovery")  # ostinato rewind / restart
cli.add_command(_recovery.rewind)
cli.add_command(_recovery.restart)

__all__ = ["CliState", "cli", "load_app"]
