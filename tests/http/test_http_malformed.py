"""Malformed input answers 4xx with a clear JSON error, and changes nothing (issue #19).

Each case once answered 500, or did the wrong thing (an id with U+FFFD created, a forged
continuation token accepted).
"""

from __future__ import annotations

import base64

import ostinato as ot
import pytest
from http_api_support import Api

JSON = {"content-type": "application/json"}


def assert_error(response: object, status: int, starts: str) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith(starts), response.json()


def count(api: Api, prefix: str) -> int:
    page = ot.Client(api.provider).query_instances(instance_id_prefix=prefix)
    return len(page.items)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1" * 5000, "The request body has a value that cannot be read: Exceeds the limit"),
        (b'{"n": ' + b"9" * 5000 + b"}", "The request body has a value that cannot be read"),
        (b"[" * 100_000 + b"]" * 100_000, "The request body nests arrays/objects deeper than"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "The request body nests arrays/objects"),
        (b"[" * 300 + b"]" * 300, "The request body nests arrays/objects deeper than 200"),
        (b'"\\ud800"', "The request body has a string with an unpaired surrogate"),
        (b'{"\\udfff": 1}', "The request body has a string with an unpaired surrogate"),
        (b'["ok", {"x": "a\\ud800b"}]', "The request body has a string with an unpaired"),
    ],
    ids=[
        "5000-digits",
        "5000-digits-nested",
        "deep-arrays",
        "deep-objects",
        "depth-300",
        "lone-surrogate",
        "surrogate-key",
        "surrogate-inside",
    ],
)
def test_bodies_that_cannot_be_stored_are_400(api: Api, body: bytes, message: str) -> None:
    prefix = api.new_id("malformed")
    assert_error(api.start("greet", f"{prefix}-1", content=body, headers=JSON), 400, message)
    assert count(api, prefix) == 0
    urls = api.start("background_job", f"{prefix}-2", json="waiting").json()
    event = urls["sendEventPostUri"].replace("{eventName}", "finish")
    assert_error(api.http.post(event, content=body, headers=JSON), 400, message)
    assert api.status(f"{prefix}-2").json()["runtimeStatus"] in ("Pending", "Running")
    response = api.http.post("/entities/counter/k?op=add", content=body, headers=JSON)
    assert_error(response, 400, message)


def test_a_paired_surrogate_escape_is_fine(api: Api) -> None:
    instance_id = api.new_id("emoji")
    response = api.start("greet", instance_id, content=b'"\\ud83d\\ude00"', headers=JSON)
    assert response.status_code == 202
    assert api.status(instance_id).json()["input"] == "\U0001f600"


@pytest.mark.parametrize("escape", ["%FF", "%C3%28", "%ED%A0%80", "abc%80"])
def test_ids_with_invalid_utf8_escapes_are_400_not_replaced(api: Api, escape: str) -> None:
    prefix = api.new_id("utf8")
    response = api.http.post(f"/orchestrators/greet/{prefix}{escape}", json=1)
    assert_error(response, 400, "The URL path has percent-escapes that are not UTF-8 text")
    assert count(api, prefix) == 0
    assert_error(api.http.get(f"/instances/{prefix}{escape}"), 400, "The URL path")
    response = api.http.get(f"/instances?instanceIdPrefix={escape}")
    assert_error(response, 400, "The query string has percent-escapes that are not UTF-8 text")


def test_valid_utf8_escapes_still_work(api: Api) -> None:
    prefix = api.new_id("büro")
    response = api.http.post(f"/orchestrators/greet/{prefix}%20job", json="x")
    assert response.status_code == 202
    assert response.json()["id"] == f"{prefix} job"


@pytest.mark.parametrize("escape", ["%2F", "%2f"])
def test_an_encoded_slash_in_an_id_is_400(api: Api, escape: str) -> None:
    prefix = api.new_id("slash")
    response = api.http.post(f"/orchestrators/greet/{prefix}{escape}x", json=1)
    assert_error(response, 400, "The URL path contains an encoded '/' (%2F)")
    assert count(api, prefix) == 0
    assert_error(api.http.get(f"/instances/a{escape}b"), 400, "The URL path contains")
    assert_error(api.http.post(f"/instances/a{escape}b/terminate"), 400, "The URL path")


def test_forged_continuation_tokens_are_400(api: Api) -> None:
    prefix = api.new_id("paging")
    for n in range(3):
        assert api.start("greet", f"{prefix}-{n}", json=str(n)).status_code == 202
    first = api.http.get("/instances", params={"instanceIdPrefix": prefix, "top": 1})
    token = first.json()["continuationToken"]
    assert token is not None
    second = api.http.get(
        "/instances", params={"instanceIdPrefix": prefix, "top": 1, "continuationToken": token}
    )
    assert second.status_code == 200
    assert second.json()["instances"][0]["instanceId"] == f"{prefix}-1"
    data, _, mac = token.partition(".")
    forged_data = base64.urlsafe_b64encode(f"{prefix}-1".encode()).decode().rstrip("=")
    for forged in (
        forged_data,  # a provider token without a signature
        f"{forged_data}.{mac}",  # another token with this signature
        f"{data}.{mac[:-2]}AA",  # a changed signature
        "not-a-token",
        "%%%",
    ):
        response = api.http.get(
            "/instances", params={"instanceIdPrefix": prefix, "continuationToken": forged}
        )
        assert_error(response, 400, "Invalid continuation token")
        response = api.http.get("/instances", headers={"x-ms-continuation-token": forged})
        assert_error(response, 400, "Invalid continuation token")
    assert_error(
        api.http.get("/entities", params={"continuationToken": forged_data}),
        400,
        "Invalid continuation token",
    )
