"""Entity endpoints over real HTTP: signal, get, list (on every provider)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from http_api_support import Api


def wait_state(api: Api, path: str, expected: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = api.http.get(path)
        if response.status_code == 200 and response.json()["state"] == expected:
            return response.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, response.text
        time.sleep(0.02)


def test_signal_and_get_an_entity(api: Api) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    path = f"/entities/counter/{key}"
    assert api.http.get(path).status_code == 404
    for amount in (5, 7):
        response = api.http.post(path, params={"op": "add"}, json=amount)
        assert response.status_code == 202
    entity = wait_state(api, path, 12)
    assert entity["entityId"] == {"name": "counter", "key": key}
    assert entity["lastModifiedTime"].endswith("Z")
    assert entity["backlogQueueSize"] >= 0
    # names are case-insensitive
    assert api.http.post(f"/entities/Counter/{key}?op=add", json=1).status_code == 202
    wait_state(api, path, 13)

    # an orchestration started over HTTP works on the same entity
    urls = api.start("count_to", json=key).json()
    assert api.poll(urls["statusQueryGetUri"]).json()["output"] == 14


def test_list_entities_by_name_and_key_prefix_with_paging(api: Api) -> None:
    prefix = f"list-{uuid.uuid4().hex[:8]}-"
    keys = [f"{prefix}{n}" for n in range(3)]
    for key in keys:
        api.http.post(f"/entities/counter/{key}?op=add", json=1)
    for key in keys:
        wait_state(api, f"/entities/counter/{key}", 1)

    body = api.http.get("/entities/counter", params={"keyPrefix": prefix}).json()
    assert [e["entityId"]["key"] for e in body["entities"]] == keys
    assert body["continuationToken"] is None
    assert all(e["state"] == 1 for e in body["entities"])

    seen: list[str] = []
    token: str | None = None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = api.http.get(
            "/entities/counter", params={"keyPrefix": prefix, "top": 2}, headers=headers
        )
        seen += [e["entityId"]["key"] for e in response.json()["entities"]]
        token = response.json()["continuationToken"]
        if token is None:
            break
    assert seen == keys

    everything = api.http.get("/entities", params={"top": 1000}).json()["entities"]
    assert {f"{prefix}{n}" for n in range(3)} <= {e["entityId"]["key"] for e in everything}
    # entities are not orchestration instances
    instances = api.http.get("/instances", params={"top": 1000}).json()["instances"]
    assert not any(i["instanceId"].startswith("@") for i in instances)


def test_entity_errors(api: Api) -> None:
    response = api.http.post("/entities/counter/k", json=1)
    assert response.status_code == 400
    assert response.json() == {
        "error": "Query parameter 'op' (the operation to signal) is required"
    }
    response = api.http.post("/entities/nothing/k?op=add", json=1)
    assert response.status_code == 404
    assert response.json() == {"error": "No entity named 'nothing' is registered"}
    response = api.http.get("/entities/counter/never-used")
    assert response.status_code == 404
    assert response.json() == {"error": "No entity with ID 'counter/never-used' was found."}
    response = api.http.get("/entities/co@unter/k")
    assert response.status_code == 400
    assert "must be non-empty and contain no '@'" in response.json()["error"]
    response = api.http.post("/entities/counter/a%23b?op=add")
    assert response.status_code == 400
    assert "is not allowed" in response.json()["error"]
    response = api.http.post(
        "/entities/counter/k?op=add", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    response = api.http.post("/entities/counter/k?op=add&scheduledTime=soon")
    assert response.status_code == 400
    response = api.http.get("/entities", params={"keyPrefix": "x"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("'keyPrefix' needs an entity name")
    assert api.http.get("/entities", params={"top": "0"}).status_code == 400
