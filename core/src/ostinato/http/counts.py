"""The dashboard's status counts: instances per runtime status under a filter, cheaply.

The provider contract has no counting query, so the counts come from a scan of the
instance list (without payloads) that is

* **bounded**: at most :data:`COUNT_LIMIT` instances are read per count; beyond that the
  counts are marked as capped (the page shows ``5000+``);
* **cached**: a count is reused for :data:`COUNT_TTL_SECONDS` seconds, for at most
  :data:`CACHED_FILTERS` filters (the least recently used is dropped first), so live refresh
  and many open pages do not rescan the task hub every two seconds;
* **shared**: requests arriving while a filter is being counted wait for that one scan.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ostinato.client import AsyncClient
from ostinato.http import wire

#: Instances read at most per count.
COUNT_LIMIT = 5000

#: Seconds a count is reused.
COUNT_TTL_SECONDS = 10.0

#: Filters whose counts are kept at once.
CACHED_FILTERS = 64

#: Instances read per call to the provider.
_PAGE = 1000


@dataclass(frozen=True)
class StatusCounts:
    """Instances per status name (``"Running"``...), whether the scan stopped at its limit,
    and when it was taken."""

    counts: dict[str, int]
    capped: bool
    taken_at: datetime

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class StatusCounter:
    """Counts per filter, bounded, cached and shared (see the module docstring)."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        limit: int = COUNT_LIMIT,
        ttl: float = COUNT_TTL_SECONDS,
        size: int = CACHED_FILTERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or ttl < 0 or size < 1:
            raise ValueError("limit and size must be >= 1 and ttl >= 0")
        self.client = client
        self.limit = limit
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._cache: OrderedDict[Hashable, tuple[float, StatusCounts]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Future[StatusCounts]] = {}
        #: Scans made so far (for tests and metrics).
        self.scans = 0

    def __len__(self) -> int:
        """Filters whose counts are cached now."""
        return len(self._cache)

    async def get(self, filters: dict[str, Any]) -> StatusCounts:
        """The counts under ``filters`` (keyword arguments of ``query_instances``)."""
        key = tuple(sorted(filters.items()))
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self.ttl:
            self._cache.move_to_end(key)
            return cached[1]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[StatusCounts] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            counts = await self._scan(filters)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._running[key]
        future.set_result(counts)
        self._cache[key] = (self._clock(), counts)
        self._cache.move_to_end(key)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return counts

    async def _scan(self, filters: dict[str, Any]) -> StatusCounts:
        self.scans += 1
        counts: Counter[str] = Counter()
        token: str | None = None
        seen = 0
        while True:
            page = await self.client.query_instances(
                page_size=min(_PAGE, self.limit - seen),
                continuation_token=token,
                fetch_payloads=False,
                **filters,
            )
            counts.update(wire.status_name(s.runtime_status) for s in page.items)
            seen += len(page.items)
            token = page.continuation_token
            if token is None or seen >= self.limit:
                return StatusCounts(dict(counts), token is not None, datetime.now(UTC))


__all__ = [
    "CACHED_FILTERS",
    "COUNT_LIMIT",
    "COUNT_TTL_SECONDS",
    "StatusCounter",
    "StatusCounts",
]
