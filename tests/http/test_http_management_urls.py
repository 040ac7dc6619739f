"""The management URLs of a 202 carry what a caller needs, the way Durable Functions' do: each
is absolute, names the instance by its percent-encoded id, and works as given (placeholders
filled in) for status, events, suspend, resume, terminate, restart, rewind and purge."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from http_api_support import Api
from test_http_api import URL_KEYS

#: An id with characters that must be encoded in a path and in a query-less URL.
AWKWARD = "Büro job & 100% ✓;=+"


def fill(url: str, **values: str) -> str:
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def test_every_url_names_the_encoded_id_and_works_as_given(api: Api) -> None:
    instance_id = f"{AWKWARD} {api.new_id()}"
    encoded = quote(instance_id, safe="")
    started = api.start("background_job", encoded, json={"n": 7})
    assert started.status_code == 202
    urls = started.json()
    assert set(urls) == URL_KEYS and urls["id"] == instance_id
    instance_url = f"{api.url}/instances/{encoded}"
    for key in URL_KEYS - {"id"}:
        assert urls[key].startswith(instance_url), (key, urls[key])
        assert instance_id not in urls[key]  # never the raw id
    api.wait_status(instance_id, "Running")

    assert api.http.post(fill(urls["suspendPostUri"], text="a & b")).status_code == 202
    suspended = api.wait_status(instance_id, "Suspended")
    assert suspended.json()["instanceId"] == instance_id
    assert api.http.post(fill(urls["resumePostUri"], text="go on")).status_code == 202
    api.wait_status(instance_id, "Running")
    event = fill(urls["sendEventPostUri"], eventName="finish")
    assert api.http.post(event, json="done").status_code == 202
    final = api.poll(urls["statusQueryGetUri"]).json()
    assert final["output"] == {"job": {"n": 7}, "finished_with": "done"}

    # restart: a new instance (new id), same orchestrator and input, with its own URLs
    restarted = api.http.post(urls["restartPostUri"])
    assert restarted.status_code == 202
    again = restarted.json()
    assert set(again) == URL_KEYS and again["id"] != instance_id
    assert restarted.headers["location"] == again["statusQueryGetUri"]
    assert again["statusQueryGetUri"] == f"{api.url}/instances/{quote(again['id'], safe='')}"
    running = api.wait_status(again["id"], "Running").json()
    assert (running["name"], running["input"]) == ("background_job", {"n": 7})
    terminate = fill(again["terminatePostUri"], text="not needed")
    assert api.http.post(terminate).status_code == 202
    assert api.poll(again["statusQueryGetUri"]).json()["runtimeStatus"] == "Terminated"

    assert api.http.delete(urls["purgeHistoryDeleteUri"]).json() == {"instancesDeleted": 1}
    assert api.http.get(urls["statusQueryGetUri"]).status_code == 404
    api.http.delete(again["purgeHistoryDeleteUri"])


def test_restart_in_place_replaces_a_finished_instance_and_refuses_an_active_one(
    api: Api,
) -> None:
    instance_id = api.new_id("restart")
    urls = api.start("greet", instance_id, json="Oslo").json()
    first = api.poll(urls["statusQueryGetUri"]).json()
    assert first["output"] == "Hello Oslo!"
    in_place = api.http.post(urls["restartPostUri"], params={"restartWithNewInstanceId": "false"})
    assert in_place.status_code == 202
    assert in_place.json()["id"] == instance_id
    second = api.poll(urls["statusQueryGetUri"]).json()
    assert second["output"] == "Hello Oslo!"
    assert second["createdTime"] > first["createdTime"]  # a new execution ran and completed

    active = api.new_id("restart-active")
    active_urls = api.start("background_job", active).json()
    api.wait_status(active, "Running")
    refused = api.http.post(
        active_urls["restartPostUri"], params={"restartWithNewInstanceId": "false"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        f"Instance '{active}' is Running; restart it under its own id once it has finished, "
        "or with a new id"
    )
    api.http.post(fill(active_urls["terminatePostUri"], text="done"))
    assert api.http.post("/instances/no-such-instance/restart").status_code == 404
    bad = api.http.post(urls["restartPostUri"], params={"restartWithNewInstanceId": "maybe"})
    assert bad.status_code == 400


def test_rewind_runs_a_failed_instance_again_and_refuses_others(api: Api) -> None:
    instance_id = api.new_id("rewind")
    urls = api.start("fail_job", instance_id, json="disk full").json()
    failed = api.poll(urls["statusQueryGetUri"]).json()
    assert failed["runtimeStatus"] == "Failed"
    rewound = api.http.post(fill(urls["rewindPostUri"], text="fixed the disk"))
    assert rewound.status_code == 202

    def ran_again(response: httpx.Response) -> bool:  # fail_job fails again, later
        body = response.json()
        return body["lastUpdatedTime"] > failed["lastUpdatedTime"]

    again = api.poll(urls["statusQueryGetUri"], ran_again).json()
    assert again["runtimeStatus"] == "Failed"
    assert again["failureDetails"]["errorMessage"] == "job failed: disk full"

    done = api.new_id("rewind-done")
    done_urls = api.start("greet", done, json="x").json()
    api.poll(done_urls["statusQueryGetUri"])
    refused = api.http.post(fill(done_urls["rewindPostUri"], text="why"))
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        f"Instance '{done}' is Completed; only a Failed instance can be rewound"
    )
    assert api.http.post("/instances/no-such-instance/rewind").status_code == 404
