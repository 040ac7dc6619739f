"""Azurite itself restarts mid-run (on-disk persistence): every instance still completes."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import ostinato as ot
import pytest
from azure_helpers import new_hub_name
from ostinato_azure import AzureStorageProvider
from start import Azurite

pytestmark = pytest.mark.slow

app = ot.App()


@app.activity
def slow_echo(ctx: ot.ActivityContext, value: str) -> str:
    time.sleep(0.02)
    return value


@app.orchestrator
def three_steps(ctx: ot.OrchestrationContext, value: str):  # type: ignore[no-untyped-def]
    a = yield ctx.call_activity(slow_echo, input=value + "a")
    b = yield ctx.call_activity(slow_echo, input=a + "b")
    yield ctx.create_timer(ctx.current_utc_datetime.replace(microsecond=0) + _SECOND)
    return (yield ctx.call_activity(slow_echo, input=b + "c"))


_SECOND = timedelta(seconds=1)


def test_instances_complete_across_an_azurite_restart(azurite: Azurite, tmp_path: Path) -> None:
    del azurite  # only for its skip-if-unavailable check; this test runs its own Azurite
    server = Azurite(tmp_path / "azurite")
    server.start()
    ports = server.ports
    assert ports is not None
    provider = AzureStorageProvider(server.connection_string, new_hub_name(), lease_duration=3.0)
    client = ot.Client(provider)
    try:
        with ot.Worker(app, provider, max_poll_interval=0.2, lock_timeout=timedelta(seconds=10)):
            ids = [client.schedule_new_orchestration(three_steps, input=str(n)) for n in range(20)]
            time.sleep(1.0)  # mid-run
            finished = [
                client.get_orchestration_state(iid).runtime_status.is_terminal  # type: ignore[union-attr]
                for iid in ids
            ]
            assert not all(finished), "the restart must happen mid-run"
            server.stop()
            time.sleep(1.0)
            server = Azurite(tmp_path / "azurite", ports=ports)
            server.start()
            for n, iid in enumerate(ids):
                state = client.wait_for_orchestration_completion(iid, timeout=90)
                assert state.runtime_status is ot.OrchestrationStatus.COMPLETED
                assert state.serialized_output == f'"{n}abc"'
    finally:
        provider.close()
        server.stop()
