"""API keys, base paths, the OpenAPI schema, and mounting the API in a user's own app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ostinato as ot
import pytest
from http_api_support import ServerThread, poll_until_done
from http_test_app import app as test_app
from openapi_spec_validator import validate
from ostinato.http import create_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def provider() -> Iterator[ot.InMemoryProvider]:
    provider = ot.InMemoryProvider()
    with ot.Worker(test_app, provider, max_poll_interval=0.05):
        yield provider


@pytest.fixture(scope="module")
def secured(provider: ot.InMemoryProvider) -> Iterator[str]:
    """An API that needs ``KEY``, under ``/api/durable``; yields its base URL."""
    asgi = create_app(ot.AsyncClient(provider), api_key=KEY, base_path="api/durable/")
    with ServerThread(asgi) as server:
        yield f"{server.url}/api/durable"


@pytest.fixture(scope="module")
def mounted(provider: ot.InMemoryProvider) -> Iterator[str]:
    """The API mounted at ``/durable`` in a Starlette app with a route of its own."""

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("my app")

    outer = Starlette(
        routes=[
            Route("/", home),
            Mount("/durable", app=create_app(ot.Client(provider), app=test_app)),
        ]
    )
    with ServerThread(outer) as server:
        yield server.url


# -- API keys ----------------------------------------------------------------------------------
def test_requests_without_the_key_are_401(secured: str) -> None:
    with httpx.Client(base_url=secured) as http:
        for response in (
            http.post("/orchestrators/greet", json="x"),
            http.get("/instances"),
            http.get("/instances/anything"),
            http.get("/openapi.json"),
            http.get("/no/such/route"),
        ):
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json() == {
                "error": "Missing API key: send it in the 'x-api-key' header or as "
                "'Authorization: Bearer <key>'"
            }


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "wrong"},
        {"authorization": "Bearer wrong"},
        {"x-api-key": KEY.upper()},
        {"authorization": f"Basic {KEY}"},
    ],
)
def test_a_wrong_key_is_401(secured: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=secured, headers=headers) as http:
        response = http.get("/instances")
    assert response.status_code == 401
    assert "API key" in response.json()["error"]


@pytest.mark.parametrize("headers", [{"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}])
def test_the_key_in_either_header_is_accepted(secured: str, headers: dict[str, str]) -> None:
    with httpx.Client(headers=headers, timeout=30) as http:
        response = http.post(f"{secured}/orchestrators/greet", json="Lima")
        assert response.status_code == 202
        urls = response.json()
        assert urls["statusQueryGetUri"].startswith(f"{secured}/instances/")
        assert response.headers["location"] == urls["statusQueryGetUri"]
        status = poll_until_done(http, urls["statusQueryGetUri"])
        assert status.json()["output"] == "Hello Lima!"
        assert http.get(f"{secured}/instances").status_code == 200
        assert http.get(f"{secured.rsplit('/api', 1)[0]}/instances").status_code == 404


# -- OpenAPI -----------------------------------------------------------------------------------
def test_openapi_schema_is_valid_and_lists_every_endpoint(mounted: str) -> None:
    schema = httpx.get(f"{mounted}/durable/openapi.json").json()
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["servers"] == [{"url": "/durable"}]
    expected = {
        "/orchestrators/{name}": {"post"},
        "/orchestrators/{name}/{instance_id}": {"post"},
        "/instances": {"get", "delete"},
        "/instances/{instance_id}": {"get", "delete"},
        "/instances/{instance_id}/raiseEvent/{event_name}": {"post"},
        "/instances/{instance_id}/terminate": {"post"},
        "/instances/{instance_id}/suspend": {"post"},
        "/instances/{instance_id}/resume": {"post"},
        "/entities": {"get"},
        "/entities/{name}": {"get"},
        "/entities/{name}/{key}": {"get", "post"},
        "/openapi.json": {"get"},
    }
    for path, methods in expected.items():
        assert set(schema["paths"][path]) >= methods, path
    assert "security" not in schema
    start = schema["paths"]["/orchestrators/{name}/{instance_id}"]["post"]
    assert {"202", "400", "409"} <= set(start["responses"])
    statuses = schema["components"]["schemas"]["RuntimeStatus"]["enum"]
    assert "ContinuedAsNew" in statuses and "Running" in statuses


def test_openapi_schema_under_a_base_path_declares_the_api_key(secured: str) -> None:
    schema = httpx.get(f"{secured}/openapi.json", headers={"x-api-key": KEY}).json()
    validate(schema)
    assert "/api/durable/instances/{instance_id}" in schema["paths"]
    assert schema["security"] == [{"apiKey": []}, {"bearer": []}]


# -- mounted in the user's own app ---------------------------------------------------------------
def test_mounted_api_answers_with_urls_under_its_mount(mounted: str) -> None:
    with httpx.Client(base_url=mounted, timeout=30) as http:
        assert http.get("/").text == "my app"
        response = http.post("/durable/orchestrators/hello_cities/mounted-1")
        assert response.status_code == 202
        urls = response.json()
        assert urls["statusQueryGetUri"] == f"{mounted}/durable/instances/mounted-1"
        assert response.headers["location"] == urls["statusQueryGetUri"]
        status = poll_until_done(http, urls["statusQueryGetUri"])
        assert status.json()["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        assert http.post("/durable/orchestrators/nope").status_code == 404
        assert http.get("/durable/elsewhere").json() == {
            "error": "Not found: GET /durable/elsewhere"
        }


# -- unexpected errors -------------------------------------------------------------------------
class ExplodingProvider(ot.InMemoryProvider):
    """Fails reading one instance, as a broken store would."""

    def get_instance(self, instance_id: str) -> Any:
        if instance_id == "explode":
            raise RuntimeError("the store is on fire")
        return super().get_instance(instance_id)


def test_unexpected_errors_are_500_json_without_details() -> None:
    with ServerThread(create_app(ExplodingProvider())) as server:
        response = httpx.get(f"{server.url}/instances/explode")
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error: RuntimeError"}
        assert httpx.get(f"{server.url}/instances/fine").status_code == 404


def test_create_app_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="needs an AsyncClient, Client or provider"):
        create_app("sqlite://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key must not be empty"):
        create_app(ot.InMemoryProvider(), api_key="")
    with pytest.raises(ValueError, match="retry_after"):
        create_app(ot.InMemoryProvider(), retry_after=-1)
