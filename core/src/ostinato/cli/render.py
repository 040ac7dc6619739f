"""How the command line shows things: plain JSON data for ``--json``, rich tables for people.

The JSON forms are stable (new keys may be added, existing ones keep their meaning):

* an instance: ``instance_id, name, runtime_status, created_at, last_updated_at, input,
  output, custom_status, failure_details, parent_instance_id, execution_id`` (payloads decoded
  from JSON, times in ISO 8601);
* a history row: ``event_type, timestamp, name, input, result, status`` and ``event``, the
  whole event as stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ostinato.errors import FailureDetails
from ostinato.history_table import HistoryRow, decode_payload, history_rows
from ostinato.status import OrchestrationState, OrchestrationStatus

#: Longest payload text shown in a table cell (``--json`` always has everything).
CELL_WIDTH = 60

_STATUS_STYLE = {
    OrchestrationStatus.PENDING: "yellow",
    OrchestrationStatus.RUNNING: "cyan",
    OrchestrationStatus.COMPLETED: "green",
    OrchestrationStatus.FAILED: "red",
    OrchestrationStatus.TERMINATED: "magenta",
    OrchestrationStatus.SUSPENDED: "yellow",
    OrchestrationStatus.CONTINUED_AS_NEW: "cyan",
}


def console(*, stderr: bool = False) -> Console:
    """A console for output; wide (160 columns) when not writing to a terminal."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=160)
    return out


def dumps_json(data: Any) -> str:
    """The stable JSON text the ``--json`` options print."""
    return json.dumps(data, ensure_ascii=False, indent=2)


def format_time(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the millisecond."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _short(text: str | None, width: int = CELL_WIDTH) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _failure_text(details: FailureDetails | None) -> str | None:
    return None if details is None else f"{details.error_type}: {details.message}"


def _failure_json(details: FailureDetails | None) -> dict[str, Any] | None:
    return None if details is None else details.to_dict()


def status_text(status: OrchestrationStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


# -- instances -------------------------------------------------------------------------------
def state_to_json(state: OrchestrationState) -> dict[str, Any]:
    """An instance's state as plain JSON data."""
    return {
        "instance_id": state.instance_id,
        "name": state.name,
        "runtime_status": state.runtime_status.value,
        "created_at": _iso(state.created_at),
        "last_updated_at": _iso(state.last_updated_at),
        "input": decode_payload(state.serialized_input),
        "output": decode_payload(state.serialized_output),
        "custom_status": decode_payload(state.serialized_custom_status),
        "failure_details": _failure_json(state.failure_details),
        "parent_instance_id": state.parent_instance_id,
        "execution_id": state.execution_id,
    }


def state_table(state: OrchestrationState) -> Table:
    """One instance as a two-column table."""
    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("Instance ID", state.instance_id)
    table.add_row("Name", state.name)
    table.add_row("Status", status_text(state.runtime_status))
    table.add_row("Created", format_time(state.created_at))
    table.add_row("Last updated", format_time(state.last_updated_at))
    table.add_row("Input", state.serialized_input or "")
    table.add_row("Output", state.serialized_output or "")
    if state.serialized_custom_status is not None:
        table.add_row("Custom status", state.serialized_custom_status)
    if state.failure_details is not None:
        table.add_row("Failure", Text(_failure_text(state.failure_details) or "", style="red"))
    if state.parent_instance_id is not None:
        table.add_row("Parent", state.parent_instance_id)
    return table


def instances_table(states: Sequence[OrchestrationState]) -> Table:
    """A list of instances."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("Instance ID", overflow="fold")
    table.add_column("Name")
    table.add_column("Status")
    table.add_column("Created")
    table.add_column("Last updated")
    for state in states:
        table.add_row(
            state.instance_id,
            state.name,
            status_text(state.runtime_status),
            format_time(state.created_at),
            format_time(state.last_updated_at),
        )
    return table


# -- history ---------------------------------------------------------------------------------
def history_table(rows: Sequence[HistoryRow], *, title: str | None = None) -> Table:
    """The history as a table: event type, timestamp, name, input, result, status."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("Event type", no_wrap=True)
    table.add_column("Timestamp", no_wrap=True)
    table.add_column("Name")
    table.add_column("Input")
    table.add_column("Result")
    table.add_column("Status")
    for row in rows:
        result: str | Text = _short(row.result)
        if row.failure is not None:
            result = Text(_short(_failure_text(row.failure)), style="red")
        table.add_row(
            row.event.event_type.value,
            format_time(row.event.timestamp),
            row.name or "",
            _short(row.input),
            result,
            row.status or "",
        )
    return table


__all__ = [
    "HistoryRow",
    "console",
    "decode_payload",
    "dumps_json",
    "format_time",
    "history_rows",
    "history_table",
    "instances_table",
    "state_table",
    "state_to_json",
]
