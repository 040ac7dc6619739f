"""The ``ostinato`` command line: the group from :mod:`~ostinato.cli.base` with every
command family's commands added."""

from __future__ import annotations

from ostinato.cli.base import cli, load_app
from ostinato.cli.config_command import config_command
from ostinato.cli.control import purge, raise_event, resume, suspend, terminate
from ostinato.cli.demo_command import demo
from ostinato.cli.instances import history, list_command, start, status, wait_command
from ostinato.cli.serve import serve
from ostinato.cli.transfer import export_command, import_command, migrate_command
from ostinato.cli.worker import worker

for command in (
    config_command,
    worker,
    start,
    wait_command,
    status,
    history,
    list_command,
    raise_event,
    terminate,
    suspend,
    resume,
    purge,
    demo,
    serve,
    export_command,
    import_command,
    migrate_command,
):
    cli.add_command(command)

__all__ = ["cli", "load_app"]
