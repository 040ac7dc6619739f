"""Moving a task hub's state in and out: the versioned JSON Lines transfer format.

:mod:`ostinato.transfer.format` documents the format; :class:`TransferWriter` and
:class:`TransferReader` write and read it as :class:`~ostinato.provider.InstanceSnapshot`
values.
"""

from ostinato.transfer.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Counts,
    Header,
    TransferFormatError,
    history_digest,
    is_entity_id,
    snapshot_from_dict,
    snapshot_to_dict,
)
from ostinato.transfer.stream import TransferReader, TransferWriter, read_file, write_file

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Counts",
    "Header",
    "TransferFormatError",
    "TransferReader",
    "TransferWriter",
    "history_digest",
    "is_entity_id",
    "read_file",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "write_file",
]
