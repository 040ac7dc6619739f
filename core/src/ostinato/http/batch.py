"""``POST {base}/orchestrators/{name}:batch``: start many instances in one request.

The body is a JSON array of items, each ``{"input": ..., "instanceId": "..."}`` (both
optional). The answer is ``207 Multi-Status`` with one result per item, in order: ``status``
``202`` (created, with the management URLs), ``409`` (an active instance has that id),
``400`` (the item is invalid: its ``error`` says why) or ``503`` (the store failed to write it;
retry it). One bad item never fails the others; the instances are created in one provider call
(:meth:`ostinato.Client.schedule_new_orchestrations`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ostinato.client import AsyncClient, NewOrchestration, StartOutcome, StartResult
from ostinato.http import params, wire
from ostinato.http.params import ApiError
from ostinato.orchestration.app import App

#: The most items one batch request may hold.
MAX_BATCH_ITEMS = 1000

_ITEM_KEYS = frozenset({"input", "instanceId"})
_STATUS = {
    StartOutcome.CREATED: 202,
    StartOutcome.ALREADY_EXISTS: 409,
    StartOutcome.INVALID: 400,
    StartOutcome.FAILED: 503,
}


class _Invalid:
    """An item rejected before it reaches the client, with the reason."""

    def __init__(self, message: str, instance_id: Any = None) -> None:
        self.message = message
        self.instance_id = instance_id if isinstance(instance_id, str) else None


def _item(name: str, value: Any) -> NewOrchestration | _Invalid:
    if not isinstance(value, dict):
        return _Invalid(f"An item must be a JSON object, not {type(value).__name__}")
    unknown = sorted(set(value) - _ITEM_KEYS)
    if unknown:
        return _Invalid(
            f"Unknown keys {unknown}; an item has 'input' and 'instanceId'",
            value.get("instanceId"),
        )
    instance_id = value.get("instanceId")
    if instance_id is not None and not isinstance(instance_id, str):
        return _Invalid("'instanceId' must be a string")
    return NewOrchestration(name, input=value.get("input"), instance_id=instance_id)


def _result_json(
    index: int, result: StartResult | _Invalid, instance_url: Callable[[str], str]
) -> dict[str, Any]:
    if isinstance(result, _Invalid):
        return {
            "index": index,
            "instanceId": result.instance_id,
            "status": 400,
            "outcome": StartOutcome.INVALID.value,
            "error": result.message,
        }
    data: dict[str, Any] = {
        "index": index,
        "instanceId": result.instance_id,
        "status": _STATUS[result.outcome],
        "outcome": result.outcome.value,
    }
    if result.error is not None:
        data["error"] = str(result.error) or type(result.error).__name__
    if result.created and result.instance_id is not None:
        data |= wire.management_urls(instance_url(result.instance_id), result.instance_id)
    return data


async def start_batch(
    request: Request,
    client: AsyncClient,
    app: App | None,
    instance_url: Callable[[str], str],
) -> Response:
    """The endpoint: parse the items, start the valid ones together, answer per item."""
    name = request.path_params["name"]
    if app is not None and name not in app.orchestrators:
        raise ApiError(404, f"No orchestrator named '{name}' is registered")
    body = await params.json_body(request)
    if not isinstance(body, list):
        raise ApiError(400, "The body of a batch start must be a JSON array of items")
    if len(body) > MAX_BATCH_ITEMS:
        raise ApiError(413, f"A batch holds at most {MAX_BATCH_ITEMS} items, got {len(body)}")
    items = [_item(name, value) for value in body]
    valid = [item for item in items if isinstance(item, NewOrchestration)]
    started = iter(await client.schedule_new_orchestrations(valid))
    results = [item if isinstance(item, _Invalid) else next(started) for item in items]
    return JSONResponse(
        {"results": [_result_json(i, r, instance_url) for i, r in enumerate(results)]},
        status_code=207,
    )


def openapi_paths(base: str) -> dict[str, Any]:
    """The endpoint's OpenAPI path item."""
    error = {"$ref": "#/components/schemas/Error"}
    result = {
        "type": "object",
        "required": ["index", "instanceId", "status", "outcome"],
        "properties": {
            "index": {"type": "integer"},
            "instanceId": {"type": ["string", "null"]},
            "status": {"type": "integer", "enum": sorted(set(_STATUS.values()))},
            "outcome": {"type": "string", "enum": [o.value for o in StartOutcome]},
            "error": {"type": "string"},
        },
        "additionalProperties": {"type": "string"},
    }
    item = {
        "type": "object",
        "properties": {"input": {}, "instanceId": {"type": "string"}},
        "additionalProperties": False,
    }

    def answer(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": error}}}

    return {
        f"{base}/orchestrators/{{name}}:batch": {
            "post": {
                "summary": "Start many orchestrations",
                "operationId": "startOrchestrations",
                "tags": ["orchestrators"],
                "description": "Start orchestrator `name` once per item of the body, in one "
                f"call to the store (at most {MAX_BATCH_ITEMS} items). Each item has its "
                "own result: 202 created (with its management URLs), 409 an active instance "
                "has the id, 400 invalid, 503 not written (retry it).",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "The orchestrator's registered name.",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "array", "items": item}}},
                },
                "responses": {
                    "207": {
                        "description": "One result per item, in order.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["results"],
                                    "properties": {"results": {"type": "array", "items": result}},
                                }
                            }
                        },
                    },
                    "400": answer("The body is not a JSON array."),
                    "404": answer("No orchestrator with that name is registered."),
                    "413": answer(f"More than {MAX_BATCH_ITEMS} items."),
                },
            }
        }
    }
