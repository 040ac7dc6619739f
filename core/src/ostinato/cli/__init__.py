"""The ``ostinato`` command line (needs the extra: ``pip install 'ostinato[cli]'``).

``ostinato --help`` lists the commands; every command takes ``--json`` for scripts. Exit codes:
0 success, 1 an error (unknown instance, bad configuration, failed orchestration, timeout),
2 a usage error (bad option, bad JSON), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the ``ostinato`` console script and ``python -m ostinato``)."""
    try:
        from ostinato.cli.commands import cli
    except ModuleNotFoundError as exc:
        if exc.name not in ("click", "rich") and not str(exc.name).startswith("rich."):
            raise
        print(
            f"Error: the ostinato command line needs {exc.name!r}:"
            " install it with pip install 'ostinato[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    cli.main(args=list(argv) if argv is not None else None, prog_name="ostinato")


__all__ = ["main"]
