"""The dead-letter routes of the HTTP API: list, show, retry and delete the records a provider
moved aside because they could not be decoded (see :class:`~ostinato.provider.DeadLetter`).

``GET /deadLetters[?instanceId=&limit=]``, ``GET /deadLetters/{id}``,
``POST /deadLetters/{id}/retry``, ``DELETE /deadLetters/{id}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ostinato.client import AsyncClient
from ostinato.http import wire
from ostinato.http.params import ApiError
from ostinato.http.security import Endpoint, Scope
from ostinato.provider import DeadLetter


class DeadLetterRoutes:
    """The handlers, sharing the API's client."""

    def __init__(self, client: AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    def table(self) -> list[tuple[str, Endpoint, str, str, Scope, bool]]:
        """The routes as the API's table rows: path, handler, method, name, key scope, and
        whether calls are audit-logged."""
        one = f"{self.base}/deadLetters/{{id}}"
        return [
            (f"{self.base}/deadLetters", self.list, "GET", "list_dead_letters", Scope.READ, False),
            (one, self.show, "GET", "dead_letter", Scope.READ, False),
            (f"{one}/retry", self.retry, "POST", "retry_dead_letter", Scope.MANAGE, True),
            (one, self.delete, "DELETE", "delete_dead_letter", Scope.MANAGE, True),
        ]

    async def list(self, request: Request) -> Response:
        query = request.query_params
        text = query.get("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise ApiError(400, f"'limit' must be a whole number from 1 to 1000, not {text!r}")
        letters = await self.client.list_dead_letters(
            instance_id=query.get("instanceId"), limit=int(text)
        )
        return JSONResponse({"deadLetters": [_json(letter) for letter in letters]})

    async def show(self, request: Request) -> Response:
        letter = await self.client.get_dead_letter(request.path_params["id"])
        if letter is None:
            raise _missing(request)
        return JSONResponse(_json(letter))

    async def retry(self, request: Request) -> Response:
        if not await self.client.retry_dead_letter(request.path_params["id"]):
            raise _missing(request)
        return JSONResponse({"id": request.path_params["id"], "retried": True})

    async def delete(self, request: Request) -> Response:
        if not await self.client.delete_dead_letter(request.path_params["id"]):
            raise _missing(request)
        return Response(status_code=204)


def _json(letter: DeadLetter) -> dict[str, Any]:
    """The wire form: camelCase keys and times with a ``Z``, like the rest of the API."""
    return {
        "id": letter.id,
        "kind": letter.kind.value,
        "instanceId": letter.instance_id,
        "reason": letter.reason,
        "createdAt": wire.iso(letter.created_at),
        "body": letter.body,
    }


def _missing(request: Request) -> ApiError:
    return ApiError(404, f"No dead letter with ID {request.path_params['id']!r} was found.")


def dead_letter_paths(base: str) -> dict[str, Any]:
    """The OpenAPI paths of these routes."""
    letter = {
        "description": "A dead letter.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    missing = {"description": "No dead letter with this id."}
    param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    one = f"{base}/deadLetters/{{id}}"
    return {
        f"{base}/deadLetters": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": "List dead letters (records moved aside as undecodable), oldest first",
                "tags": ["dead letters"],
                "parameters": [
                    {"name": "instanceId", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": letter},
            }
        },
        one: {
            "get": {
                "operationId": "getDeadLetter",
                "summary": "One dead letter, with the record as it was stored",
                "tags": ["dead letters"],
                "parameters": [param],
                "responses": {"200": letter, "404": missing},
            },
            "delete": {
                "operationId": "deleteDeadLetter",
                "summary": "Delete a dead letter for good",
                "tags": ["dead letters"],
                "parameters": [param],
                "responses": {"204": {"description": "Deleted."}, "404": missing},
            },
        },
        f"{one}/retry": {
            "post": {
                "operationId": "retryDeadLetter",
                "summary": "Put a dead letter back where it came from",
                "tags": ["dead letters"],
                "parameters": [param],
                "responses": {"200": letter, "404": missing},
            }
        },
    }


__all__ = ["DeadLetterRoutes", "dead_letter_paths"]
