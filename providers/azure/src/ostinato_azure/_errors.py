"""How the provider reads storage errors: lost races apart from failures.

A queue message another receiver took (its pop receipt changed: ``400 PopReceiptMismatch``)
or deleted (``404``) is a lost race, and so is an ETag-conditional write that found the row
changed (``412``) or gone: the work item's lock is lost (``WorkItemLockLost``), nothing
failed. Everything else the driver raises becomes ``ProviderError`` at the provider's edge
(``AzureStorageProvider._mapped_errors``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

#: Queue error codes that mean another receiver holds or removed the message.
_LOST_MESSAGE_CODES = frozenset({"PopReceiptMismatch", "MessageNotFound", "QueueNotFound"})


def lost_message(exc: BaseException) -> bool:
    """Whether a queue call on a held message failed because the message is no longer ours."""
    if isinstance(exc, ResourceNotFoundError):
        return True
    if not isinstance(exc, HttpResponseError):
        return False
    error_code = getattr(exc, "error_code", None)  # set by the storage SDKs
    code = str(getattr(error_code, "value", error_code) or "")
    return exc.status_code in (400, 404) and code in _LOST_MESSAGE_CODES


@contextlib.contextmanager
def ignoring_lost_message() -> Iterator[None]:
    """Suppress a lost race on a held queue message (other errors pass through)."""
    try:
        yield
    except HttpResponseError as exc:
        if not lost_message(exc):
            raise
