"""The history codec writes every event type exactly as the plain field-by-field encoding
does (same keys, same order, same text), and reads back what it wrote and what older
ostinato versions stored."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ostinato import history
from ostinato.errors import FailureDetails
from ostinato.history import HistoryEvent, ParentInstance
from ostinato.status import OrchestrationStatus

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LATER = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
FAILURE = FailureDetails("ValueError", "bad ü", "Traceback ...", FailureDetails("KeyError", "k"))

#: A value for every field name some event type has, none of them ``None``.
FULL: dict[str, Any] = {
    "name": "say_hello",
    "execution_id": "e1",
    "input": '"Tokyo"',
    "parent": ParentInstance("parent-1", "pe", 4, "outer"),
    "scheduled_start_at": LATER,
    "version": "2.0",
    "tags": {"team": "ü"},
    "trace_context": "00-abc-def-01",
    "patches": ("p1", "p2"),
    "task_id": 3,
    "task_scheduled_id": 3,
    "timer_id": 5,
    "result": '"Hello Tokyo!"',
    "failure": FAILURE,
    "instance_id": "child-1",
    "fire_at": LATER,
    "reason": "why",
    "output": '"done"',
    "recursive": False,
    "status": OrchestrationStatus.FAILED,
    "new_execution_id": "e2",
    "entity_id": "@counter@a",
    "scheduled_at": LATER,
    "entity_ids": ("@a@1", "@b@2"),
    "critical_section_id": "cs",
    "request_id": "r1",
    "operation": "add",
    "caller_instance_id": "caller",
    "caller_execution_id": "ce",
    "caller_task_id": 7,
    "lock_set": ("@a@1", "@b@2"),
    "position": 1,
    "holder_instance_id": "holder",
}


def _required(cls: type[HistoryEvent]) -> dict[str, Any]:
    return {
        f.name: FULL[f.name]
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def _examples() -> list[HistoryEvent]:
    examples: list[HistoryEvent] = []
    for cls in history.EVENT_CLASSES.values():
        names = [f.name for f in dataclasses.fields(cls) if f.name != "timestamp"]
        examples.append(cls(timestamp=WHEN, **{name: FULL[name] for name in names}))
        examples.append(cls(timestamp=WHEN, **_required(cls)))  # optional fields at defaults
    return examples


EXAMPLES = _examples()


def reference_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """The encoding spelled out: ``v``, ``type``, then every field that is not ``None``, in
    declaration order, with datetimes as ISO text, failures and parents as objects, statuses
    as their value."""
    data: dict[str, Any] = {"v": event.format_version, "type": event.event_type.value}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, FailureDetails):
            value = value.to_dict()
        elif isinstance(value, ParentInstance):
            value = dataclasses.asdict(value)
        elif isinstance(value, OrchestrationStatus):
            value = value.value
        data[f.name] = value
    return data


def reference_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "event", EXAMPLES, ids=[f"{type(e).__name__}-{i % 2}" for i, e in enumerate(EXAMPLES)]
)
def test_every_event_type_encodes_as_the_reference_does(event: HistoryEvent) -> None:
    expected = reference_to_dict(event)
    data = history.to_dict(event)
    assert data == expected
    assert list(data) == list(expected)  # the key order, which is the stored text's
    assert history.dumps(event) == reference_text(expected)
    assert history.loads(history.dumps(event)) == event
    assert history.from_dict(data) == event


def test_the_examples_cover_every_event_type_with_every_field_set() -> None:
    covered = {type(e) for e in EXAMPLES}
    assert covered == set(history.EVENT_CLASSES.values())
    for event in EXAMPLES[::2]:
        assert all(getattr(event, f.name) is not None for f in dataclasses.fields(event))


def test_a_run_of_events_is_one_array_of_the_same_objects() -> None:
    text = history.dumps_many(EXAMPLES)
    assert text == reference_text([reference_to_dict(e) for e in EXAMPLES])
    assert history.loads_many(text) == EXAMPLES
    assert history.dumps_many(EXAMPLES[:1]) == history.dumps(EXAMPLES[0])


def test_a_none_is_left_out_even_where_the_type_does_not_allow_it() -> None:
    event = history.TaskScheduled(timestamp=WHEN, task_id=1, name=None)  # type: ignore[arg-type]
    assert history.to_dict(event) == {
        "v": 1,
        "type": "TaskScheduled",
        "timestamp": WHEN.isoformat(),
        "task_id": 1,
    }


#: Events as an earlier ostinato stored them (its ``history.dumps``), byte for byte.
STORED = [
    '{"v":1,"type":"ExecutionStarted","timestamp":"2024-05-06T07:08:09.123456+00:00",'
    '"name":"hello_cities","execution_id":"e1","input":"null","parent":{"instance_id":"p",'
    '"execution_id":"pe","task_id":4,"name":"outer"},"tags":{"team":"ü"}}',
    '{"v":1,"type":"OrchestratorCompleted","timestamp":"2024-05-06T07:08:09.123456+00:00",'
    '"patches":["p1"]}',
    '{"v":1,"type":"TaskFailed","timestamp":"2024-05-06T07:08:09.123456+00:00",'
    '"task_scheduled_id":3,"failure":{"type":"ValueError","message":"bad","stack":"Tb",'
    '"inner":{"type":"KeyError","message":"k"}}}',
    '{"v":1,"type":"ExecutionCompleted","timestamp":"2024-05-06T07:08:09.123456+00:00",'
    '"status":"COMPLETED","result":"[\\"Hello Tokyo!\\"]"}',
    '{"v":2,"type":"ExecutionRewound","timestamp":"2024-05-06T07:08:09.123456+00:00"}',
]


@pytest.mark.parametrize("text", STORED, ids=range(len(STORED)))
def test_stored_events_read_back_and_write_the_same_text(text: str) -> None:
    assert history.dumps(history.loads(text)) == text


def test_reading_ignores_fields_it_does_not_know_and_leaves_the_data_as_it_was() -> None:
    data = {
        "v": 1,
        "type": "TaskCompleted",
        "timestamp": WHEN.isoformat(),
        "task_scheduled_id": 3,
        "result": '"r"',
        "added_later": {"x": 1},
    }
    before = dict(data)
    event = history.from_dict(data)
    assert event == history.TaskCompleted(timestamp=WHEN, task_scheduled_id=3, result='"r"')
    assert data == before
    del data["v"]  # written before versions: version 1
    del data["added_later"]
    assert history.from_dict(data) == event
    assert history.from_dict(data | {"result": None}).result is None  # a null: None
