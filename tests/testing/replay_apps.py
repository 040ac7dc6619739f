"""Source of the apps the replayer tests deploy: v1, and v2 variants written as modules."""

from __future__ import annotations

V1 = """
from datetime import timedelta
import ostinato as ot

app = ot.App()

@app.activity
def reserve(ctx, item):
    return f"reserved {item}"

@app.activity
def charge(ctx, item):
    return f"charged {item}"

@app.orchestrator
def checkout(ctx, item):
    reserved = yield ctx.call_activity(reserve, input=item)
    yield ctx.wait_for_external_event("confirm")
    charged = yield ctx.call_activity(charge, input=item)
    return [reserved, charged]
"""

#: The same code, deployed again (with a harmless change: a log line).
UNCHANGED = V1.replace(
    "    reserved = yield", "    ctx.set_custom_status('working')\n    reserved = yield"
)

#: The first activity renamed: every recorded history diverges at its first task.
RENAMED = V1.replace("def reserve(ctx, item)", "def hold(ctx, item)").replace(
    "call_activity(reserve", "call_activity(hold"
)

#: A timer inserted before the charge: histories past the event diverge there.
TIMER_ADDED = V1.replace(
    "    charged = yield",
    "    yield ctx.create_timer(timedelta(seconds=1))\n    charged = yield",
)


def write_module(directory: object, name: str, source: str) -> str:
    """Write ``source`` as module ``name`` in ``directory``; returns ``name:app``."""
    from pathlib import Path

    Path(str(directory), f"{name}.py").write_text(source, encoding="utf-8")
    return f"{name}:app"
