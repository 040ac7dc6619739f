"""Scenario 1, HelloCities: three sequential activities (function chaining).

Run it with a worker and the CLI (two terminals)::

    ostinato worker examples.hello_cities:app
    ostinato start hello_cities --wait
    ostinato history <instance id>

or in one process: ``python -m examples.hello_cities``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import ostinato as ot

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _input: Any) -> Generator[Any, Any, list[str]]:
    outputs: list[str] = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs


def main(provider: ot.StorageProvider | None = None, *, timeout: float = 30) -> list[str]:
    """Run HelloCities end to end in this process; returns its output."""
    provider = provider or ot.provider_from_config()
    client = ot.Client(provider)
    with ot.Worker(app, provider):
        instance_id = client.schedule_new_orchestration(hello_cities)
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    output: list[str] = ot.raise_if_failed(state).output
    return output


if __name__ == "__main__":
    print(main())
