"""The dashboard over plain HTTP: behind the same keys, escaped, signed sessions, timeline.

(The browser tests in test_dashboard_browser.py drive it through Chromium.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import ostinato as ot
import pytest
from http_api_support import ServerThread
from http_test_app import app as test_app
from ostinato import history
from ostinato.http import ApiKey, Scope, create_app
from ostinato.http.timeline import Outcome, SpanKind, timeline

KEY = "dash-key-0123456789"
READER = "reader-key-0123456789"


@pytest.fixture(scope="module")
def provider() -> Iterator[ot.InMemoryProvider]:
    provider = ot.InMemoryProvider()
    with ot.Worker(test_app, provider, max_poll_interval=0.05):
        yield provider


@pytest.fixture(scope="module")
def url(provider: ot.InMemoryProvider) -> Iterator[str]:
    keys = [ApiKey("ops", KEY), ApiKey("reader", READER, frozenset({Scope.READ}))]
    with ServerThread(create_app(provider, keys=keys, app=test_app, base_path="/durable")) as s:
        yield f"{s.url}/durable"


def test_pages_need_a_key_and_send_browsers_to_sign_in(url: str) -> None:
    for path in ("/", "/ui/instances/x", "/ui/entities?name=counter"):
        response = httpx.get(f"{url}{path}")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/durable/ui/login?next=%2Fdurable%2F")
        assert "instances" not in response.text
    assert httpx.get(f"{url}/ui/login").status_code == 200
    assert httpx.get(f"{url}/ui/static/dashboard.js").status_code == 200
    # the API itself stays 401 (the dashboard's public paths cover only its own pages)
    assert httpx.get(f"{url}/instances").status_code == 401
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    assert httpx.get(f"{url}/", headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(f"{url}/", headers={"x-api-key": "wrong"}).status_code == 401


def test_host_and_origin_checks_cover_the_dashboard(url: str) -> None:
    response = httpx.get(f"{url}/", headers={"x-api-key": KEY, "host": "attacker.example"})
    assert response.status_code == 400
    response = httpx.post(
        f"{url}/ui/session", json={"key": KEY}, headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_session_cookie_is_signed_and_scoped(url: str) -> None:
    with httpx.Client(base_url=url) as browser:
        assert browser.post("/ui/session", json={"key": "wrong"}).status_code == 401
        signed_in = browser.post("/ui/session", json={"key": READER})
        assert signed_in.status_code == 204
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/durable/" in cookie
        assert READER not in cookie
        assert browser.get("/").status_code == 200
        assert browser.get("/instances").status_code == 200  # the API takes the session too
        refused = browser.post("/orchestrators/greet", json="x")
        assert refused.status_code == 403  # a reader's session can't start anything
        value = browser.cookies["ostinato_session"]
        name, expiry, mac = value.rsplit(".", 2)
        for forged in (f"ops.{expiry}.{mac}", f"{name}.{int(expiry) + 9}.{mac}", "ops.1.2"):
            browser.cookies.clear()
            browser.cookies.set("ostinato_session", forged)
            assert browser.get("/", follow_redirects=False).status_code == 303
            assert browser.get("/instances").status_code == 401
        assert browser.delete("/ui/session").status_code == 204


def test_instance_ids_and_payloads_are_escaped(url: str, provider: ot.InMemoryProvider) -> None:
    evil = "<img src=x onerror=alert(1)>"
    ot.Client(provider).schedule_new_orchestration(
        "background_job", input={"html": "<script>alert(2)</script>"}, instance_id=evil
    )
    headers = {"x-api-key": KEY}
    listed = httpx.get(f"{url}/", params={"id": "<img"}, headers=headers)
    assert listed.status_code == 200
    assert evil not in listed.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in listed.text
    page = httpx.get(f"{url}/ui/instances/{evil}", headers=headers)
    assert page.status_code == 200
    assert "<script>alert(2)" not in page.text and "&lt;script&gt;alert(2)" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"


def test_bad_filters_and_unknown_instances_answer_clearly(url: str) -> None:
    headers = {"x-api-key": KEY}
    response = httpx.get(f"{url}/", params={"status": "Sleeping"}, headers=headers)
    assert response.status_code == 400
    assert "unknown runtime status &#39;Sleeping&#39;" in response.text
    response = httpx.get(f"{url}/", params={"createdFrom": "yesterday"}, headers=headers)
    assert response.status_code == 400
    response = httpx.get(f"{url}/ui/instances/never-started", headers=headers)
    assert response.status_code == 404
    assert "No instance &#39;never-started&#39;" in response.text


def test_timeline_places_activities_timers_and_sub_orchestrations() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    events: list[history.HistoryEvent] = [
        history.ExecutionStarted(name="job", execution_id="e", timestamp=at(0)),
        history.TaskScheduled(task_id=0, name="fetch", timestamp=at(0)),
        history.TaskCompleted(task_scheduled_id=0, timestamp=at(2)),
        history.TimerCreated(task_id=1, fire_at=at(6), timestamp=at(2)),
        history.TimerFired(timer_id=1, fire_at=at(6), timestamp=at(6)),
        history.SubOrchestrationInstanceCreated(
            task_id=2, name="child", instance_id="c", timestamp=at(6)
        ),
        history.SubOrchestrationInstanceFailed(
            task_scheduled_id=2,
            failure=ot.FailureDetails("ValueError", "no"),
            timestamp=at(8),
        ),
        history.TaskScheduled(task_id=3, name="retry", timestamp=at(8)),
    ]
    line = timeline(events, now=at(10))
    assert line is not None
    assert line.seconds == 10
    got = [
        (b.span.kind, b.span.name, b.span.outcome, b.left, b.width, b.seconds) for b in line.bars
    ]
    assert got == [
        (SpanKind.ACTIVITY, "fetch", Outcome.COMPLETED, 0, 20, 2),
        (SpanKind.TIMER, "timer until 00:00:06", Outcome.COMPLETED, 20, 40, 4),
        (SpanKind.SUB_ORCHESTRATION, "child", Outcome.FAILED, 60, 20, 2),
        (SpanKind.ACTIVITY, "retry", Outcome.OPEN, 80, 20, 2),  # still running: until now
    ]
    assert timeline([], now=t0) is None


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_sign_in_only_returns_to_this_sites_pages(url: str, target: str) -> None:
    page = httpx.get(f"{url}/ui/login", params={"next": target})
    assert page.status_code == 200
    assert 'data-next="/durable/"' in page.text
    assert "evil.example" not in page.text
