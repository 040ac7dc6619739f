"""The HTTP management API over real HTTP, on every provider (DESIGN §5.2 and the rest)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from http_api_support import Api

URL_KEYS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "suspendPostUri",
    "resumePostUri",
    "rewindPostUri",
    "restartPostUri",
    "purgeHistoryDeleteUri",
}


def exists_message(instance_id: str) -> str:
    return f"An instance with ID '{instance_id}' already exists."


def event_url(urls: dict[str, str], name: str) -> str:
    return urls["sendEventPostUri"].replace("{eventName}", name)


def command_url(urls: dict[str, str], key: str, reason: str | None = None) -> str:
    base = urls[key].split("?", 1)[0]
    return base if reason is None else f"{base}?reason={quote(reason)}"


# -- DESIGN §5.2: the singleton background job -------------------------------------------------
def test_start_answers_202_with_location_and_management_urls(api: Api) -> None:
    response = api.start("hello_cities")
    assert response.status_code == 202
    urls = response.json()
    assert set(urls) == URL_KEYS
    instance_url = f"{api.url}/instances/{urls['id']}"
    assert response.headers["location"] == urls["statusQueryGetUri"] == instance_url
    assert response.headers["retry-after"] == "1"
    assert urls["sendEventPostUri"] == f"{instance_url}/raiseEvent/{{eventName}}"
    assert urls["terminatePostUri"] == f"{instance_url}/terminate?reason={{text}}"
    assert urls["suspendPostUri"] == f"{instance_url}/suspend?reason={{text}}"
    assert urls["resumePostUri"] == f"{instance_url}/resume?reason={{text}}"
    assert urls["rewindPostUri"] == f"{instance_url}/rewind?reason={{text}}"
    assert urls["restartPostUri"] == f"{instance_url}/restart"
    assert urls["purgeHistoryDeleteUri"] == instance_url

    final = api.poll(response.headers["location"])
    body = final.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert body["name"] == "hello_cities"
    assert body["instanceId"] == urls["id"]
    assert body["createdTime"].endswith("Z") and body["lastUpdatedTime"].endswith("Z")


def test_status_is_202_with_location_while_running(api: Api) -> None:
    instance_id = api.new_id()
    assert api.start("background_job", instance_id, json={"n": 1}).status_code == 202
    running = api.wait_status(instance_id, "Running")
    assert running.status_code == 202
    assert running.headers["location"].endswith(f"/instances/{instance_id}")
    assert running.headers["retry-after"] == "1"
    body = running.json()
    assert body["input"] == {"n": 1}
    assert body["output"] is None
    assert body["customStatus"] == {"job": {"n": 1}, "state": "waiting"}
    api.http.post(f"/instances/{instance_id}/terminate")


def test_singleton_409_while_active_and_replaced_once_finished(api: Api) -> None:
    instance_id = api.new_id("singleton")
    first = api.start("background_job", instance_id, json="first")
    assert first.status_code == 202
    urls = first.json()
    assert urls["id"] == instance_id

    conflict = api.start("background_job", instance_id, json="second")
    assert conflict.status_code == 409
    assert conflict.json() == {"error": exists_message(instance_id)}

    assert api.http.post(event_url(urls, "finish"), json=42).status_code == 202
    done = api.poll(urls["statusQueryGetUri"]).json()
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"job": "first", "finished_with": 42}

    again = api.start("background_job", instance_id, json="third")
    assert again.status_code == 202
    rerun = api.status(instance_id)
    assert rerun.status_code == 202
    assert rerun.json()["input"] == "third"
    assert rerun.json()["output"] is None
    assert api.start("background_job", instance_id).status_code == 409

    # a terminated one is replaced too
    terminate = command_url(urls, "terminatePostUri", "stop")
    assert api.http.post(terminate).status_code == 202
    assert api.poll(urls["statusQueryGetUri"]).json()["runtimeStatus"] == "Terminated"
    assert api.start("background_job", instance_id, json="fourth").status_code == 202
    assert api.status(instance_id).json()["input"] == "fourth"
    api.http.post(terminate)


def test_failed_instance_is_200_with_failure_details_and_is_replaced(api: Api) -> None:
    instance_id = api.new_id("fails")
    response = api.start("fail_job", instance_id, json="disk full")
    final = api.poll(response.headers["location"])
    assert final.status_code == 200
    body = final.json()
    assert body["runtimeStatus"] == "Failed"
    details = body["failureDetails"]
    assert details["errorType"] == "ValueError"
    assert details["errorMessage"] == "job failed: disk full"
    assert "ValueError" in details["stackTrace"]

    assert api.start("greet", instance_id, json="again").status_code == 202
    replaced = api.poll(f"/instances/{instance_id}").json()
    assert replaced["runtimeStatus"] == "Completed"
    assert replaced["output"] == "Hello again!"
    assert "failureDetails" not in replaced


def test_twenty_concurrent_posts_of_one_id_start_exactly_one_instance(api: Api) -> None:
    instance_id = api.new_id("race")
    barrier = threading.Barrier(20)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        # one connection per thread, so the twenty requests really are concurrent
        with httpx.Client(base_url=api.url, timeout=30) as http:
            barrier.wait()
            response = http.post(f"/orchestrators/background_job/{instance_id}", json=n)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 19
    for response in responses:
        if response.status_code == 409:
            assert response.json() == {"error": exists_message(instance_id)}
    winner = next(r for r in responses if r.status_code == 202)

    listed = api.http.get("/instances", params={"instanceIdPrefix": instance_id}).json()
    assert [i["instanceId"] for i in listed["instances"]] == [instance_id]
    api.wait_status(instance_id, "Running")
    history = api.status(instance_id, showHistory="true", showHistoryOutput="true").json()
    starts = [e for e in history["historyEvents"] if e["eventType"] == "ExecutionStarted"]
    assert len(starts) == 1
    assert starts[0]["input"] == history["input"]
    urls = winner.json()
    assert api.http.post(event_url(urls, "finish"), json="ok").status_code == 202
    assert api.poll(urls["statusQueryGetUri"]).json()["output"]["finished_with"] == "ok"


# -- raise event, terminate, suspend/resume ----------------------------------------------------
def test_raise_event_delivers_the_body_as_data(api: Api) -> None:
    urls = api.start("background_job", json="evt").json()
    data = {"approved": True, "by": "Zoë", "items": [1, 2.5, None]}
    response = api.http.post(event_url(urls, "finish"), json=data)
    assert response.status_code == 202
    assert response.content == b""
    final = api.poll(urls["statusQueryGetUri"]).json()
    assert final["output"] == {"job": "evt", "finished_with": data}


def test_raise_event_without_a_body_sends_null(api: Api) -> None:
    urls = api.start("background_job", json="no body").json()
    assert api.http.post(event_url(urls, "finish")).status_code == 202
    assert api.poll(urls["statusQueryGetUri"]).json()["output"]["finished_with"] is None


def test_terminate_with_reason_then_410_for_further_commands(api: Api) -> None:
    urls = api.start("background_job", json="t").json()
    response = api.http.post(command_url(urls, "terminatePostUri", "no longer needed"))
    assert response.status_code == 202
    final = api.poll(urls["statusQueryGetUri"]).json()
    assert final["runtimeStatus"] == "Terminated"
    assert final["output"] == "no longer needed"

    instance_id = urls["id"]
    for url in (
        event_url(urls, "finish"),
        command_url(urls, "terminatePostUri"),
        command_url(urls, "suspendPostUri"),
        command_url(urls, "resumePostUri"),
    ):
        gone = api.http.post(url)
        assert gone.status_code == 410, url
        assert gone.json() == {
            "error": f"Instance '{instance_id}' is Terminated; it takes no more events or commands"
        }


def test_suspend_holds_events_until_resume(api: Api) -> None:
    urls = api.start("background_job", json="s").json()
    instance_id = urls["id"]
    api.wait_status(instance_id, "Running")
    assert api.http.post(command_url(urls, "suspendPostUri", "maintenance")).status_code == 202
    api.wait_status(instance_id, "Suspended")

    assert api.http.post(event_url(urls, "finish"), json="held").status_code == 202
    suspended = api.status(instance_id)
    assert suspended.status_code == 202
    assert suspended.json()["runtimeStatus"] == "Suspended"

    assert api.http.post(command_url(urls, "resumePostUri", "done")).status_code == 202
    final = api.poll(urls["statusQueryGetUri"]).json()
    assert final["runtimeStatus"] == "Completed"
    assert final["output"]["finished_with"] == "held"
    events = api.status(instance_id, showHistory="true").json()["historyEvents"]
    kinds = [e["eventType"] for e in events]
    assert "ExecutionSuspended" in kinds and "ExecutionResumed" in kinds
    suspended_event = next(e for e in events if e["eventType"] == "ExecutionSuspended")
    assert suspended_event["reason"] == "maintenance"


# -- status options ----------------------------------------------------------------------------
def test_show_history_show_history_output_and_show_input(api: Api) -> None:
    urls = api.start("greet", json="Oslo").json()
    api.poll(urls["statusQueryGetUri"])
    instance_id = urls["id"]

    plain = api.status(instance_id).json()
    assert "historyEvents" not in plain
    assert plain["input"] == "Oslo"
    assert "input" not in api.status(instance_id, showInput="false").json()

    history = api.status(instance_id, showHistory="true").json()["historyEvents"]
    kinds = [e["eventType"] for e in history]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    assert "TaskScheduled" in kinds and "TaskCompleted" in kinds
    assert all(e["timestamp"].endswith("Z") for e in history)
    assert all("result" not in e and "input" not in e for e in history)
    scheduled = next(e for e in history if e["eventType"] == "TaskScheduled")
    assert scheduled["name"] == "say_hello"

    detailed = api.status(instance_id, showHistory="true", showHistoryOutput="True").json()
    completed = next(e for e in detailed["historyEvents"] if e["eventType"] == "TaskCompleted")
    assert completed["result"] == "Hello Oslo!"
    assert detailed["historyEvents"][-1]["status"] == "Completed"


def test_unicode_instance_ids_round_trip_in_urls(api: Api) -> None:
    instance_id = f"Büro job ✓ {api.new_id()}"
    response = api.start("greet", quote(instance_id, safe=""), json="Zürich")
    assert response.status_code == 202
    assert response.json()["id"] == instance_id
    location = response.headers["location"]
    assert location.endswith("/instances/" + quote(instance_id, safe=""))
    final = api.poll(location).json()
    assert final["instanceId"] == instance_id
    assert final["output"] == "Hello Zürich!"


# -- purge -------------------------------------------------------------------------------------
def test_purge_one_instance(api: Api) -> None:
    urls = api.start("background_job", json="p").json()
    purge_url = urls["purgeHistoryDeleteUri"]
    active = api.http.delete(purge_url)
    assert active.status_code == 409
    assert "only Completed, Failed or Terminated instances can be purged" in active.json()["error"]

    api.http.post(event_url(urls, "finish"))
    api.poll(urls["statusQueryGetUri"])
    purged = api.http.delete(purge_url)
    assert purged.status_code == 200
    assert purged.json() == {"instancesDeleted": 1}
    assert api.http.get(urls["statusQueryGetUri"]).status_code == 404
    assert api.http.delete(purge_url).status_code == 404


def test_bulk_purge_by_filters(api: Api) -> None:
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    prefix = api.new_id("bulk")
    finished = [f"{prefix}-{n}" for n in range(3)]
    for instance_id in finished:
        api.start("greet", instance_id, json=instance_id)
    running = f"{prefix}-running"
    api.start("background_job", running)
    for instance_id in finished:
        api.poll(f"/instances/{instance_id}")

    filters = {"createdFrom": since.isoformat(), "runtimeStatus": "Completed,Failed"}
    response = api.http.delete("/instances", params=filters)
    assert response.status_code == 200
    assert response.json() == {"instancesDeleted": 3}
    for instance_id in finished:
        assert api.status(instance_id).status_code == 404
    assert api.status(running).status_code == 202

    assert api.http.delete("/instances", params=filters).json() == {"instancesDeleted": 0}
    api.http.post(f"/instances/{running}/terminate")


def test_bulk_purge_needs_a_filter_and_only_finished_statuses(api: Api) -> None:
    response = api.http.delete("/instances")
    assert response.status_code == 400
    assert "at least one filter" in response.json()["error"]
    response = api.http.delete("/instances", params={"runtimeStatus": "Completed,Running"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Only Completed, Failed or Terminated instances can be purged, not Running"
    }


# -- list --------------------------------------------------------------------------------------
def test_list_with_filters_and_paging(api: Api) -> None:
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    prefix = api.new_id("list")
    done = [f"{prefix}-done-{n}" for n in range(5)]
    for instance_id in done:
        assert api.start("greet", instance_id, json=instance_id).status_code == 202
    waiting = f"{prefix}-waiting"
    api.start("background_job", waiting, json="w")
    for instance_id in done:
        api.poll(f"/instances/{instance_id}")
    api.wait_status(waiting, "Running")

    def listed(**params: object) -> list[str]:
        response = api.http.get("/instances", params={"instanceIdPrefix": prefix, **params})
        assert response.status_code == 200, response.text
        return [i["instanceId"] for i in response.json()["instances"]]

    assert listed() == sorted([*done, waiting])
    assert listed(runtimeStatus="Completed") == done
    assert listed(runtimeStatus="running") == [waiting]
    assert listed(runtimeStatus=["Pending", "Running"]) == [waiting]
    assert listed(runtimeStatus="Failed,Terminated") == []
    assert listed(namePrefix="backgr") == [waiting]
    assert listed(namePrefix="gre") == done
    assert listed(createdFrom=since.isoformat()) == sorted([*done, waiting])
    assert listed(createdFrom=(since + timedelta(hours=1)).isoformat()) == []
    assert listed(createdTo=(since - timedelta(hours=1)).isoformat()) == []
    assert listed(createdTimeFrom=since.isoformat(), createdTimeTo="2999-01-01") == sorted(
        [*done, waiting]
    )

    full = api.http.get("/instances", params={"instanceIdPrefix": prefix}).json()
    assert full["continuationToken"] is None
    first = full["instances"][0]
    assert {"name", "instanceId", "runtimeStatus", "createdTime", "input", "output"} <= set(first)
    bare = api.http.get("/instances", params={"instanceIdPrefix": prefix, "showInput": "false"})
    assert all("input" not in i for i in bare.json()["instances"])
    outputs = {i["instanceId"]: i["output"] for i in bare.json()["instances"]}
    assert outputs[done[0]] == f"Hello {done[0]}!"

    # paging: the token in the header and the body, passed back as a header or a parameter
    seen: list[str] = []
    token: str | None = None
    use_header = True
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token and use_header else {}
        params: dict[str, object] = {"instanceIdPrefix": prefix, "top": 2}
        if token and not use_header:
            params["continuationToken"] = token
        response = api.http.get("/instances", params=params, headers=headers)
        body = response.json()
        assert len(body["instances"]) <= 2
        seen += [i["instanceId"] for i in body["instances"]]
        assert response.headers.get("x-ms-continuation-token") == body["continuationToken"]
        token = body["continuationToken"]
        pages += 1
        use_header = not use_header
        if token is None:
            break
    assert seen == sorted([*done, waiting])
    assert pages in (3, 4)
    api.http.post(f"/instances/{waiting}/terminate")


def test_paging_over_unicode_ids(api: Api) -> None:
    prefix = api.new_id("ünï")
    ids = [f"{prefix}-✓-{n}" for n in range(3)]
    for instance_id in ids:
        assert api.start("greet", quote(instance_id, safe=""), json="x").status_code == 202
    seen: list[str] = []
    token: str | None = None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = api.http.get(
            "/instances", params={"instanceIdPrefix": prefix, "top": 1}, headers=headers
        )
        assert response.status_code == 200, response.text
        seen += [i["instanceId"] for i in response.json()["instances"]]
        token = response.json()["continuationToken"]
        if token is None:
            break
        assert token.isascii()
    assert seen == ids


def test_a_made_up_continuation_token_is_400(api: Api) -> None:
    response = api.http.get("/instances", params={"continuationToken": "not base64!"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid continuation token 'not base64!'")
    response = api.http.get("/entities", headers={"x-ms-continuation-token": "%%%"})
    assert response.status_code == 400


# -- 400 / 404 / 405 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw_id", "rule"),
    [
        ("@entity", "must not start with '@'"),
        ("x" * 101, "the limit is 100"),
        ("a%23b", "contains '#'"),
        ("a%3Fb", "contains '?'"),
        ("a%5Cb", "contains '\\\\'"),
        ("a%01b", "control character U+0001"),
    ],
)
def test_invalid_instance_ids_are_400_with_the_rule(api: Api, raw_id: str, rule: str) -> None:
    for response in (
        api.start("greet", raw_id, json="x"),
        api.http.get(f"/instances/{raw_id}"),
        api.http.post(f"/instances/{raw_id}/raiseEvent/go"),
        api.http.post(f"/instances/{raw_id}/terminate"),
        api.http.delete(f"/instances/{raw_id}"),
    ):
        assert response.status_code == 400, response.text
        assert rule in response.json()["error"]


def test_bad_json_bodies_are_400(api: Api) -> None:
    headers = {"content-type": "application/json"}
    response = api.start("greet", api.new_id(), content=b'{"city": ', headers=headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("The request body is not valid JSON: ")
    response = api.start("greet", content=b"\xff\xfe\x00", headers=headers)
    assert response.status_code == 400
    urls = api.start("background_job", json="bad event").json()
    response = api.http.post(event_url(urls, "finish"), content=b"not json", headers=headers)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    api.http.post(command_url(urls, "terminatePostUri"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"runtimeStatus": "Runnning"}, "unknown runtime status 'Runnning'"),
        ({"runtimeStatus": "Completed,Bogus"}, "unknown runtime status 'Bogus'"),
        ({"createdFrom": "yesterday"}, "'createdFrom' is not an ISO 8601 date/time"),
        ({"createdTo": "2024-13-45"}, "'createdTo' is not an ISO 8601 date/time"),
        ({"createdFrom": "2024-02-01", "createdTo": "2024-01-01"}, "later than"),
        ({"top": "0"}, "'top' must be an integer from 1 to 1000, not '0'"),
        ({"top": "1001"}, "'top' must be an integer from 1 to 1000"),
        ({"top": "ten"}, "'top' must be an integer from 1 to 1000, not 'ten'"),
        ({"showInput": "maybe"}, "'showInput' must be true or false, not 'maybe'"),
    ],
)
def test_bad_list_parameters_are_400(api: Api, params: dict[str, str], message: str) -> None:
    response = api.http.get("/instances", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_bad_status_parameters_are_400(api: Api) -> None:
    instance_id = api.new_id()
    response = api.status(instance_id, showHistory="yes please")
    assert response.status_code == 400
    assert response.json() == {
        "error": "Query parameter 'showHistory' must be true or false, not 'yes please'"
    }


def test_iso_times_with_an_unencoded_plus_are_understood(api: Api) -> None:
    response = api.http.get("/instances?createdFrom=2024-01-01T00:00:00+02:00&top=1")
    assert response.status_code == 200


def test_unknown_instances_are_404(api: Api) -> None:
    instance_id = api.new_id("nobody")
    message = {"error": f"No orchestration instance with ID '{instance_id}' was found."}
    for response in (
        api.status(instance_id),
        api.http.post(f"/instances/{instance_id}/raiseEvent/finish", json=1),
        api.http.post(f"/instances/{instance_id}/terminate"),
        api.http.post(f"/instances/{instance_id}/suspend"),
        api.http.post(f"/instances/{instance_id}/resume"),
        api.http.delete(f"/instances/{instance_id}"),
    ):
        assert response.status_code == 404
        assert response.json() == message


def test_unknown_orchestrator_routes_and_methods(api: Api) -> None:
    response = api.start("no_such_orchestrator", json=1)
    assert response.status_code == 404
    message = "No orchestrator named 'no_such_orchestrator' is registered"
    assert response.json() == {"error": message}
    response = api.http.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found: GET /no/such/route"}
    response = api.http.put("/instances")
    assert response.status_code == 405
    assert response.json() == {"error": "Method PUT is not allowed on /instances"}
    assert api.http.get("/orchestrators/greet").status_code == 405
