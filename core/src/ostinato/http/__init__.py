"""The HTTP management API (needs the extra: ``pip install 'ostinato[http]'``).

:func:`create_app` returns a Starlette (ASGI) app that starts, inspects, signals and purges
orchestration instances, following the Durable Functions HTTP API::

    POST   {base}/orchestrators/{name}[/{instance_id}]   start (202 + management URLs, or 409)
    GET    {base}/instances/{instance_id}                status (202 while active, 200 when done)
    POST   {base}/instances/{instance_id}/raiseEvent/{event_name}
    POST   {base}/instances/{instance_id}/terminate|suspend|resume
    DELETE {base}/instances/{instance_id}                purge one
    GET    {base}/instances                              list, with filters and paging
    DELETE {base}/instances                              purge by filters
    POST   {base}/entities/{name}/{key}?op=OPERATION     signal an entity
    GET    {base}/entities/{name}/{key}                  an entity's state
    GET    {base}/entities[/{name}]                      list entities
    GET    {base}/openapi.json                           the OpenAPI 3.1 schema

Serve it with ``ostinato serve module:app`` (API and worker in one process), with uvicorn, or
mount it in your own Starlette/FastAPI app. See docs/http-api.md.
"""

try:
    import starlette  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only without the extra
    raise ModuleNotFoundError(
        "ostinato.http needs Starlette: install it with pip install 'ostinato[http]'",
        name=exc.name,
    ) from exc

from ostinato.http.app import create_app
from ostinato.http.openapi import openapi_schema
from ostinato.http.security import ApiKey, Scope, keys_from_environment, load_keys_file
from ostinato.http.server import ServerLimits

__all__ = [
    "ApiKey",
    "Scope",
    "ServerLimits",
    "create_app",
    "keys_from_environment",
    "load_keys_file",
    "openapi_schema",
]
