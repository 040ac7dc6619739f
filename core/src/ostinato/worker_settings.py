"""Worker settings from configuration: how long locks last and when work is poison.

Sources, highest precedence first: explicit arguments (the CLI's ``--lock-timeout`` and
``--max-delivery-attempts``), the environment (``OSTINATO_WORKER_LOCK_TIMEOUT`` in seconds,
``OSTINATO_WORKER_MAX_DELIVERY_ATTEMPTS``), the ``[worker]`` table of the config file (in
``pyproject.toml``: ``[tool.ostinato.worker]``), then the defaults::

    [worker]
    lock_timeout = 15          # seconds; a dead worker's items come back after this
    max_delivery_attempts = 5  # deliveries before a work item is failed as poison
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ostinato.config import find_config_file, read_config_file
from ostinato.errors import ConfigurationError
from ostinato.runtime.poison import DEFAULT_MAX_DELIVERY_ATTEMPTS
from ostinato.runtime.worker import DEFAULT_LOCK_TIMEOUT

WORKER_TABLE = "worker"
ENV_LOCK_TIMEOUT = "OSTINATO_WORKER_LOCK_TIMEOUT"
ENV_MAX_DELIVERY_ATTEMPTS = "OSTINATO_WORKER_MAX_DELIVERY_ATTEMPTS"


@dataclass(frozen=True)
class WorkerSettings:
    """The configured worker options (keyword arguments of :class:`ostinato.Worker`)."""

    lock_timeout: timedelta = DEFAULT_LOCK_TIMEOUT
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS

    def options(self) -> dict[str, Any]:
        return {
            "lock_timeout": self.lock_timeout,
            "max_delivery_attempts": self.max_delivery_attempts,
        }


def load_worker_settings(
    config_path: str | os.PathLike[str] | None = None,
    *,
    lock_timeout: float | None = None,
    max_delivery_attempts: int | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkerSettings:
    """Resolve the worker settings (see the module doc); bad values raise
    ``ConfigurationError`` naming the key and where it came from."""
    env = os.environ if env is None else env
    file = read_config_file(config_path) if config_path else find_config_file()
    table: Any = file.data.get(WORKER_TABLE, {}) if file is not None else {}
    where = file.table_label(WORKER_TABLE) if file is not None else ""
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(table) - {"lock_timeout", "max_delivery_attempts"})
    if unknown:
        raise ConfigurationError(
            f"Unknown key {unknown[0]!r} in {where}; "
            "expected 'lock_timeout' or 'max_delivery_attempts'"
        )
    seconds = _pick(
        "lock_timeout",
        lock_timeout,
        env.get(ENV_LOCK_TIMEOUT),
        table,
        where,
        float,
        ENV_LOCK_TIMEOUT,
    )
    attempts = _pick(
        "max_delivery_attempts",
        max_delivery_attempts,
        env.get(ENV_MAX_DELIVERY_ATTEMPTS),
        table,
        where,
        int,
        ENV_MAX_DELIVERY_ATTEMPTS,
    )
    settings = WorkerSettings()
    if seconds is not None:
        if seconds <= 0:
            raise ConfigurationError(f"lock_timeout must be positive seconds, not {seconds}")
        settings = WorkerSettings(timedelta(seconds=seconds), settings.max_delivery_attempts)
    if attempts is not None:
        if attempts < 1:
            raise ConfigurationError(f"max_delivery_attempts must be at least 1, not {attempts}")
        settings = WorkerSettings(settings.lock_timeout, attempts)
    return settings


def _pick(
    key: str,
    argument: Any,
    text: str | None,
    table: dict[str, Any],
    where: str,
    kind: type[float] | type[int],
    env_name: str,
) -> Any:
    if argument is not None:
        return argument
    if text:
        try:
            return kind(text)
        except ValueError:
            raise ConfigurationError(
                f"{env_name}={text!r} is not a valid {kind.__name__}"
            ) from None
    if key in table:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"{key} in {where} must be a number, not {value!r}")
        if kind is int and not isinstance(value, int):
            raise ConfigurationError(f"{key} in {where} must be a whole number, not {value!r}")
        return kind(value)
    return None


__all__ = ["WorkerSettings", "load_worker_settings"]
