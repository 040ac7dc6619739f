"""The transfer format: snapshots round-trip through a file; damaged files fail clearly."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ostinato import history
from ostinato.errors import FailureDetails
from ostinato.history import (
    EntityRequest,
    EventRaised,
    ExecutionStarted,
    OrchestratorStarted,
    ParentInstance,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from ostinato.provider import ActivityTask, InstanceRecord, InstanceSnapshot, OrchestrationMessage
from ostinato.status import OrchestrationStatus
from ostinato.transfer import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Counts,
    Header,
    TransferFormatError,
    TransferReader,
    TransferWriter,
    history_digest,
    read_file,
    write_file,
)

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def _running_snapshot() -> InstanceSnapshot:
    iid = "order-ü-17"
    events = [
        ExecutionStarted(
            timestamp=T0,
            name="process_order",
            execution_id="e1",
            input='{"n":1}',
            parent=ParentInstance(instance_id="parent", execution_id="pe", task_id=2, name="p"),
        ),
        OrchestratorStarted(timestamp=T0),
        TaskScheduled(timestamp=T0, task_id=0, name="say_hello", input='"Tokyo"'),
        TaskFailed(
            timestamp=T0,
            task_scheduled_id=0,
            failure=FailureDetails("ValueError", "bad ✓", "trace"),
        ),
        TimerCreated(timestamp=T0, task_id=1, fire_at=T0 + timedelta(hours=1)),
    ]
    record = InstanceRecord(
        instance_id=iid,
        name="process_order",
        execution_id="e1",
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=T0,
        last_updated_at=T0 + timedelta(seconds=3),
        input='{"n":1}',
        custom_status='"half way"',
        parent_instance_id="parent",
        history_size=len(events),
    )
    return InstanceSnapshot(
        instance_id=iid,
        record=record,
        history=events,
        messages=[
            OrchestrationMessage(iid, EventRaised(timestamp=T0, name="approve", input="true")),
            OrchestrationMessage(
                iid,
                TimerFired(timestamp=T0, timer_id=1, fire_at=T0 + timedelta(hours=1)),
                execution_id="e1",
                visible_at=T0 + timedelta(hours=1),
            ),
        ],
        activity_tasks=[ActivityTask(iid, "e1", 3, "say_hello", '"Seattle"')],
    )


def _snapshots() -> list[InstanceSnapshot]:
    failed = InstanceRecord(
        instance_id="failed-1",
        name="flaky",
        execution_id="e9",
        runtime_status=OrchestrationStatus.FAILED,
        created_at=T0,
        last_updated_at=T0,
        failure_details=FailureDetails("RuntimeError", "boom", None, FailureDetails("X", "y")),
    )
    entity_id = "@counter@k1"
    entity = InstanceSnapshot(
        instance_id=entity_id,
        record=InstanceRecord(
            instance_id=entity_id,
            name="counter",
            execution_id="entity",
            runtime_status=OrchestrationStatus.RUNNING,
            created_at=T0,
            last_updated_at=T0,
            custom_status='{"state":5}',
        ),
        messages=[
            OrchestrationMessage(
                entity_id,
                EntityRequest(timestamp=T0, request_id="r1", operation="add", input="1"),
            )
        ],
    )
    orphan = InstanceSnapshot(
        instance_id="not-started-yet",
        record=None,
        messages=[OrchestrationMessage("not-started-yet", EventRaised(timestamp=T0, name="go"))],
    )
    return [entity, InstanceSnapshot("failed-1", failed), orphan, _running_snapshot()]


def _write(snapshots: list[InstanceSnapshot]) -> str:
    buffer = io.StringIO()
    with TransferWriter(buffer, Header(exported_at=T0, source={"provider": "memory"})) as w:
        w.write_all(snapshots)
    return buffer.getvalue()


def test_snapshots_round_trip_with_header_and_counts(tmp_path: Path) -> None:
    snapshots = _snapshots()
    path = tmp_path / "hub.jsonl"
    counts = write_file(path, snapshots, Header(exported_at=T0, source={"provider": "memory"}))
    assert counts == Counts(
        instances=3, entities=1, history_events=5, messages=3, timers=1, activity_tasks=1
    )
    header, read = read_file(path)
    assert header.version == FORMAT_VERSION
    assert header.exported_at == T0
    assert header.source == {"provider": "memory"}
    assert read == snapshots
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["format"] == FORMAT_NAME
    assert [line["type"] for line in lines[1:-1]] == ["entity", "instance", "instance", "instance"]
    assert lines[-1] == {"type": "end", **counts.to_dict()}
    running = lines[4]
    # History is stored with the history module's codec; delayed messages are the timers.
    assert running["history"] == [history.to_dict(e) for e in snapshots[3].history]
    assert running["history_sha256"] == history_digest(snapshots[3].history)
    assert [m["event"]["type"] for m in running["timers"]] == ["TimerFired"]
    assert [m["event"]["type"] for m in running["messages"]] == ["EventRaised"]


def test_history_digest_tells_histories_apart() -> None:
    events = _running_snapshot().history
    assert history_digest(events) == history_digest(list(events))
    assert history_digest(events) != history_digest(events[:-1])
    assert history_digest(events) != history_digest([events[1], events[0], *events[2:]])


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_a_newer_format_version_is_refused() -> None:
    lines = _lines(_write([]))
    header = json.loads(lines[0])
    header["version"] = FORMAT_VERSION + 1
    with pytest.raises(TransferFormatError, match="newer than this ostinato"):
        TransferReader([json.dumps(header), *lines[1:]])


def test_a_file_of_another_format_is_refused() -> None:
    with pytest.raises(TransferFormatError, match="Not an ostinato transfer file"):
        TransferReader(['{"format": "something-else", "version": 1}\n'])
    with pytest.raises(TransferFormatError, match="empty"):
        TransferReader([])


def test_a_cut_file_is_reported_incomplete() -> None:
    lines = _lines(_write(_snapshots()))
    reader = TransferReader(lines[:-1])
    with pytest.raises(TransferFormatError, match="without its trailer"):
        list(reader)


def test_a_missing_line_is_caught_by_the_trailer() -> None:
    lines = _lines(_write(_snapshots()))
    del lines[2]
    with pytest.raises(TransferFormatError, match="trailer counts"):
        list(TransferReader(lines))


def test_a_damaged_line_names_its_number() -> None:
    lines = _lines(_write(_snapshots()))
    lines[3] = lines[3][: len(lines[3]) // 2] + "\n"
    reader = TransferReader(lines)
    with pytest.raises(TransferFormatError, match="Line 4: not JSON"):
        list(reader)


def test_an_edited_history_fails_its_digest() -> None:
    lines = _lines(_write(_snapshots()))
    data = json.loads(lines[4])
    data["history"][2]["input"] = '"Paris"'
    lines[4] = json.dumps(data) + "\n"
    with pytest.raises(TransferFormatError, match="Line 5: History of 'order-ü-17' does not"):
        list(TransferReader(lines))


def test_an_unknown_event_type_is_a_clear_error() -> None:
    lines = _lines(_write(_snapshots()))
    data = json.loads(lines[4])
    data["history"][0]["type"] = "Teleported"
    del data["history_sha256"]
    lines[4] = json.dumps(data) + "\n"
    with pytest.raises(TransferFormatError, match=r"Line 5: .*Teleported"):
        list(TransferReader(lines))
