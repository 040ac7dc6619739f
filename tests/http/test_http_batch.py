"""``POST /orchestrators/{name}:batch``: many starts in one request, one result per item."""

from __future__ import annotations

import httpx
from http_api_support import Api


def test_batch_start_answers_207_with_a_result_per_item(api: Api) -> None:
    taken = api.new_id("batch-taken")
    assert api.start("background_job", taken).status_code == 202  # active until "finish"
    twice = api.new_id("batch-twice")
    body = [
        {"input": "first"},
        {"instanceId": twice},
        {"instanceId": twice},
        {"instanceId": taken},
        {"instanceId": "bad\u0000id"},
        "not an object",
        {"instanceId": 7},
        {"input": 1, "extra": True},
        {"input": "last"},
    ]
    response = api.http.post("/orchestrators/background_job:batch", json=body)
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(body)))
    assert [r["status"] for r in results] == [202, 202, 409, 409, 400, 400, 400, 400, 202]
    assert [r["outcome"] for r in results][:4] == [
        "created",
        "created",
        "already_exists",
        "already_exists",
    ]
    assert results[1]["instanceId"] == twice and results[3]["instanceId"] == taken
    assert all(r["error"] for r in results[2:8])
    for created, job in ((results[0], "first"), (results[1], None), (results[8], "last")):
        assert created["statusQueryGetUri"].endswith(f"/instances/{created['instanceId']}")
        finish = created["sendEventPostUri"].replace("{eventName}", "finish")
        assert api.http.post(finish, json="done").status_code == 202
        final = api.poll(created["statusQueryGetUri"]).json()
        assert final["output"] == {"job": job, "finished_with": "done"}
    assert api.http.post(f"/instances/{taken}/terminate").status_code == 202


def test_batch_start_refuses_a_body_that_is_not_an_array(api: Api) -> None:
    response = api.http.post("/orchestrators/hello_cities:batch", json={"input": 1})
    assert response.status_code == 400
    assert "JSON array" in response.json()["error"]
    too_many = api.http.post("/orchestrators/hello_cities:batch", json=[{}] * 1001)
    assert too_many.status_code == 413


def test_batch_start_of_an_unknown_orchestrator_is_404(api: Api) -> None:
    response = api.http.post("/orchestrators/nope:batch", json=[{}])
    assert response.status_code == 404
    assert response.json()["error"] == "No orchestrator named 'nope' is registered"


def test_openapi_lists_the_batch_start(api: Api) -> None:
    schema = httpx.get(f"{api.url}/openapi.json").json()
    assert "post" in schema["paths"]["/orchestrators/{name}:batch"]
