"""Wrong keys are limited per client address, in bounded memory: ten in a row, then one more
every six seconds; meanwhile the address gets 429 (with Retry-After) for any key it sends,
to the dashboard's sign-in or in a header. Other addresses are not affected."""

from __future__ import annotations

import ostinato as ot
import pytest
from ostinato.http import ApiKey, create_app
from ostinato.http.ratelimit import (
    BURST,
    MAX_ADDRESSES,
    REFILL_SECONDS,
    FailedAttempts,
    client_key,
)
from starlette.testclient import TestClient

KEY = "rate-key-0123456789"


class Clock:
    """A clock the test moves by hand (the limiter's only input besides the calls)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(address: str, provider: ot.StorageProvider) -> TestClient:
    app = create_app(provider, keys=[ApiKey("ops", KEY)], allowed_hosts=["testserver"])
    return TestClient(app, client=(address, 40000))


def test_sign_in_is_limited_per_address() -> None:
    provider = ot.InMemoryProvider()
    app = create_app(provider, keys=[ApiKey("ops", KEY)], allowed_hosts=["testserver"])
    attacker = TestClient(app, client=("203.0.113.9", 40000))
    neighbour = TestClient(app, client=("203.0.113.10", 40000))
    for n in range(BURST):
        wrong = attacker.post("/ui/session", json={"key": f"guess-{n}"})
        assert wrong.status_code == 401, n
    refused = attacker.post("/ui/session", json={"key": KEY})  # even the right key
    assert refused.status_code == 429
    wait = refused.headers["retry-after"]
    assert 1 <= int(wait) <= 6  # one more try in at most six seconds
    assert refused.json()["error"] == (
        f"Too many wrong API keys from 203.0.113.9; try again in {wait} s"
    )
    assert "set-cookie" not in refused.headers
    # the same address is refused in a header too; another address signs in
    assert attacker.get("/instances", headers={"x-api-key": KEY}).status_code == 429
    assert neighbour.post("/ui/session", json={"key": KEY}).status_code == 204


def test_wrong_header_keys_count_too_and_the_bucket_refills() -> None:
    clock = Clock()
    attempts = FailedAttempts(burst=3, refill_seconds=5, clock=clock)
    for _ in range(3):
        assert attempts.retry_after("198.51.100.7") is None
        attempts.failed("198.51.100.7")
    assert attempts.retry_after("198.51.100.7") == 5
    clock.now += 4
    assert attempts.retry_after("198.51.100.7") == 1
    clock.now += 1
    assert attempts.retry_after("198.51.100.7") is None  # one more try now
    attempts.failed("198.51.100.7")
    assert attempts.retry_after("198.51.100.7") == 5
    clock.now += 15
    assert attempts.retry_after("198.51.100.7") is None
    for _ in range(3):  # full again: three tries
        attempts.failed("198.51.100.7")
    assert attempts.retry_after("198.51.100.7") == 5

    provider = ot.InMemoryProvider()
    http = _client("192.0.2.1", provider)
    answers = [http.get("/instances", headers={"x-api-key": "nope"}).status_code for _ in range(11)]
    assert answers == [401] * BURST + [429]
    bearer = http.get("/instances", headers={"authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 429


def test_memory_is_bounded_and_ipv6_counts_per_prefix() -> None:
    attempts = FailedAttempts(burst=1, max_addresses=100)
    for n in range(10_000):
        attempts.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(attempts) == 100
    assert attempts.retry_after("10.0.39.15") is not None  # the most recent are kept
    assert attempts.retry_after("10.0.0.0") is None  # the oldest were forgotten

    # one host owns its /64: rotating addresses inside it does not help
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.5") == "192.0.2.5"
    attempts.failed("2001:db8:1:2:aaaa::1")
    assert attempts.retry_after("2001:db8:1:2:ffff::2") is not None


def test_a_right_key_before_the_limit_is_not_counted() -> None:
    provider = ot.InMemoryProvider()
    http = _client("192.0.2.2", provider)
    for _ in range(3 * BURST):
        assert http.get("/instances", headers={"x-api-key": KEY}).status_code == 200
    assert http.post("/ui/session", json={"key": KEY}).status_code == 204


def test_the_documented_settings() -> None:  # docs/http-api.md and docs/dashboard.md
    assert (BURST, REFILL_SECONDS, MAX_ADDRESSES) == (10, 6.0, 10_000)


@pytest.mark.parametrize("burst, refill", [(0, 1.0), (1, 0.0)])
def test_bad_settings_are_refused(burst: int, refill: float) -> None:
    with pytest.raises(ValueError):
        FailedAttempts(burst=burst, refill_seconds=refill)
