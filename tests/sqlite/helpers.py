"""Builders and raw checks shared by the SQLite provider tests."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ostinato.clock import utcnow
from ostinato.history import EventRaised, ExecutionStarted
from ostinato.provider import InstanceRecord, OrchestrationMessage, ReuseIdPolicy
from ostinato.sqlite import SqliteProvider
from ostinato.status import OrchestrationStatus

LONG = timedelta(minutes=5)


def record(
    instance_id: str,
    *,
    name: str = "orch",
    status: OrchestrationStatus = OrchestrationStatus.PENDING,
    input: str | None = None,
    created_at: datetime | None = None,
) -> InstanceRecord:
    now = created_at or utcnow()
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=uuid.uuid4().hex,
        runtime_status=status,
        created_at=now,
        last_updated_at=now,
        input=input,
    )


def start(rec: InstanceRecord, visible_at: datetime | None = None) -> OrchestrationMessage:
    return OrchestrationMessage(
        instance_id=rec.instance_id,
        execution_id=rec.execution_id,
        visible_at=visible_at,
        event=ExecutionStarted(name=rec.name, execution_id=rec.execution_id, input=rec.input),
    )


def create(
    provider: SqliteProvider,
    instance_id: str,
    policy: ReuseIdPolicy = ReuseIdPolicy.REPLACE_TERMINAL,
    **kwargs: Any,
) -> InstanceRecord:
    rec = record(instance_id, **kwargs)
    provider.create_instance(rec, start(rec), policy)
    return rec


def event(
    instance_id: str, name: str = "e", data: str | None = None, **kw: Any
) -> OrchestrationMessage:
    return OrchestrationMessage(
        instance_id=instance_id, event=EventRaised(name=name, input=data), **kw
    )


def count_rows(db_path: Path, table: str, instance_id: str | None = None) -> int:
    """Rows of an ostinato table, read straight from the file (optionally for one instance)."""
    with sqlite3.connect(db_path) as conn:
        if instance_id is None:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return int(
            conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE instance_id = ?", (instance_id,)
            ).fetchone()[0]
        )
