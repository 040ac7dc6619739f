"""The OpenAPI 3.1 schema of the HTTP management API (``GET {base}/openapi.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ostinato.http import batch
from ostinato.http.dead_letters import dead_letter_paths
from ostinato.http.params import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ostinato.http.wire import STATUS_NAMES

OPENAPI_VERSION = "3.1.0"

_ANY: dict[str, Any] = {"description": "Any JSON value."}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_INSTANCE_ID = _path_param(
    "instance_id",
    "The instance id: 1-100 characters, not starting with '@', none of / \\ # ? and no "
    "control characters.",
)
_REASON = _query("reason", "Why (recorded in the history).", {"type": "string"})
_RECURSIVE = _query(
    "recursive", "Also act on sub-orchestrations.", {"type": "boolean", "default": True}
)
_STATUS_FILTER = {
    "name": "runtimeStatus",
    "in": "query",
    "required": False,
    "description": "Runtime statuses (repeat the parameter or separate with commas).",
    "schema": {"type": "array", "items": _ref("RuntimeStatus")},
    "style": "form",
    "explode": True,
}
_CREATED_FROM = _query(
    "createdFrom",
    "Created at or after (ISO 8601; no offset means UTC). Alias: createdTimeFrom.",
    {"type": "string", "format": "date-time"},
)
_CREATED_TO = _query(
    "createdTo",
    "Created at or before (ISO 8601; no offset means UTC). Alias: createdTimeTo.",
    {"type": "string", "format": "date-time"},
)
_BODY_ANY = {
    "required": False,
    "description": "Any JSON value (an empty body means null).",
    "content": {"application/json": {"schema": _ANY}},
}
_ENTITY_NAME = _path_param("name", "The entity's name (case-insensitive).")
_ENTITY_KEY = _path_param("key", "The entity's key.")
_ENTITY_PAGING = [
    _query(
        "top",
        "Page size.",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
    ),
    _query("continuationToken", "From the previous page.", {"type": "string"}),
]
_ACCEPTED_HEADERS = {
    "Location": {"description": "The instance's status URL.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before polling.",
        "schema": {"type": "integer"},
    },
}
_COMMON_ERRORS = {
    "400": _error(
        "Invalid instance id or parameter, a Host that is not served, or a URL whose "
        "percent-escapes are not UTF-8 or encode '/'."
    ),
    "401": _error("Missing or wrong API key (when the API requires one)."),
    "403": _error(
        "The API key lacks the scope this operation needs (see x-ostinato-scope), or a "
        "browser request from another origin."
    ),
}
_BODY_ERRORS = {
    "413": _error("The request body is larger than the server's limit (16 MiB by default)."),
    "415": _error("The request body is not declared as application/json."),
}


def _signal(summary: str, description: str, *, body: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "tags": ["instances"],
        "parameters": [_INSTANCE_ID] + ([] if body else [_REASON]),
        "responses": {
            "202": {"description": "Accepted: delivered to the instance."},
            **_COMMON_ERRORS,
            "404": _error("No such instance."),
            "410": _error("The instance has finished (Completed, Failed or Terminated)."),
        },
    }
    return operation


def _components() -> dict[str, Any]:
    nullable_string = {"type": ["string", "null"]}
    return {
        "schemas": {
            "RuntimeStatus": {"type": "string", "enum": list(STATUS_NAMES.values())},
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "FailureDetails": {
                "type": "object",
                "required": ["errorType", "errorMessage"],
                "properties": {
                    "errorType": {"type": "string"},
                    "errorMessage": {"type": "string"},
                    "stackTrace": {"type": "string"},
                    "innerFailure": _ref("FailureDetails"),
                },
            },
            "ManagementUrls": {
                "type": "object",
                "required": [
                    "id",
                    "statusQueryGetUri",
                    "sendEventPostUri",
                    "terminatePostUri",
                    "suspendPostUri",
                    "resumePostUri",
                    "rewindPostUri",
                    "restartPostUri",
                    "purgeHistoryDeleteUri",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "statusQueryGetUri": {"type": "string"},
                    "sendEventPostUri": {"type": "string"},
                    "terminatePostUri": {"type": "string"},
                    "suspendPostUri": {"type": "string"},
                    "resumePostUri": {"type": "string"},
                    "rewindPostUri": {"type": "string"},
                    "restartPostUri": {"type": "string"},
                    "purgeHistoryDeleteUri": {"type": "string"},
                },
            },
            "HistoryEvent": {
                "type": "object",
                "required": ["eventType", "timestamp"],
                "properties": {
                    "eventType": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                },
                "additionalProperties": True,
            },
            "InstanceStatus": {
                "type": "object",
                "required": [
                    "name",
                    "instanceId",
                    "runtimeStatus",
                    "createdTime",
                    "lastUpdatedTime",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "instanceId": {"type": "string"},
                    "runtimeStatus": _ref("RuntimeStatus"),
                    "createdTime": {"type": "string", "format": "date-time"},
                    "lastUpdatedTime": {"type": "string", "format": "date-time"},
                    "input": _ANY,
                    "output": _ANY,
                    "customStatus": _ANY,
                    "failureDetails": _ref("FailureDetails"),
                    "parentInstanceId": {"type": "string"},
                    "historyEvents": {"type": "array", "items": _ref("HistoryEvent")},
                },
            },
            "InstanceList": {
                "type": "object",
                "required": ["instances", "continuationToken"],
                "properties": {
                    "instances": {"type": "array", "items": _ref("InstanceStatus")},
                    "continuationToken": nullable_string,
                },
            },
            "Entity": {
                "type": "object",
                "required": ["entityId", "state", "lastModifiedTime", "backlogQueueSize"],
                "properties": {
                    "entityId": {
                        "type": "object",
                        "required": ["name", "key"],
                        "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                    },
                    "state": _ANY,
                    "lastModifiedTime": {"type": "string", "format": "date-time"},
                    "lockedBy": nullable_string,
                    "backlogQueueSize": {"type": "integer", "minimum": 0},
                },
            },
            "EntityList": {
                "type": "object",
                "required": ["entities", "continuationToken"],
                "properties": {
                    "entities": {"type": "array", "items": _ref("Entity")},
                    "continuationToken": nullable_string,
                },
            },
            "PurgeResult": {
                "type": "object",
                "required": ["instancesDeleted"],
                "properties": {"instancesDeleted": {"type": "integer", "minimum": 0}},
            },
        },
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
    }


def openapi_schema(
    base_path: str = "",
    *,
    server_url: str = "/",
    requires_api_key: bool = False,
    scopes: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """The schema, with every path under ``base_path`` and served from ``server_url``.

    ``scopes`` maps ``(path, method)`` to the key scope an operation needs (``read``,
    ``start``, ``manage``); each operation then names it in ``x-ostinato-scope``.
    """
    b = base_path
    instance = f"{b}/instances/{{instance_id}}"
    start_responses = {
        "202": {
            **_json(_ref("ManagementUrls"), "Started: the instance's management URLs."),
            "headers": _ACCEPTED_HEADERS,
        },
        **_COMMON_ERRORS,
        "404": _error("No orchestrator with that name is registered (when the API knows the app)."),
        "409": _error("An instance with this id is still active."),
        "413": _error("The input is larger than the provider stores."),
    }
    start = {
        "summary": "Start an orchestration",
        "tags": ["orchestrators"],
        "requestBody": _BODY_ANY,
        "responses": start_responses,
    }
    paths: dict[str, Any] = {
        f"{b}/orchestrators/{{name}}": {
            "post": {
                **start,
                "operationId": "startOrchestration",
                "description": "Start orchestrator `name` with the body as input, under a new "
                "random instance id.",
                "parameters": [_path_param("name", "The orchestrator's registered name.")],
            }
        },
        f"{b}/orchestrators/{{name}}/{{instance_id}}": {
            "post": {
                **start,
                "operationId": "startOrchestrationWithId",
                "description": "The singleton starter: start orchestrator `name` as "
                "`instance_id`. A finished (Completed, Failed, Terminated) instance with this "
                "id is replaced; an active one answers 409.",
                "parameters": [
                    _path_param("name", "The orchestrator's registered name."),
                    _INSTANCE_ID,
                ],
            }
        },
        f"{b}/instances": {
            "get": {
                "operationId": "listInstances",
                "summary": "List instances",
                "description": "One page of instances ordered by id. Pass the returned "
                "continuation token (x-ms-continuation-token header or continuationToken "
                "parameter) for the next page.",
                "tags": ["instances"],
                "parameters": [
                    _STATUS_FILTER,
                    _CREATED_FROM,
                    _CREATED_TO,
                    _query("instanceIdPrefix", "Instance ids starting so.", {"type": "string"}),
                    _query("namePrefix", "Orchestrator names starting so.", {"type": "string"}),
                    _query(
                        "top",
                        "Page size.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE_SIZE,
                            "default": DEFAULT_PAGE_SIZE,
                        },
                    ),
                    _query("continuationToken", "From the previous page.", {"type": "string"}),
                    {
                        "name": "x-ms-continuation-token",
                        "in": "header",
                        "required": False,
                        "description": "From the previous page (instead of the parameter).",
                        "schema": {"type": "string"},
                    },
                    _query("showInput", "Include inputs.", {"type": "boolean", "default": True}),
                ],
                "responses": {
                    "200": {
                        **_json(_ref("InstanceList"), "A page of instances."),
                        "headers": {
                            "x-ms-continuation-token": {
                                "description": "The next page's token (absent on the last).",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    **_COMMON_ERRORS,
                },
            },
            "delete": {
                "operationId": "purgeInstances",
                "summary": "Purge finished instances by filter",
                "description": "Deletes every Completed, Failed or Terminated instance "
                "matching the filters; at least one filter is required.",
                "tags": ["instances"],
                "parameters": [_STATUS_FILTER, _CREATED_FROM, _CREATED_TO],
                "responses": {
                    "200": _json(_ref("PurgeResult"), "How many instances were deleted."),
                    **_COMMON_ERRORS,
                },
            },
        },
        instance: {
            "get": {
                "operationId": "getInstanceStatus",
                "summary": "Get an instance's status",
                "tags": ["instances"],
                "parameters": [
                    _INSTANCE_ID,
                    _query("showInput", "Include the input.", {"type": "boolean", "default": True}),
                    _query(
                        "showHistory", "Include the history.", {"type": "boolean", "default": False}
                    ),
                    _query(
                        "showHistoryOutput",
                        "Include payloads in the history.",
                        {"type": "boolean", "default": False},
                    ),
                ],
                "responses": {
                    "200": _json(
                        _ref("InstanceStatus"),
                        "Finished: Completed (with its "
                        "output), Failed (with failureDetails) or Terminated.",
                    ),
                    "202": {
                        **_json(_ref("InstanceStatus"), "Still active: poll again."),
                        "headers": _ACCEPTED_HEADERS,
                    },
                    **_COMMON_ERRORS,
                    "404": _error("No such instance."),
                },
            },
            "delete": {
                "operationId": "purgeInstance",
                "summary": "Purge a finished instance and its history",
                "tags": ["instances"],
                "parameters": [_INSTANCE_ID, _RECURSIVE],
                "responses": {
                    "200": _json(_ref("PurgeResult"), "Deleted."),
                    **_COMMON_ERRORS,
                    "404": _error("No such instance."),
                    "409": _error("The instance is still active."),
                },
            },
        },
        f"{instance}/raiseEvent/{{event_name}}": {
            "post": {
                **_signal(
                    "Raise an event", "Send event `event_name` with the body as data.", body=True
                ),
                "operationId": "raiseEvent",
                "parameters": [_INSTANCE_ID, _path_param("event_name", "The event's name.")],
                "requestBody": _BODY_ANY,
            }
        },
        f"{instance}/terminate": {
            "post": {
                **_signal("Terminate an instance", "The reason becomes the instance's output."),
                "operationId": "terminateInstance",
                "parameters": [_INSTANCE_ID, _REASON, _RECURSIVE],
            }
        },
        f"{instance}/suspend": {
            "post": {
                **_signal("Suspend an instance", "Events are held until it is resumed."),
                "operationId": "suspendInstance",
            }
        },
        f"{instance}/resume": {
            "post": {
                **_signal("Resume a suspended instance", "Held events are delivered."),
                "operationId": "resumeInstance",
            }
        },
        f"{instance}/restart": {
            "post": {
                "operationId": "restartInstance",
                "summary": "Run an instance's orchestration again with its original input",
                "description": "Under a new random id (the default), or with "
                "restartWithNewInstanceId=false in place of the finished instance. Answers "
                "with the new instance's management URLs.",
                "tags": ["instances"],
                "parameters": [
                    _INSTANCE_ID,
                    _query(
                        "restartWithNewInstanceId",
                        "Start it under a new id (else replace the finished instance).",
                        {"type": "boolean", "default": True},
                    ),
                ],
                "responses": {
                    "202": {
                        **_json(_ref("ManagementUrls"), "Started: the new instance's URLs."),
                        "headers": _ACCEPTED_HEADERS,
                    },
                    **_COMMON_ERRORS,
                    "404": _error("No such instance."),
                    "409": _error("Restarting in place an instance that is still active."),
                },
            }
        },
        f"{instance}/rewind": {
            "post": {
                "operationId": "rewindInstance",
                "summary": "Run a failed instance again from its last step that did not fail",
                "tags": ["instances"],
                "parameters": [_INSTANCE_ID, _REASON],
                "responses": {
                    "202": {"description": "Accepted: the instance runs again."},
                    **_COMMON_ERRORS,
                    "404": _error("No such instance."),
                    "409": _error("The instance is not Failed."),
                },
            }
        },
        f"{b}/entities": {
            "get": {
                "operationId": "listEntities",
                "summary": "List entities",
                "tags": ["entities"],
                "parameters": _ENTITY_PAGING,
                "responses": {
                    "200": _json(_ref("EntityList"), "A page of entities."),
                    **_COMMON_ERRORS,
                },
            }
        },
        f"{b}/entities/{{name}}": {
            "get": {
                "operationId": "listEntitiesByName",
                "summary": "List the entities of one name",
                "tags": ["entities"],
                "parameters": [
                    _ENTITY_NAME,
                    _query("keyPrefix", "Keys starting so.", {"type": "string"}),
                    *_ENTITY_PAGING,
                ],
                "responses": {
                    "200": _json(_ref("EntityList"), "A page of entities."),
                    **_COMMON_ERRORS,
                },
            }
        },
        f"{b}/entities/{{name}}/{{key}}": {
            "get": {
                "operationId": "getEntity",
                "summary": "Get an entity's state",
                "tags": ["entities"],
                "parameters": [_ENTITY_NAME, _ENTITY_KEY],
                "responses": {
                    "200": _json(_ref("Entity"), "The entity."),
                    **_COMMON_ERRORS,
                    "404": _error("No such entity."),
                },
            },
            "post": {
                "operationId": "signalEntity",
                "summary": "Signal an entity operation",
                "description": "One-way: the operation is queued and run in order.",
                "tags": ["entities"],
                "parameters": [
                    _ENTITY_NAME,
                    _ENTITY_KEY,
                    {**_query("op", "The operation.", {"type": "string"}), "required": True},
                    _query(
                        "scheduledTime",
                        "Deliver at this time (ISO 8601).",
                        {"type": "string", "format": "date-time"},
                    ),
                ],
                "requestBody": _BODY_ANY,
                "responses": {
                    "202": {"description": "Accepted: the signal is queued."},
                    **_COMMON_ERRORS,
                    "404": _error(
                        "No entity with that name is registered (when the API knows the app)."
                    ),
                },
            },
        },
        f"{b}/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This schema",
                "tags": ["meta"],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
    }
    paths |= batch.openapi_paths(b)
    paths |= dead_letter_paths(b)
    schema: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ostinato management API",
            "version": "1",
            "description": "Start, inspect, signal and purge durable orchestration instances.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": _components(),
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                operation["responses"] = {**_BODY_ERRORS, **operation["responses"]}
            scope = (scopes or {}).get((path, method))
            if scope is not None:
                operation["x-ostinato-scope"] = scope
    if requires_api_key:
        schema["security"] = [{"apiKey": []}, {"bearer": []}]
    return schema


__all__ = ["OPENAPI_VERSION", "openapi_schema"]
