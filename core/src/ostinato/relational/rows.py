"""Conversions between contract objects and table rows (times as epoch microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ostinato.provider import InstanceRecord, decode_failure, encode_failure
from ostinato.status import OrchestrationStatus

__all__ = ["from_micros", "instance_record", "instance_row", "to_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Each status by its stored value, and the reverse (dict look-ups instead of calling the
#: enum, or its ``value`` property, per row).
_STATUSES = {status.value: status for status in OrchestrationStatus}
_VALUES = {status: status.value for status in OrchestrationStatus}


def to_micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch (exact, no float)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The inverse of :func:`to_micros` (an aware UTC datetime)."""
    return _EPOCH + timedelta(microseconds=micros)


def instance_row(record: InstanceRecord) -> tuple[Any, ...]:
    """``record`` as values for :data:`~ostinato.relational.schema.INSTANCE_COLUMNS`."""
    return (
        record.instance_id,
        record.name,
        record.execution_id,
        _VALUES[record.runtime_status],
        to_micros(record.created_at),
        to_micros(record.last_updated_at),
        record.input,
        record.output,
        record.custom_status,
        encode_failure(record.failure_details),
        record.parent_instance_id,
        record.history_size,
    )


def instance_record(row: Any) -> InstanceRecord:
    """The inverse of :func:`instance_row`."""
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        runtime_status=_STATUSES.get(row[3]) or OrchestrationStatus(row[3]),
        created_at=from_micros(row[4]),
        last_updated_at=from_micros(row[5]),
        input=row[6],
        output=row[7],
        custom_status=row[8],
        failure_details=decode_failure(row[9]),
        parent_instance_id=row[10],
        history_size=row[11],
    )
