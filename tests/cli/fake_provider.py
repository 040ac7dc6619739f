"""A third-party-style provider for the config tests: settings of many types, one required."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from ostinato.memory import InMemoryProvider


class FakeProvider(InMemoryProvider):
    """An in-memory provider that records the settings it was built with."""

    def __init__(
        self,
        dsn: str,
        *,
        task_hub: str = "default",
        pool_size: int = 4,
        ssl: bool = False,
        ratio: float = 0.5,
        timeout: timedelta = timedelta(seconds=5),
        mode: Literal["fast", "safe"] = "safe",
        tags: list[str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = {
            "dsn": dsn,
            "task_hub": task_hub,
            "pool_size": pool_size,
            "ssl": ssl,
            "ratio": ratio,
            "timeout": timeout,
            "mode": mode,
            "tags": tags,
            "data_dir": data_dir,
        }
