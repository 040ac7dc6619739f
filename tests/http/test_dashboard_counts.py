"""The dashboard's status counts are cheap: a bounded scan, cached per filter for a while in
bounded memory, one scan shared by concurrent requests."""

from __future__ import annotations

import asyncio

import httpx
import ostinato as ot
from http_api_support import ServerThread
from ostinato.http import create_app
from ostinato.http.counts import CACHED_FILTERS, COUNT_LIMIT, COUNT_TTL_SECONDS, StatusCounter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _hub(count: int, prefix: str = "c") -> ot.InMemoryProvider:
    provider = ot.InMemoryProvider()
    client = ot.Client(provider)
    for n in range(count):
        client.schedule_new_orchestration("job", instance_id=f"{prefix}-{n:03}")
    return provider


def test_a_count_reads_at_most_its_limit() -> None:
    provider = _hub(7)
    counter = StatusCounter(ot.AsyncClient(provider), limit=5)
    counts = asyncio.run(counter.get({}))
    assert (counts.counts, counts.total, counts.capped) == ({"Pending": 5}, 5, True)
    exact = asyncio.run(StatusCounter(ot.AsyncClient(provider), limit=7).get({}))
    assert (exact.total, exact.capped) == (7, False)
    assert (COUNT_LIMIT, CACHED_FILTERS) == (5000, 64)  # docs/dashboard.md


def test_counts_are_reused_for_a_while_then_taken_again() -> None:
    provider = _hub(3)
    clock = Clock()
    counter = StatusCounter(ot.AsyncClient(provider), ttl=10, clock=clock)
    client = ot.Client(provider)

    async def run() -> None:
        first = await counter.get({"name_prefix": None})
        assert first.total == 3
        client.schedule_new_orchestration("job", instance_id="c-new")
        clock.now += 9.9
        assert (await counter.get({"name_prefix": None})) is first  # cached
        assert counter.scans == 1
        other = await counter.get({"instance_id_prefix": "c-n"})  # its own filter
        assert other.total == 1 and counter.scans == 2
        clock.now += 0.2
        again = await counter.get({"name_prefix": None})
        assert again.total == 4 and counter.scans == 3
        assert again.taken_at > first.taken_at

    asyncio.run(run())
    assert COUNT_TTL_SECONDS == 10


def test_cached_filters_are_bounded() -> None:
    provider = _hub(2)
    counter = StatusCounter(ot.AsyncClient(provider), size=3)

    async def run() -> None:
        for n in range(10):
            await counter.get({"instance_id_prefix": f"c-00{n}"})
        assert len(counter) == 3
        await counter.get({"instance_id_prefix": "c-009"})  # recent: cached
        assert counter.scans == 10
        await counter.get({"instance_id_prefix": "c-000"})  # dropped: counted again
        assert counter.scans == 11

    asyncio.run(run())


def test_concurrent_requests_share_one_scan() -> None:
    provider = _hub(40)
    counter = StatusCounter(ot.AsyncClient(provider))

    async def run() -> None:
        results = await asyncio.gather(*(counter.get({}) for _ in range(20)))
        assert {r.total for r in results} == {40}
        assert counter.scans == 1

    asyncio.run(run())


def test_the_list_page_shows_counts_with_their_time() -> None:
    provider = _hub(4, prefix="page")
    with ServerThread(create_app(provider)) as server:
        page = httpx.get(f"{server.url}/").text
    assert 'data-status="Pending">Pending <b>4</b>' in page
    assert 'id="counts-taken"' in page and "as of " in page
