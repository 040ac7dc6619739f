"""Large payloads: values over the native limits go to blobs, gzip-compressed.

Blob names are ``<sha1(instance id)>/<sha256(content)>.gz``: content addressed (uploading the
same value twice is a no-op we can skip) and grouped per instance, so purge deletes an
instance's blobs by listing one prefix.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import ContainerClient

#: A table string property holds 64 KiB of UTF-16 (32 K code units); keep a margin.
TABLE_INLINE_UNITS = 30_000
#: A queue message holds 64 KiB of (XML-escaped) text; keep a margin.
QUEUE_INLINE_BYTES = 60_000


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def xml_size(text: str) -> int:
    """The size of ``text`` once XML-escaped in a queue message body."""
    size = len(text.encode("utf-8"))
    return size + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))


def instance_prefix(instance_id: str) -> str:
    return hashlib.sha1(instance_id.encode("utf-8")).hexdigest()


class BlobStore:
    """Uploads and downloads offloaded payloads, with a small cache of known blobs."""

    def __init__(
        self,
        container: ContainerClient,
        count: Callable[[str], None],
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.container = container
        self._count = count
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = 0
        self._cache_limit = cache_bytes
        self._mutex = threading.Lock()

    def _remember(self, name: str, text: str) -> None:
        with self._mutex:
            if name in self._cache:
                self._cache.move_to_end(name)
                return
            self._cache[name] = text
            self._cache_size += len(text)
            while self._cache_size > self._cache_limit and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cache_size -= len(old)

    def put(self, instance_id: str, text: str) -> str:
        """Store ``text`` and return the blob name."""
        data = text.encode("utf-8")
        name = f"{instance_prefix(instance_id)}/{hashlib.sha256(data).hexdigest()}.gz"
        with self._mutex:
            known = name in self._cache
        if not known:
            self._count("blob.upload")
            # Content addressed: a blob of that name holds this text already. Never rewriting
            # it keeps a reader's ranged download of it from failing on a changed ETag.
            with contextlib.suppress(ResourceExistsError):
                self.container.upload_blob(name, gzip.compress(data, 6), overwrite=False)
            self._remember(name, text)
        return name

    def get(self, name: str) -> str:
        """The text stored under ``name``."""
        with self._mutex:
            text = self._cache.get(name)
        if text is not None:
            return text
        for attempt in range(3):
            self._count("blob.download")
            try:
                data = self.container.download_blob(name).readall()
                break
            except ResourceModifiedError:  # written while read in ranges: read it again
                if attempt == 2:
                    raise
        text = gzip.decompress(data).decode("utf-8")
        self._remember(name, text)
        return text

    def delete_instance(self, instance_id: str) -> None:
        """Delete every blob of the instance."""
        prefix = instance_prefix(instance_id) + "/"
        self._count("blob.list")
        names = [b.name for b in self.container.list_blobs(name_starts_with=prefix)]
        for name in names:
            self._count("blob.delete")
            try:
                self.container.delete_blob(name)
            except ResourceNotFoundError:
                pass
        with self._mutex:
            for name in names:
                text = self._cache.pop(name, None)
                if text is not None:
                    self._cache_size -= len(text)


def put_property(
    entity: dict[str, Any], name: str, value: str | None, instance_id: str, blobs: BlobStore
) -> None:
    """Set string property ``name`` on ``entity``, offloading it to a blob if too large."""
    if value is None:
        return
    if utf16_units(value) <= TABLE_INLINE_UNITS:
        entity[name] = value
    else:
        entity[name + "Blob"] = blobs.put(instance_id, value)


def get_property(entity: dict[str, Any], name: str, blobs: BlobStore) -> str | None:
    """The value :func:`put_property` stored."""
    ref = entity.get(name + "Blob")
    if ref:
        return blobs.get(str(ref))
    value = entity.get(name)
    return None if value is None else str(value)
