"""A PostgreSQL server that cannot be reached fails fast and says why; no server is needed.

A malformed DSN is rejected when the provider is built; a refused connection fails at once and
a server that never answers after ``connect_timeout``, each naming host, port and the driver's
reason, never the password.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import ostinato as ot
import pytest
from ostinato.errors import ConfigurationError, ProviderError

postgres = pytest.importorskip("ostinato_postgres", reason="ostinato-postgres is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.mark.parametrize("dsn", [":::garbage", "host=db port"])
def test_a_malformed_dsn_is_rejected_at_once(dsn: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="'dsn' is not a connection string"):
        ot.provider_from_config(provider="postgres", dsn=dsn)
    assert time.monotonic() - started < 1


def test_a_refused_connection_fails_at_once_naming_host_port_and_reason() -> None:
    port = free_port()
    provider = postgres.PostgresProvider(f"postgresql://app:s3cret@127.0.0.1:{port}/orders")
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        ot.Client(provider).get_orchestration_state("any")
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert f"127.0.0.1:{port}/orders" in message and "Connection refused" in message
    assert "s3cret" not in message and "s3cret" not in repr(provider)


def test_a_server_that_never_answers_fails_after_connect_timeout(silent_server: int) -> None:
    provider = postgres.PostgresProvider(
        f"postgresql://app:s3cret@127.0.0.1:{silent_server}/orders", connect_timeout=2
    )
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"no answer within 2s \(connect_timeout\)") as caught:
        provider.setup()
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 10, elapsed
    assert f"127.0.0.1:{silent_server}" in str(caught.value)
