"""The replayer: checks current orchestrator code against recorded histories.

``Replayer(app).replay(history)`` re-runs the code against a history as a worker would after
a restart, and raises :class:`~ostinato.errors.NonDeterminismError` naming the first place
where the code no longer does what the history recorded: a different or missing activity,
timer, sub-orchestration, event or entity call, a new one the history does not have, or a
different ending (completed instead of failed, another result, continue-as-new or not).
Histories come from any provider (``client.get_orchestration_history``) or from export files
(:meth:`Replayer.replay_file`), so CI can check a change against a sample of production
instances before it is deployed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ostinato.converter import DataConverter, default_converter
from ostinato.errors import NonDeterminismError
from ostinato.history import ContinueAsNew, ExecutionCompleted, ExecutionStarted, HistoryEvent
from ostinato.orchestration.app import App
from ostinato.orchestration.engine import OrchestrationRun
from ostinato.status import OrchestrationStatus

if TYPE_CHECKING:
    from ostinato.client import Client


@dataclass(frozen=True)
class ReplayResult:
    """A history the code replayed cleanly: the instance, its orchestrator and its status."""

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    events: int


@dataclass(frozen=True)
class ReplayOutcome:
    """One history of a batch: replayed cleanly (``error`` is ``None``) or not."""

    instance_id: str
    name: str
    error: NonDeterminismError | None

    @property
    def ok(self) -> bool:
        return self.error is None


class Replayer:
    """Replays recorded histories against ``app``'s current code."""

    def __init__(self, app: App, *, converter: DataConverter | None = None) -> None:
        self.app = app
        self.converter = converter or default_converter

    def replay(
        self, history: Sequence[HistoryEvent], *, instance_id: str = "replayed-instance"
    ) -> ReplayResult:
        """Replay one execution's history; raises ``NonDeterminismError`` on a divergence."""
        start = next((e for e in history if isinstance(e, ExecutionStarted)), None)
        if start is None:
            raise ValueError(f"The history of '{instance_id}' has no ExecutionStarted event")
        where = f"Orchestration '{instance_id}' ({start.name})"
        if start.name not in self.app.orchestrators:
            raise NonDeterminismError(
                f"{where}: no orchestrator named {start.name!r} is registered with the app"
            )
        end = history[-1] if history else None
        recorded = list(history)
        if isinstance(end, ExecutionCompleted | ContinueAsNew):
            recorded.pop()
        else:
            end = None
        run = OrchestrationRun(self.app, instance_id, self.converter)
        run.replay(recorded)
        if run.divergence is not None:
            raise NonDeterminismError(f"{run.divergence}") from None
        _compare_endings(where, run, end)
        status = run.status
        if isinstance(end, ExecutionCompleted):
            status = end.status
        elif isinstance(end, ContinueAsNew):
            status = OrchestrationStatus.CONTINUED_AS_NEW
        return ReplayResult(instance_id, start.name, status, len(history))

    def replay_instance(self, client: Client, instance_id: str) -> ReplayResult:
        """Replay the current execution of a stored instance (read through ``client``)."""
        return self.replay(client.get_orchestration_history(instance_id), instance_id=instance_id)

    def replay_all(
        self, histories: Iterable[tuple[str, Sequence[HistoryEvent]]]
    ) -> list[ReplayOutcome]:
        """Replay each ``(instance id, history)``; collects divergences instead of raising."""
        outcomes = []
        for instance_id, history in histories:
            name = next((e.name for e in history if isinstance(e, ExecutionStarted)), "")
            try:
                self.replay(history, instance_id=instance_id)
            except NonDeterminismError as exc:
                outcomes.append(ReplayOutcome(instance_id, name, exc))
            else:
                outcomes.append(ReplayOutcome(instance_id, name, None))
        return outcomes

    def replay_file(self, path: str | Path) -> list[ReplayOutcome]:
        """Replay every orchestration in an export file (``ostinato export``)."""
        from ostinato.testing.exported import histories_in_file

        return self.replay_all(histories_in_file(path))


def _compare_endings(
    where: str, run: OrchestrationRun, end: ExecutionCompleted | ContinueAsNew | None
) -> None:
    """Raise if the code ends differently from the recorded history."""
    ended = run.ended
    if end is None:
        if ended is not None:
            raise NonDeterminismError(
                f"{where}: the code now ends the instance ({run.status.value}) where its "
                "history shows it still running"
            )
        return
    if isinstance(end, ExecutionCompleted) and end.status is OrchestrationStatus.TERMINATED:
        return  # ended from outside: the code had no say
    if ended is None:
        raise NonDeterminismError(
            f"{where}: the history ends the instance ({_describe_end(end)}), but the code "
            "now keeps it running"
        )
    if type(ended) is not type(end) or _outcome(ended) != _outcome(end):
        raise NonDeterminismError(
            f"{where}: the history ends with {_describe_end(end)}, but the code now ends "
            f"with {_describe_end(ended)}"
        )


def _outcome(end: ExecutionCompleted | ContinueAsNew) -> tuple[object, ...]:
    if isinstance(end, ContinueAsNew):
        return ("continue_as_new", end.input)
    if end.status is OrchestrationStatus.COMPLETED:
        return (end.status, end.result)
    return (end.status, end.failure.error_type if end.failure else None)


def _describe_end(end: ExecutionCompleted | ContinueAsNew) -> str:
    if isinstance(end, ContinueAsNew):
        return f"continue_as_new({end.input})"
    if end.status is OrchestrationStatus.COMPLETED:
        return f"COMPLETED with output {end.result}"
    if end.failure is not None:
        return f"{end.status.value} ({end.failure.error_type}: {end.failure.message})"
    return str(end.status.value)


__all__ = ["ReplayOutcome", "ReplayResult", "Replayer"]
