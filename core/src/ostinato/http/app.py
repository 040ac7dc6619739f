"""The HTTP management API as a Starlette application: :func:`create_app`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ostinato.client import AsyncClient, Client
from ostinato.errors import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    PayloadTooLargeError,
    SerializationError,
)
from ostinato.http import batch, limits, params, security, wire
from ostinato.http.dead_letters import DeadLetterRoutes
from ostinato.http.limits import DEFAULT_MAX_BODY_SIZE, RequestLimitMiddleware
from ostinato.http.openapi import openapi_schema
from ostinato.http.params import ApiError
from ostinato.http.ratelimit import FailedAttempts
from ostinato.http.security import (
    LOOPBACK_HOSTS,
    AccessPolicy,
    ApiKey,
    SecurityMiddleware,
)
from ostinato.http.security import (
    Scope as ApiScope,
)
from ostinato.ids import validate_instance_id
from ostinato.orchestration.app import App
from ostinato.orchestration.entities import EntityId, EntityMetadata
from ostinato.provider import StorageProvider
from ostinato.status import TERMINAL_STATUSES, OrchestrationState, OrchestrationStatus

CONTINUATION_HEADER = "x-ms-continuation-token"


def create_app(
    client: AsyncClient | Client | StorageProvider,
    *,
    api_key: str | None = None,
    keys: Sequence[ApiKey] = (),
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    allowed_origins: Sequence[str] = (),
    secret: bytes | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    base_path: str = "",
    app: App | None = None,
    retry_after: int = 10,
    dashboard: bool = True,
) -> Starlette:
    """The HTTP management API for the instances of ``client`` (or of a provider).

    :param client: an :class:`~ostinato.AsyncClient`, a :class:`~ostinato.Client` or a
        provider (a client is made for it). The caller keeps owning the provider.
    :param api_key: one key with every scope (the same as ``keys=[ApiKey("default", key)]``).
    :param keys: :class:`~ostinato.http.ApiKey` values with their scopes. With no key at all
        every caller may do everything: use that only on a loopback address.
    :param allowed_hosts: the ``Host`` names served (``*.example.com``; ``*`` for any);
        the default is the loopback names. Other hosts answer ``400`` (DNS rebinding).
    :param allowed_origins: browser origins, besides the API's own, that may call it.
    :param secret: signs continuation tokens and dashboard sessions; give every replica behind
        one load balancer the same (default: random per process).
    :param max_body_size: the largest request body in bytes (``413`` beyond), enforced while
        the body is received.
    :param base_path: a prefix for every route, e.g. ``"/runtime/webhooks/durabletask"``.
    :param app: when given, starting an orchestrator it doesn't register answers ``404``.
    :param retry_after: the ``Retry-After`` seconds sent with ``202`` answers.
    :param dashboard: serve the web dashboard at ``{base_path}/`` (see docs/dashboard.md),
        behind the same keys.

    The result is an ordinary ASGI app: serve it with uvicorn, or mount it in your own
    Starlette/FastAPI app (``Mount("/durable", create_app(client))``).
    """
    if isinstance(client, Client):
        client = AsyncClient(client.provider, converter=client.converter)
    elif isinstance(client, StorageProvider):
        client = AsyncClient(client)
    elif not isinstance(client, AsyncClient):
        raise TypeError(f"create_app needs an AsyncClient, Client or provider, not {client!r}")
    if retry_after < 0:
        raise ValueError("retry_after must not be negative")
    all_keys = list(keys)
    if api_key is not None:
        if not api_key.strip():
            raise ValueError("api_key must not be empty (use None for no authentication)")
        all_keys.append(ApiKey("default", api_key))
    access = security.policy(
        keys=all_keys, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins, secret=secret
    )
    base = normalize_base_path(base_path)
    api = _Api(client, base, app, retry_after, access)
    routes = api.routes()
    attempts = FailedAttempts()
    public: tuple[list[str], list[str]] = ([], [])
    if dashboard:
        from ostinato.http.dashboard import Dashboard

        ui = Dashboard(client, access, base, attempts)
        routes = [*routes, *ui.routes()]
        public = ui.public_paths()
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestLimitMiddleware, max_body_size=max_body_size),
            Middleware(
                SecurityMiddleware,
                policy=access,
                public_paths=public[0],
                public_prefixes=public[1],
                attempts=attempts,
            ),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: functools.partial(_http_error, max_body_size=max_body_size),
            **dict.fromkeys(_CLIENT_ERRORS, _client_error),
            Exception: _internal_error,
        },
    )


def normalize_base_path(base_path: str) -> str:
    """``"api/"`` -> ``"/api"``; ``""`` and ``"/"`` -> ``""``."""
    base = base_path.strip().strip("/")
    return f"/{base}" if base else ""


# -- errors ----------------------------------------------------------------------------------
def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status_code, exc.message, exc.headers)


#: Client errors that reach the edge, and their status codes.
_CLIENT_ERRORS: dict[type[Exception], int] = {
    InvalidInstanceIdError: 400,
    SerializationError: 400,
    InstanceNotFoundError: 404,
    InstanceAlreadyExistsError: 409,
    PayloadTooLargeError: 413,
}


async def _client_error(request: Request, exc: Exception) -> Response:
    for error_type, status_code in _CLIENT_ERRORS.items():
        if isinstance(exc, error_type):
            return _error(status_code, str(exc))
    raise exc


async def _http_error(request: Request, exc: Exception, *, max_body_size: int) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:  # from the streaming body limit
        return limits.too_large(max_body_size)
    if exc.status_code == 404:
        message = f"Not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return _error(exc.status_code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this answer, so the server logs its traceback.
    return _error(500, f"Internal server error: {type(exc).__name__}")


# -- the endpoints ---------------------------------------------------------------------------
Endpoint = Callable[[Request], Awaitable[Response]]


def _instance_id(request: Request) -> str:
    """The ``{instance_id}`` path parameter, checked against the instance-id rules."""
    try:
        return validate_instance_id(request.path_params["instance_id"])
    except InvalidInstanceIdError as exc:
        raise ApiError(400, str(exc)) from None


def _not_found(instance_id: str) -> ApiError:
    return ApiError(404, str(InstanceNotFoundError(instance_id)))


class _Api:
    """The endpoint handlers, sharing one client and the URL layout."""

    def __init__(
        self,
        client: AsyncClient,
        base: str,
        app: App | None,
        retry_after: int,
        access: AccessPolicy,
    ) -> None:
        self.client = client
        self.access = access
        self.scopes: dict[tuple[str, str], str] = {}
        self.base = base
        self.app = app
        self.retry_after = retry_after

    def routes(self) -> list[BaseRoute]:
        b = self.base
        instance = f"{b}/instances/{{instance_id}}"
        read, start, manage = ApiScope.READ, ApiScope.START, ApiScope.MANAGE
        # path, handler, method, route name, scope needed, audit-logged
        table: list[tuple[str, Endpoint, str, str, ApiScope, bool]] = [
            (f"{b}/orchestrators/{{name}}:batch", self.start_batch, "POST", "batch", start, False),
            (f"{b}/orchestrators/{{name}}", self.start, "POST", "start", start, False),
            (
                f"{b}/orchestrators/{{name}}/{{instance_id}}",
                self.start,
                "POST",
                "start_with_id",
                start,
                False,
            ),
            (f"{b}/instances", self.list_instances, "GET", "list_instances", read, False),
            (f"{b}/instances", self.purge_many, "DELETE", "purge_instances", manage, True),
            (instance, self.status, "GET", "instance_status", read, False),
            (instance, self.purge, "DELETE", "purge_instance", manage, True),
            (
                f"{instance}/raiseEvent/{{event_name}}",
                self.raise_event,
                "POST",
                "raise_event",
                start,
                False,
            ),
            (f"{instance}/terminate", self.terminate, "POST", "terminate", manage, True),
            (f"{instance}/suspend", self.suspend, "POST", "suspend", manage, True),
            (f"{instance}/resume", self.resume, "POST", "resume", manage, True),
            (f"{instance}/restart", self.restart, "POST", "restart", manage, True),
            (f"{instance}/rewind", self.rewind, "POST", "rewind", manage, True),
            (f"{b}/entities", self.list_entities, "GET", "list_entities", read, False),
            (
                f"{b}/entities/{{name}}",
                self.list_entities,
                "GET",
                "list_entities_by_name",
                read,
                False,
            ),
            (
                f"{b}/entities/{{name}}/{{key}}",
                self.signal_entity,
                "POST",
                "signal_entity",
                start,
                False,
            ),
            (f"{b}/entities/{{name}}/{{key}}", self.get_entity, "GET", "get_entity", read, False),
            (f"{b}/openapi.json", self.openapi, "GET", "openapi", read, False),
            *DeadLetterRoutes(self.client, b).table(),
        ]
        self.scopes = {
            (path, method.lower()): scope.value for path, _, method, _, scope, _ in table
        }
        return [
            Route(path, security.guarded(endpoint, scope, audited), methods=[method], name=name)
            for path, endpoint, method, name, scope, audited in table
        ]

    # -- URLs -----------------------------------------------------------------------------
    def instance_url(self, request: Request, instance_id: str) -> str:
        """The absolute status URL of an instance, wherever this app is mounted."""
        root = request.scope.get("root_path", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return f"{origin}{root}{self.base}/instances/{wire.quote_segment(instance_id)}"

    def _accepted(self, request: Request, body: Any, instance_id: str) -> Response:
        headers = {
            "Location": self.instance_url(request, instance_id),
            "Retry-After": str(self.retry_after),
        }
        return JSONResponse(body, status_code=202, headers=headers)

    # -- starting -------------------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        """Start an orchestration (the singleton starter when an instance id is given)."""
        name = request.path_params["name"]
        instance_id = _instance_id(request) if "instance_id" in request.path_params else None
        if self.app is not None and name not in self.app.orchestrators:
            raise ApiError(404, f"No orchestrator named '{name}' is registered")
        data = await params.json_body(request)
        try:
            instance_id = await self.client.schedule_new_orchestration(
                name, input=data, instance_id=instance_id
            )
        except InstanceAlreadyExistsError as exc:
            raise ApiError(409, str(exc)) from None
        urls = wire.management_urls(self.instance_url(request, instance_id), instance_id)
        return self._accepted(request, urls, instance_id)

    async def start_batch(self, request: Request) -> Response:
        """Start many orchestrations in one request (see :mod:`ostinato.http.batch`)."""
        return await batch.start_batch(
            request, self.client, self.app, functools.partial(self.instance_url, request)
        )

    # -- reading --------------------------------------------------------------------------
    async def _state(self, instance_id: str, fetch_payloads: bool = True) -> OrchestrationState:
        state = await self.client.get_orchestration_state(
            instance_id, fetch_payloads=fetch_payloads
        )
        if state is None:
            raise _not_found(instance_id)
        return state

    async def status(self, request: Request) -> Response:
        """An instance's status: 202 while it runs, 200 once it has finished."""
        instance_id = _instance_id(request)
        query = request.query_params
        show_input = params.boolean(query, "showInput", True)
        show_history = params.boolean(query, "showHistory", False)
        show_history_output = params.boolean(query, "showHistoryOutput", False)
        state = await self._state(instance_id)
        body = wire.state_json(state, show_input=show_input)
        if show_history:
            try:
                events = await self.client.get_orchestration_history(instance_id)
            except InstanceNotFoundError:
                raise _not_found(instance_id) from None
            body["historyEvents"] = [
                wire.history_event_json(e, show_output=show_history_output) for e in events
            ]
        if state.runtime_status.is_terminal:
            return JSONResponse(body)
        return self._accepted(request, body, instance_id)

    async def list_instances(self, request: Request) -> Response:
        """One page of instances matching the filters, and the next page's token."""
        query = request.query_params
        statuses = params.statuses(query.getlist("runtimeStatus"))
        created_from, created_to = params.time_range(query)
        show_input = params.boolean(query, "showInput", True)
        token = params.continuation_token(request, self.access.secret)
        page = await self.client.query_instances(
            runtime_status=statuses or None,
            name_prefix=params.text(query, "namePrefix"),
            instance_id_prefix=params.text(query, "instanceIdPrefix"),
            created_from=created_from,
            created_to=created_to,
            page_size=params.page_size(query),
            continuation_token=token,
        )
        items = [wire.state_json(s, show_input=show_input) for s in page.items]
        return _page_response("instances", items, page.continuation_token, self.access.secret)

    # -- signalling -----------------------------------------------------------------------
    async def _active(self, instance_id: str) -> None:
        """404 for an unknown instance, 410 Gone for a finished one."""
        state = await self._state(instance_id, fetch_payloads=False)
        if state.runtime_status.is_terminal:
            raise ApiError(
                410,
                f"Instance '{instance_id}' is {wire.status_name(state.runtime_status)}; "
                "it takes no more events or commands",
            )

    async def _signal(self, instance_id: str, send: Callable[[], Awaitable[None]]) -> Response:
        await self._active(instance_id)
        try:
            await send()
        except InstanceNotFoundError:
            raise _not_found(instance_id) from None
        return Response(status_code=202)

    async def raise_event(self, request: Request) -> Response:
        """Send an external event (body = its data) to an instance."""
        instance_id = _instance_id(request)
        event_name = request.path_params["event_name"]
        data = await params.json_body(request)
        return await self._signal(
            instance_id,
            lambda: self.client.raise_orchestration_event(instance_id, event_name, data=data),
        )

    async def terminate(self, request: Request) -> Response:
        """Terminate an instance; ``reason`` becomes its output."""
        instance_id = _instance_id(request)
        reason = params.text(request.query_params, "reason")
        recursive = params.boolean(request.query_params, "recursive", True)
        return await self._signal(
            instance_id,
            lambda: self.client.terminate_orchestration(
                instance_id, output=reason, recursive=recursive
            ),
        )

    async def suspend(self, request: Request) -> Response:
        """Suspend an instance."""
        instance_id = _instance_id(request)
        reason = params.text(request.query_params, "reason")
        return await self._signal(
            instance_id, lambda: self.client.suspend_orchestration(instance_id, reason=reason)
        )

    async def resume(self, request: Request) -> Response:
        """Resume a suspended instance."""
        instance_id = _instance_id(request)
        reason = params.text(request.query_params, "reason")
        return await self._signal(
            instance_id, lambda: self.client.resume_orchestration(instance_id, reason=reason)
        )

    # -- running again --------------------------------------------------------------------
    async def restart(self, request: Request) -> Response:
        """Start the instance's orchestration again with its original input: under a new id
        (the default), or with ``restartWithNewInstanceId=false`` in place of the finished
        instance. Answers ``202`` with the new instance's management URLs."""
        instance_id = _instance_id(request)
        new_id = params.boolean(request.query_params, "restartWithNewInstanceId", True)
        try:
            started = await self.client.restart_orchestration(
                instance_id, restart_with_new_instance_id=new_id
            )
        except InstanceAlreadyExistsError:
            state = await self._state(instance_id, fetch_payloads=False)
            raise ApiError(
                409,
                f"Instance '{instance_id}' is {wire.status_name(state.runtime_status)}; restart "
                "it under its own id once it has finished, or with a new id",
            ) from None
        urls = wire.management_urls(self.instance_url(request, started), started)
        return self._accepted(request, urls, started)

    async def rewind(self, request: Request) -> Response:
        """Run a failed instance again from its last step that did not fail."""
        instance_id = _instance_id(request)
        reason = params.text(request.query_params, "reason")
        state = await self._state(instance_id, fetch_payloads=False)
        if state.runtime_status is not OrchestrationStatus.FAILED:
            raise ApiError(
                409,
                f"Instance '{instance_id}' is {wire.status_name(state.runtime_status)}; only a "
                "Failed instance can be rewound",
            )
        try:
            await self.client.rewind_orchestration(instance_id, reason=reason)
        except InstanceNotFoundError:
            raise _not_found(instance_id) from None
        except ValueError as exc:  # it changed meanwhile
            raise ApiError(409, str(exc)) from None
        return Response(status_code=202)

    # -- purging --------------------------------------------------------------------------
    async def purge(self, request: Request) -> Response:
        """Delete a finished instance and its history."""
        instance_id = _instance_id(request)
        recursive = params.boolean(request.query_params, "recursive", True)
        state = await self._state(instance_id, fetch_payloads=False)
        if not state.runtime_status.is_terminal:
            raise ApiError(
                409,
                f"Instance '{instance_id}' is {wire.status_name(state.runtime_status)}; only "
                "Completed, Failed or Terminated instances can be purged (terminate it first)",
            )
        result = await self.client.purge_orchestration(instance_id, recursive=recursive)
        return JSONResponse({"instancesDeleted": result.deleted_instance_count})

    async def purge_many(self, request: Request) -> Response:
        """Purge every finished instance matching the filters (at least one is required)."""
        query = request.query_params
        statuses = params.statuses(query.getlist("runtimeStatus"))
        created_from, created_to = params.time_range(query)
        if not statuses and created_from is None and created_to is None:
            raise ApiError(
                400,
                "Give at least one filter: createdFrom, createdTo or runtimeStatus "
                "(runtimeStatus=Completed,Failed,Terminated purges every finished instance)",
            )
        active = statuses - TERMINAL_STATUSES
        if active:
            names = ", ".join(sorted(wire.status_name(s) for s in active))
            raise ApiError(
                400,
                f"Only Completed, Failed or Terminated instances can be purged, not {names}",
            )
        result = await self.client.purge_orchestrations_by(
            created_from, created_to, statuses or None
        )
        return JSONResponse({"instancesDeleted": result.deleted_instance_count})

    # -- entities -------------------------------------------------------------------------
    def _entity_id(self, request: Request) -> EntityId:
        name, key = request.path_params["name"], request.path_params["key"]
        try:
            return EntityId(name, key)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    async def signal_entity(self, request: Request) -> Response:
        """Signal operation ``op`` (body = its input) to an entity, one-way."""
        entity_id = self._entity_id(request)
        query = request.query_params
        operation = params.text(query, "op")
        if operation is None:
            raise ApiError(400, "Query parameter 'op' (the operation to signal) is required")
        if self.app is not None and entity_id.name not in self.app.entities:
            raise ApiError(404, f"No entity named '{entity_id.name}' is registered")
        scheduled_time = params.timestamp(query, "scheduledTime")
        data = await params.json_body(request)
        await self.client.signal_entity(entity_id, operation, data, scheduled_time=scheduled_time)
        return Response(status_code=202)

    async def get_entity(self, request: Request) -> Response:
        """An entity's state and metadata."""
        entity_id = self._entity_id(request)
        entity = await self.client.get_entity(entity_id)
        if entity is None:
            raise ApiError(404, f"No entity with ID '{entity_id.name}/{entity_id.key}' was found.")
        return JSONResponse(_entity_json(entity))

    async def list_entities(self, request: Request) -> Response:
        """One page of entities (of one name, by key prefix), ordered by id."""
        query = request.query_params
        name = request.path_params.get("name")
        if name is not None and (not name or "@" in name):
            raise ApiError(400, f"Entity name {name!r} must be non-empty and contain no '@'")
        key_prefix = params.text(query, "keyPrefix")
        if key_prefix is not None and name is None:
            raise ApiError(400, "'keyPrefix' needs an entity name: GET /entities/{name}?keyPrefix=")
        token = params.continuation_token(request, self.access.secret)
        page = await self.client.query_entities(
            name=name,
            key_prefix=key_prefix or "",
            page_size=params.page_size(query),
            continuation_token=token,
        )
        items = [_entity_json(e) for e in page.items]
        return _page_response("entities", items, page.continuation_token, self.access.secret)

    # -- the schema -----------------------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3 schema of this API."""
        root = request.scope.get("root_path", "")
        return JSONResponse(
            openapi_schema(
                self.base,
                server_url=root or "/",
                requires_api_key=self.access.requires_key,
                scopes=self.scopes,
            )
        )


def _page_response(
    key: str, items: list[dict[str, Any]], token: str | None, secret: bytes
) -> Response:
    """A page: ``{key: items, "continuationToken": ...}``, the token also in the header."""
    encoded = wire.encode_token(token, secret)
    headers = {CONTINUATION_HEADER: encoded} if encoded is not None else {}
    return JSONResponse({key: items, "continuationToken": encoded}, headers=headers)


def _entity_json(entity: EntityMetadata) -> dict[str, Any]:
    return {
        "entityId": {"name": entity.entity_id.name, "key": entity.entity_id.key},
        "state": wire.payload(entity.serialized_state),
        "lastModifiedTime": wire.iso(entity.last_modified_at),
        "lockedBy": entity.locked_by,
        "backlogQueueSize": entity.backlog,
    }


__all__ = ["CONTINUATION_HEADER", "create_app", "normalize_base_path"]
