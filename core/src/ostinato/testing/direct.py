"""Run one activity or one entity operation directly, without a worker or a store.

Input and output go through the data converter as they would in a worker, so a value that
would not survive serialization fails here too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ostinato.converter import DataConverter, default_converter
from ostinato.orchestration.app import App, name_of
from ostinato.orchestration.context import ActivityContext
from ostinato.orchestration.entities import EntityContext, EntityId


def run_activity(
    app: App,
    activity: Callable[..., Any] | str,
    input: Any = None,
    *,
    instance_id: str = "test-instance",
    converter: DataConverter | None = None,
) -> Any:
    """Run the registered ``activity`` once with ``input`` and return its output.

    The activity's exception propagates unchanged. ``async def`` activities run on a new
    event loop.
    """
    converter = converter or default_converter
    name = name_of(activity)
    registration = app.activities.get(name)
    if registration is None:
        raise LookupError(f"No activity named {name!r} is registered with this app")
    value = converter.loads(converter.dumps(input), registration.input_type)
    ctx = ActivityContext(instance_id, "test-execution", 0, name)
    output = registration.fn(ctx, value)
    if inspect.isawaitable(output):
        output = asyncio.run(_awaited(output))
    return converter.loads(converter.dumps(output), registration.output_type)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@dataclass(frozen=True)
class EntityOperationResult:
    """What one entity operation did: its result, the entity's state after it (``None``: no
    state), and the signals it sent to other entities as ``(entity id, operation, input)``."""

    result: Any
    state: Any
    signals: list[tuple[EntityId, str, Any]] = field(default_factory=list)


def run_entity_operation(
    app: App,
    entity_id: EntityId,
    operation: str,
    input: Any = None,
    *,
    state: Any = None,
    converter: DataConverter | None = None,
) -> EntityOperationResult:
    """Run ``operation`` on an entity whose current state is ``state`` (``None``: new).

    The operation's exception propagates unchanged (a worker would keep the old state).
    """
    converter = converter or default_converter
    registration = app.entities.get(entity_id.name)
    if registration is None:
        raise LookupError(f"No entity named {entity_id.name!r} is registered with this app")
    ctx = EntityContext(entity_id, operation, converter.dumps(state), converter)
    if state is None:
        ctx.delete_state()
    value = converter.loads(converter.dumps(input), registration.input_type)
    result = registration.fn(ctx, value)
    return EntityOperationResult(
        result=converter.loads(converter.dumps(result), registration.output_type),
        state=ctx.get_state(),
        signals=list(ctx._signals),
    )


__all__ = ["EntityOperationResult", "run_activity", "run_entity_operation"]
