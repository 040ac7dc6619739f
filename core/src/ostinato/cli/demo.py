"""The app ``ostinato demo`` runs: HelloCities (DESIGN §5.1), the same as examples/hello_cities.py.

``ostinato worker ostinato.cli.demo:app`` serves it too.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import ostinato as ot

app = ot.App()


@app.activity
def say_hello(ctx: ot.ActivityContext, city: str) -> str:
    """Greet one city."""
    return f"Hello {city}!"


@app.orchestrator
def hello_cities(ctx: ot.OrchestrationContext, _input: Any) -> Generator[Any, Any, list[str]]:
    """Three sequential activities; returns their results in order."""
    outputs: list[str] = []
    outputs.append((yield ctx.call_activity(say_hello, input="Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, input="Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", input="London")))
    return outputs
