"""The history codec's format versions: each event is written with the version that
introduced its type, and a reader refuses a newer one with an error that says what to do."""

from __future__ import annotations

import json

import pytest
from ostinato import history
from ostinato.errors import SerializationError
from ostinato.history import ExecutionRewound, TaskScheduled


def test_events_carry_the_format_version_that_introduced_their_type() -> None:
    assert history.FORMAT_VERSION == 2
    assert json.loads(history.dumps(TaskScheduled(task_id=0, name="a")))["v"] == 1
    rewound = ExecutionRewound(reason="fixed")
    assert json.loads(history.dumps(rewound))["v"] == 2
    assert history.loads(history.dumps(rewound)) == rewound


def test_an_older_reader_refuses_a_newer_event_by_name_and_asks_for_an_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = history.dumps(ExecutionRewound(reason="fixed"))
    older = history.dumps(TaskScheduled(task_id=0, name="a"))
    monkeypatch.setattr(history, "FORMAT_VERSION", 1)  # a reader from before rewind
    assert history.loads(older) == history.loads(older)  # the events it knows still read
    with pytest.raises(SerializationError) as caught:
        history.loads(text)
    message = str(caught.value)
    assert "'ExecutionRewound'" in message and "format version 2" in message
    assert "upgrade ostinato" in message and "Unknown" not in message


def test_an_unknown_type_or_a_bad_version_is_a_corrupt_record() -> None:
    with pytest.raises(SerializationError, match=r"Unknown history event type 'Nope' .*corrupt"):
        history.loads('{"v":1,"type":"Nope"}')
    with pytest.raises(SerializationError, match="no valid format version"):
        history.loads('{"v":"x","type":"TaskScheduled"}')
    with pytest.raises(SerializationError, match="format version 99, newer"):
        history.loads('{"v":99,"type":"TaskScheduled"}')
