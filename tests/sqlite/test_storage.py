"""What the SQLite provider stores: task hub isolation, purge, queries, payloads, Unicode ids."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from ostinato import history
from ostinato.clock import utcnow
from ostinato.history import EventRaised, ExecutionStarted, OrchestratorStarted
from ostinato.provider import (
    ActivityTask,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    ReuseIdPolicy,
)
from ostinato.relational.schema import ACTIVITIES, HISTORY, INBOX, INSTANCES, ORCHESTRATION_QUEUE
from ostinato.sqlite import SqliteProvider
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus

from .helpers import LONG, count_rows, create, event, record, start

TABLES = (INSTANCES, HISTORY, INBOX, ORCHESTRATION_QUEUE, ACTIVITIES)


def _run_step(provider: SqliteProvider, instance_id: str, status: OrchestrationStatus) -> None:
    """Lock the instance, write two history events and an activity task, set ``status``."""
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None and item.instance_id == instance_id
    assert item.instance is not None
    rec = item.instance
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=rec.with_changes(runtime_status=status, history_size=2),
            new_history=[
                ExecutionStarted(name=rec.name, execution_id=rec.execution_id),
                OrchestratorStarted(),
            ],
            activity_tasks=[ActivityTask(instance_id, rec.execution_id, 0, "act")],
        ),
    )


# -- task hubs --------------------------------------------------------------------------------
def test_task_hubs_in_one_file_are_isolated(db_path: Path) -> None:
    a = SqliteProvider(db_path, task_hub="a")
    b = SqliteProvider(db_path, task_hub="b")
    rec_a = create(a, "same-id", input='"A"')
    rec_b = create(b, "same-id", input='"B"')
    create(b, "only-b")
    got_a, got_b = a.get_instance("same-id"), b.get_instance("same-id")
    assert got_a is not None and got_a.execution_id == rec_a.execution_id and got_a.input == '"A"'
    assert got_b is not None and got_b.execution_id == rec_b.execution_id and got_b.input == '"B"'
    assert a.get_instance("only-b") is None
    assert [r.instance_id for r in a.query_instances(InstanceQuery()).items] == ["same-id"]
    assert len(b.query_instances(InstanceQuery()).items) == 2

    items_a = a.lock_next_orchestration_work_items("w", LONG, 10)
    assert [(i.instance_id, i.messages[0].execution_id) for i in items_a] == [
        ("same-id", rec_a.execution_id)
    ]
    _complete_terminal(a, items_a[0])
    assert a.lock_next_activity_work_item("w", LONG) is not None
    assert b.lock_next_activity_work_item("w", LONG) is None  # a's activity is a's alone
    assert b.get_history("same-id") == []
    assert a.purge_instance("same-id", TERMINAL_STATUSES)
    assert b.get_instance("same-id") is not None
    assert len(b.lock_next_orchestration_work_items("w", LONG, 10)) == 2
    a.close()
    b.close()


def _complete_terminal(provider: SqliteProvider, item: object) -> None:
    rec = item.instance  # type: ignore[attr-defined]
    provider.complete_orchestration_work_item(
        item,  # type: ignore[arg-type]
        OrchestrationCheckpoint(
            instance=rec.with_changes(runtime_status=OrchestrationStatus.COMPLETED, history_size=1),
            new_history=[OrchestratorStarted()],
            activity_tasks=[ActivityTask(rec.instance_id, rec.execution_id, 0, "act")],
        ),
    )


# -- purge ------------------------------------------------------------------------------------
def test_purge_removes_everything_of_the_instance(provider: SqliteProvider, db_path: Path) -> None:
    create(provider, "gone")
    _run_step(provider, "gone", OrchestrationStatus.COMPLETED)
    provider.send_message(event("gone", "late"))
    provider.send_message(event("gone", "timer", visible_at=utcnow() + timedelta(hours=1)))
    create(provider, "kept")
    for table in (INSTANCES, HISTORY, INBOX, ORCHESTRATION_QUEUE, ACTIVITIES):
        assert count_rows(db_path, table, "gone") > 0, table
    assert provider.purge_instance("gone", TERMINAL_STATUSES) is True
    for table in TABLES:
        assert count_rows(db_path, table, "gone") == 0, table
    assert provider.get_instance("gone") is None
    assert provider.get_history("gone") == []
    assert provider.lock_next_activity_work_item("w", LONG) is None
    items = provider.lock_next_orchestration_work_items("w", LONG, 10)
    assert [i.instance_id for i in items] == ["kept"]
    assert provider.purge_instance("gone", TERMINAL_STATUSES) is False


def test_purge_checks_the_status_atomically(provider: SqliteProvider, db_path: Path) -> None:
    create(provider, "busy")
    _run_step(provider, "busy", OrchestrationStatus.RUNNING)
    assert provider.purge_instance("busy", TERMINAL_STATUSES) is False
    assert provider.purge_instance("busy", []) is False
    assert provider.get_instance("busy") is not None
    assert count_rows(db_path, HISTORY, "busy") == 1  # the step's two events share a row
    assert len(provider.get_history("busy")) == 2
    assert provider.purge_instance("busy", {OrchestrationStatus.RUNNING}) is True
    assert all(count_rows(db_path, t, "busy") == 0 for t in TABLES)


# -- queries ----------------------------------------------------------------------------------
def _populate(provider: SqliteProvider, n: int) -> list[InstanceRecord]:
    rng = random.Random(7)
    base = utcnow() - timedelta(hours=1)
    records = []
    for i in range(n):
        status = rng.choice(list(OrchestrationStatus))
        rec = record(
            f"{rng.choice(['job', 'Job', 'j%b', 'j_b', 'task'])}-{i:04}",
            name=rng.choice(["alpha", "Alpha", "alphabet", "beta"]),
            status=status,
            created_at=base + timedelta(seconds=i),
        )
        provider.create_instance(rec, start(rec), ReuseIdPolicy.REPLACE_ANY)
        records.append(rec)
    return records


def _all_pages(provider: SqliteProvider, query: InstanceQuery) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page = provider.query_instances(
            InstanceQuery(**{**query.__dict__, "continuation_token": token})
        )
        assert len(page.items) <= query.page_size
        ids.extend(r.instance_id for r in page.items)
        token = page.continuation_token
        if token is None:
            return ids
        assert len(page.items) == query.page_size


@pytest.mark.parametrize(
    "query",
    [
        InstanceQuery(page_size=7),
        InstanceQuery(page_size=1000),
        InstanceQuery(
            page_size=13,
            runtime_status=frozenset({OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED}),
        ),
        InstanceQuery(page_size=5, name_prefix="alpha"),
        InstanceQuery(page_size=5, instance_id_prefix="j%"),
        InstanceQuery(page_size=5, instance_id_prefix="j_"),
        InstanceQuery(page_size=5, instance_id_prefix="Job"),
        InstanceQuery(page_size=4, runtime_status=frozenset()),
    ],
    ids=["all", "one-page", "status", "name-prefix", "percent", "underscore", "case", "none"],
)
def test_query_pages_are_exact(provider: SqliteProvider, query: InstanceQuery) -> None:
    records = _populate(provider, 120)
    stored = {r.instance_id: r for r in records}
    expected = sorted(i for i, r in stored.items() if query.matches(r))
    assert _all_pages(provider, query) == expected


def test_query_by_created_time_range(provider: SqliteProvider) -> None:
    records = _populate(provider, 60)
    lo, hi = records[10].created_at, records[30].created_at
    query = InstanceQuery(page_size=6, created_from=lo, created_to=hi)
    expected = sorted(r.instance_id for r in records if lo <= r.created_at <= hi)
    assert len(expected) == 21
    assert _all_pages(provider, query) == expected


def test_records_round_trip(provider: SqliteProvider) -> None:
    rec = create(provider, "rt", input='{"a": [1, 2]}')
    got = provider.get_instance("rt")
    assert got == rec  # every field, timestamps to the microsecond


# -- payloads and ids -------------------------------------------------------------------------
def _payload(size: int) -> str:
    """A JSON string literal of exactly ``size`` UTF-8 bytes, with escapes and non-ASCII."""
    if size == 0:
        return ""
    head = json.dumps('é"\\\n€😀', ensure_ascii=False)[:-1]
    filler = size - len(head.encode("utf-8")) - 1
    return head + "x" * filler + '"'


@pytest.mark.parametrize(
    "size",
    [0, 45 * 1024, 64 * 1024, 1024 * 1024, 10 * 1024 * 1024],
    ids=["0B", "45KB", "64KB", "1MB", "10MB"],
)
def test_payloads_round_trip(provider: SqliteProvider, size: int) -> None:
    payload = _payload(size)
    assert len(payload.encode("utf-8")) == size
    rec = create(provider, "big", input=payload)
    got = provider.get_instance("big")
    assert got is not None and got.input == payload
    provider.send_message(event("big", "data", data=payload))
    item = provider.lock_next_orchestration_work_item("w", LONG)
    assert item is not None
    assert item.messages[0].event.input == payload  # type: ignore[attr-defined]
    assert item.messages[1].event == EventRaised(
        name="data", input=payload, timestamp=item.messages[1].event.timestamp
    )
    task = ActivityTask("big", rec.execution_id, 1, "act", payload)
    provider.complete_orchestration_work_item(
        item,
        OrchestrationCheckpoint(
            instance=rec.with_changes(output=payload, history_size=1),
            new_history=[EventRaised(name="h", input=payload)],
            activity_tasks=[task],
        ),
    )
    got = provider.get_instance("big")
    assert got is not None and got.output == payload
    (stored,) = provider.get_history("big")
    assert stored.input == payload  # type: ignore[attr-defined]
    activity = provider.lock_next_activity_work_item("w", LONG)
    assert activity is not None and activity.task.input == payload


UNICODE_IDS = [
    "ünïcødé",
    "実例-インスタンス",
    "emoji-🎉🚀",
    "Ελληνικά",
    "spaces and 'quotes'",
    "x" * 100,
]


def test_unicode_instance_ids_round_trip(provider: SqliteProvider) -> None:
    for iid in UNICODE_IDS:
        create(provider, iid, name="名前")
    assert sorted(r.instance_id for r in provider.query_instances(InstanceQuery()).items) == sorted(
        UNICODE_IDS
    )
    assert [
        r.instance_id
        for r in provider.query_instances(InstanceQuery(instance_id_prefix="実例")).items
    ] == ["実例-インスタンス"]
    assert len(provider.query_instances(InstanceQuery(name_prefix="名")).items) == len(UNICODE_IDS)
    items = provider.lock_next_orchestration_work_items("w", LONG, 100)
    assert sorted(i.instance_id for i in items) == sorted(UNICODE_IDS)
    for item in items:
        got = provider.get_instance(item.instance_id)
        assert got is not None and got.instance_id == item.instance_id
        assert item.messages[0].instance_id == item.instance_id
        rec = item.instance
        assert rec is not None
        provider.complete_orchestration_work_item(
            item,
            OrchestrationCheckpoint(
                instance=rec.with_changes(runtime_status=OrchestrationStatus.COMPLETED),
            ),
        )
    for iid in UNICODE_IDS:
        assert provider.purge_instance(iid, TERMINAL_STATUSES)
    assert provider.query_instances(InstanceQuery()).items == []


# -- history rows -----------------------------------------------------------------------------
def test_history_rows_of_one_event_or_of_a_step_read_back_in_order(
    provider: SqliteProvider, db_path: Path
) -> None:
    create(provider, "mixed")
    _run_step(provider, "mixed", OrchestrationStatus.RUNNING)  # one row, two events
    # A row of one event, as an earlier ostinato wrote every event.
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            f"INSERT INTO {HISTORY} (task_hub, instance_id, event) VALUES (?, ?, ?)",
            ("default", "mixed", history.dumps(EventRaised(name="late", input='"x"'))),
        )
    events = provider.get_history("mixed")
    assert [type(e).__name__ for e in events] == [
        "ExecutionStarted",
        "OrchestratorStarted",
        "EventRaised",
    ]
    assert count_rows(db_path, HISTORY, "mixed") == 2
