"""The dashboard in a real browser: headless Chromium driven by Playwright.

list -> filter -> instance -> history -> terminate, plus sign-in, scopes, live refresh, the
entity browser, restart, the dead letters (one made by corrupting an inbox row of a SQLite
store) and the confirmation dialogs. Needs Debian's ``chromium`` (``.ci/run`` installs
it); without it these tests are skipped, saying so.

With ``OSTINATO_SCREENSHOTS=DIR`` each page is also saved as a PNG in DIR (``python
docs/dashboard_screenshots.py`` regenerates the images of docs/dashboard.md that way).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ostinato as ot
import pytest
from http_api_support import ServerThread
from http_test_app import app as test_app
from ostinato.http import ApiKey, Scope, create_app

CHROMIUM = os.environ.get("OSTINATO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPS_KEY = "ops-key-0123456789"
VIEWER_KEY = "viewer-key-0123456789"
TIMEOUT_MS = 30_000

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
    ),
    pytest.mark.slow,
]

Page = playwright_api.Page
expect = playwright_api.expect
expect.set_options(timeout=TIMEOUT_MS)  # a busy CI machine


@pytest.fixture(scope="module")
def provider() -> Iterator[ot.InMemoryProvider]:
    provider = ot.InMemoryProvider()
    with ot.Worker(test_app, provider, max_poll_interval=0.05):
        client = ot.Client(provider)
        for n in range(3):
            client.schedule_new_orchestration("hello_cities", instance_id=f"cities-{n}")
        client.schedule_new_orchestration(
            "nightly_report", input="2026-12-01", instance_id="report-1"
        )
        client.schedule_new_orchestration("fail_job", input="disk full", instance_id="import-7")
        for n in range(2):
            client.schedule_new_orchestration(
                "background_job", input={"batch": n}, instance_id=f"job-{n}"
            )
        client.schedule_new_orchestration("count_to", input="visits", instance_id="count-1")
        client.signal_entity(ot.EntityId("counter", "signups"), "add", 41)
        client.signal_entity(ot.EntityId("counter", "errors"), "add", 3)
        for instance_id in ("cities-0", "cities-1", "cities-2", "report-1", "import-7", "count-1"):
            client.wait_for_orchestration_completion(instance_id, timeout=60)
        deadline = time.monotonic() + 60
        while any(
            client.get_entity(ot.EntityId("counter", key)) is None for key in ("signups", "errors")
        ):
            assert time.monotonic() < deadline, "the entity signals were not processed"
            time.sleep(0.05)
        yield provider


@pytest.fixture(scope="module")
def server(provider: ot.InMemoryProvider) -> Iterator[str]:
    keys = [ApiKey("ops", OPS_KEY), ApiKey("viewer", VIEWER_KEY, frozenset({Scope.READ}))]
    with ServerThread(create_app(provider, keys=keys, app=test_app)) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1180, "height": 760})  # type: ignore[attr-defined]
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def screenshot(page: Page, name: str) -> None:
    directory = os.environ.get("OSTINATO_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"dashboard-{name}.png"))


def sign_in(page: Page, url: str, key: str, path: str = "/") -> None:
    page.goto(f"{url}{path}")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#key", key)
    page.click("#login button[type=submit]")
    expect(page.locator("#live-region")).to_be_visible()


def test_list_filter_instance_history_terminate(
    page: Page, server: str, provider: ot.InMemoryProvider
) -> None:
    # sign in: the key becomes a session cookie
    page.goto(f"{server}/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#key", "wrong-key")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Invalid API key")
    screenshot(page, "login")
    page.fill("#key", OPS_KEY)
    page.click("#login button[type=submit]")

    # the list: every instance (report-1's sub-orchestration too), status counts
    table = page.locator("#instances tbody")
    expect(table.locator("tr")).to_have_count(9)
    counts = page.locator("#status-counts")
    expect(counts.locator("[data-status=Completed] b")).to_have_text("6")
    expect(counts.locator("[data-status=Failed] b")).to_have_text("1")
    expect(counts.locator("[data-status=Running] b")).to_have_text("2")
    screenshot(page, "instances")

    # filter: running ones, then an id prefix, then a name prefix
    page.check("input[name=status][value=Running]")
    page.click("#apply-filters")
    expect(table.locator("tr")).to_have_count(2)
    expect(table).to_contain_text("job-0")
    expect(table).not_to_contain_text("cities-0")
    page.uncheck("input[name=status][value=Running]")
    page.fill("input[name=id]", "cities-")
    page.click("#apply-filters")
    expect(table.locator("tr")).to_have_count(3)
    page.fill("input[name=id]", "")
    page.fill("input[name=name]", "fail")
    page.click("#apply-filters")
    expect(table.locator("tr")).to_have_count(1)
    expect(table).to_contain_text("import-7")
    page.fill("input[name=name]", "")
    page.fill("input[name=createdFrom]", "2000-01-01T00:00:00")
    page.fill("input[name=createdTo]", "2000-01-02T00:00:00")
    page.click("#apply-filters")
    expect(table).to_contain_text("No instances match.")

    page.click("text=Clear")
    expect(table.locator("tr")).to_have_count(9)

    # a completed instance: history table as the Durable Functions docs show it, timeline
    page.click("text=report-1")
    expect(page.locator("#instance-status")).to_have_text("Completed")
    history = page.locator("#history tbody tr")
    expect(history.first.locator("td").first).to_have_text("ExecutionStarted")
    expect(history.last.locator("td").first).to_have_text("ExecutionCompleted")
    expect(history.last.locator("td").last).to_have_text("Completed")
    headers = page.locator("#history thead th").all_inner_texts()
    assert headers == ["Event type", "Timestamp", "Name", "Input", "Result", "Status"]
    timeline = page.locator("#timeline")
    expect(timeline.locator(".bar.activity")).to_have_count(3)
    expect(timeline.locator(".bar.timer")).to_have_count(1)
    expect(timeline.locator(".bar.sub-orchestration")).to_have_count(1)
    expect(page.locator("#output")).to_contain_text("Hello Lima!")
    expect(page.locator("#input")).to_contain_text("2026-12-01")
    screenshot(page, "instance")

    # a failed one shows its failure
    page.goto(f"{server}/ui/instances/import-7")
    expect(page.locator("#failure-message")).to_contain_text("ValueError: job failed: disk full")
    screenshot(page, "failed")

    # a running one: cancel the dialog and nothing happens; accept and it is terminated
    page.goto(f"{server}/")
    page.click("text=job-0")
    expect(page.locator("#instance-status")).to_have_text("Running")
    expect(page.locator("#custom-status")).to_contain_text('"state": "waiting"')
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button[data-action=terminate]")
    expect(page.locator("#instance-status")).to_have_text("Running")
    screenshot(page, "running")
    messages: list[str] = []

    def accept(dialog: playwright_api.Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("button[data-action=terminate]")
    expect(page.locator("#action-result")).to_have_text("Terminate: done")
    expect(page.locator("#instance-status")).to_have_text("Terminated")
    assert messages == ["Terminate instance 'job-0'? It stops for good."]
    state = ot.Client(provider).get_orchestration_state("job-0")
    assert state is not None
    assert state.runtime_status is ot.OrchestrationStatus.TERMINATED
    history = page.locator("#history tbody")
    expect(history.locator("tr", has_text="ExecutionTerminated")).to_have_count(1)
    expect(history.locator("tr").last.locator("td").last).to_have_text("Terminated")


def test_suspend_resume_raise_event_and_purge(
    page: Page, server: str, provider: ot.InMemoryProvider
) -> None:
    sign_in(page, server, OPS_KEY, "/ui/instances/job-1")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=suspend]")
    expect(page.locator("#instance-status")).to_have_text("Suspended")
    page.click("button[data-action=resume]")
    expect(page.locator("#instance-status")).to_have_text("Running")
    page.fill("#raise-event input[name=event]", "finish")
    page.fill("#raise-event input[name=data]", "{oops")
    page.click("#raise-event button")
    expect(page.locator("#action-result")).to_contain_text("The event data is not JSON")
    page.fill("#raise-event input[name=data]", '{"rows": 42}')
    page.click("#raise-event button")
    expect(page.locator("#action-result")).to_have_text("Event 'finish' raised")
    page.set_checked("#live", True)  # the page follows the instance to completion
    expect(page.locator("#instance-status")).to_have_text("Completed")
    expect(page.locator("#output")).to_contain_text('"rows": 42')
    page.set_checked("#live", False)
    page.click("button[data-action=purge]")
    expect(page).to_have_url(f"{server}/")
    assert ot.Client(provider).get_orchestration_state("job-1") is None


def test_live_refresh_shows_new_instances(page: Page, server: str) -> None:
    sign_in(page, server, OPS_KEY, "/?id=live-")
    expect(page.locator("#instances tbody")).to_contain_text("No instances match.")
    page.set_checked("#live", True)
    started = httpx.post(
        f"{server}/orchestrators/hello_cities/live-1", headers={"x-api-key": OPS_KEY}
    )
    assert started.status_code == 202
    expect(page.locator("#instances tbody")).to_contain_text("live-1")
    page.set_checked("#live", False)


def test_entity_browser(page: Page, server: str) -> None:
    sign_in(page, server, OPS_KEY, "/ui/entities")
    rows = page.locator("#entities tbody tr")
    expect(rows).to_have_count(3)  # ordered by key: errors, signups, visits
    expect(rows.nth(1)).to_contain_text("signups")
    expect(rows.nth(1).locator("summary")).to_have_text("41")
    expect(rows.nth(2)).to_contain_text("visits")
    page.fill("input[name=name]", "counter")
    page.fill("input[name=key]", "nope")
    page.click("#entity-filters button")
    expect(page.locator("#entities tbody")).to_contain_text("No entities match.")
    page.goto(f"{server}/ui/entities")
    page.click("#entities summary")
    screenshot(page, "entities")


def test_a_read_only_key_sees_no_actions_and_cannot_act(page: Page, server: str) -> None:
    sign_in(page, server, VIEWER_KEY, "/ui/instances/cities-0")
    expect(page.locator("#instance-status")).to_have_text("Completed")
    expect(page.locator("#actions button")).to_have_count(0)
    # the session cookie carries the viewer's scopes to the API too
    answer = page.evaluate(
        """async () => (await fetch('/instances/cities-0', {method: 'DELETE'})).status"""
    )
    assert answer == 403
    # a cross-site page cannot use the session: the cookie is SameSite=Strict, Origin checked
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        ("ostinato_session", True, "Strict")
    ]
    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto(f"{server}/")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_paging_through_the_list(page: Page, server: str, provider: ot.InMemoryProvider) -> None:
    client = ot.Client(provider)
    ids = [f"page-{n:02}" for n in range(45)]
    for instance_id in ids:
        client.schedule_new_orchestration("background_job", instance_id=instance_id)
    sign_in(page, server, OPS_KEY, "/?id=page-&size=20")
    table = page.locator("#instances tbody")
    seen: list[str] = []
    for expected in (20, 20, 5):
        expect(table.locator("tr")).to_have_count(expected)
        seen += table.locator("td:first-child").all_inner_texts()
        if expected == 20:
            page.click("#next-page")
    expect(page.locator("#next-page")).to_have_count(0)
    assert seen == ids
    page.click("#first-page")
    expect(table.locator("tr").first).to_contain_text("page-00")
    # a page link whose token was tampered with is refused, not followed
    page.goto(f"{server}/?id=page-&size=20&after=cGFnZS0xOQ")
    expect(page.locator("#error-message")).to_have_text(
        "Invalid page link: go back to the first page"
    )


def test_restart_runs_a_new_execution_to_completion(
    page: Page, server: str, provider: ot.InMemoryProvider
) -> None:
    sign_in(page, server, OPS_KEY, "/ui/instances/cities-1")
    expect(page.locator("#instance-status")).to_have_text("Completed")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button[data-action=restart]")
    expect(page.locator("#instance-id")).to_have_text("cities-1")  # dismissed: nothing ran
    messages: list[str] = []

    def accept(dialog: playwright_api.Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("button[data-action=restart]")
    expect(page.locator("#action-result")).to_have_text("Restart: done")
    assert messages == [
        "Restart instance 'cities-1'? Its orchestration runs again with the same input, "
        "as a new instance."
    ]
    # the page moves to the new instance, which runs and completes
    expect(page.locator("#instance-id")).not_to_have_text("cities-1")
    new_id = page.locator("#instance-id").inner_text()
    page.set_checked("#live", True)
    expect(page.locator("#instance-status")).to_have_text("Completed")
    page.set_checked("#live", False)
    expect(page.locator("#instance-name")).to_have_text("hello_cities")
    expect(page.locator("#output")).to_contain_text("Hello London!")
    screenshot(page, "restarted")
    client = ot.Client(provider)
    state = client.get_orchestration_state(new_id)
    assert state is not None and state.runtime_status is ot.OrchestrationStatus.COMPLETED
    old = client.get_orchestration_state("cities-1")
    assert old is not None and old.created_at < state.created_at  # the old one is kept


def test_rewind_runs_a_failed_instance_again(
    page: Page, server: str, provider: ot.InMemoryProvider
) -> None:
    client = ot.Client(provider)
    before = client.get_orchestration_state("import-7")
    assert before is not None and before.runtime_status is ot.OrchestrationStatus.FAILED
    sign_in(page, server, OPS_KEY, "/ui/instances/import-7")
    messages: list[str] = []

    def accept(dialog: playwright_api.Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("button[data-action=rewind]")
    expect(page.locator("#action-result")).to_have_text("Rewind: done")
    assert messages == [
        "Rewind instance 'import-7'? It runs again from its last step that did not fail."
    ]
    deadline = time.monotonic() + 60
    while True:  # fail_job fails again, later: it ran again
        after = client.get_orchestration_state("import-7")
        assert after is not None
        if after.last_updated_at > before.last_updated_at and after.runtime_status.is_terminal:
            break
        assert time.monotonic() < deadline, "the rewound instance did not run again"
        time.sleep(0.05)
    assert after.runtime_status is ot.OrchestrationStatus.FAILED
    expect(page.locator("#instance-status")).to_have_text("Failed")


# -- dead letters: a SQLite store with a corrupt inbox row ---------------------------------------
@pytest.fixture(scope="module")
def corrupt_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A served SQLite task hub, its worker running, where instance ``victim-1`` failed on an
    undecodable inbox message (moved into the dead letters): the URL and the database path."""
    from ostinato.sqlite import SqliteProvider

    path = tmp_path_factory.mktemp("dead-letters") / "hub.db"
    provider = SqliteProvider(path, synchronous="NORMAL")
    client = ot.Client(provider)
    try:
        with ot.Worker(test_app, provider, max_poll_interval=0.05):
            client.schedule_new_orchestration("background_job", instance_id="victim-1")
            client.wait_for_orchestration_start("victim-1", timeout=60)
            while not client.get_orchestration_history("victim-1"):
                time.sleep(0.02)
        client.raise_orchestration_event("victim-1", "finish", data="now")
        with sqlite3.connect(path, timeout=30) as connection:
            changed = connection.execute(
                "UPDATE ostinato_inbox SET body = ? WHERE instance_id = ?", ("{oops", "victim-1")
            ).rowcount
        assert changed == 1
        keys = [ApiKey("ops", OPS_KEY), ApiKey("viewer", VIEWER_KEY, frozenset({Scope.READ}))]
        with (
            ot.Worker(test_app, provider, max_poll_interval=0.05),
            ServerThread(create_app(provider, keys=keys, app=test_app)) as running,
        ):
            state = client.wait_for_orchestration_completion("victim-1", timeout=60)
            assert state.runtime_status is ot.OrchestrationStatus.FAILED
            yield running.url, str(path)
    finally:
        provider.close()


def _letters(path: str) -> list[tuple[str, str, int]]:
    """The dead letters in the database: id, body, and when (SQLite may reuse an id)."""
    with sqlite3.connect(path, timeout=30) as connection:
        rows = connection.execute(
            "SELECT id, body, created_at FROM ostinato_dead_letters ORDER BY id"
        )
        return [(str(letter_id), body, created) for letter_id, body, created in rows]


def test_dead_letters_are_listed_shown_re_driven_and_deleted(
    page: Page, corrupt_store: tuple[str, str]
) -> None:
    url, path = corrupt_store
    sign_in(page, url, OPS_KEY, "/ui/instances/victim-1")
    expect(page.locator("#instance-status")).to_have_text("Failed")
    expect(page.locator("#failure-message")).to_contain_text("could not be decoded")
    page.click("#dead-letters-link")  # the instance links to its dead letters

    rows = page.locator("#dead-letters tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(1)).to_have_text("victim-1")
    expect(cells.nth(2)).to_have_text("message")
    expect(cells.nth(3)).to_contain_text("JSONDecodeError")
    expect(cells.nth(4)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$"))
    page.goto(f"{url}/ui/dead-letters")
    screenshot(page, "dead-letters")
    ((first_id, _, first_time),) = _letters(path)
    moved_at = cells.nth(4).inner_text()

    rows.first.locator("a").first.click()
    expect(page.locator("#dead-letter-id")).to_have_text(first_id)
    expect(page.locator("#dead-letter-body")).to_have_text("{oops")
    expect(page.locator("#dead-letter-reason")).to_contain_text("JSONDecodeError")
    screenshot(page, "dead-letter")

    # re-drive: dismissed, nothing; accepted, the message goes back to the inbox, and the
    # worker (it still cannot decode it) moves it aside again, as a new dead letter
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button[data-action=retry]")
    expect(page.locator("#dead-letter-id")).to_have_text(first_id)
    assert _letters(path) == [(first_id, "{oops", first_time)]
    messages: list[str] = []

    def accept(dialog: playwright_api.Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("button[data-action=retry]")
    expect(page).to_have_url(f"{url}/ui/dead-letters")
    assert messages[0].startswith(f"Re-drive dead letter {first_id}? The message goes back to")
    page.set_checked("#live", True)
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(4)).not_to_have_text(moved_at)
    page.set_checked("#live", False)
    ((second_id, body, second_time),) = _letters(path)
    assert second_time > first_time and body == "{oops"

    # delete: confirmed, gone for good
    rows.first.locator("a").first.click()
    expect(page.locator("#dead-letter-id")).to_have_text(second_id)
    page.once("dialog", accept)
    page.click("button[data-action=delete]")
    expect(page).to_have_url(f"{url}/ui/dead-letters")
    expect(page.locator("#dead-letters tbody")).to_contain_text("No dead letters.")
    assert (
        messages[1] == f"Delete dead letter {second_id} for good? The record cannot be recovered."
    )
    assert _letters(path) == []
    page.goto(f"{url}/ui/dead-letters/{second_id}")
    expect(page.locator("#error-message")).to_have_text(
        f"No dead letter with ID '{second_id}' was found."
    )


def test_a_read_only_key_sees_dead_letters_without_actions(
    page: Page, corrupt_store: tuple[str, str]
) -> None:
    url, path = corrupt_store
    with sqlite3.connect(path, timeout=30) as connection:  # one more, whose body is markup
        connection.execute(
            "INSERT INTO ostinato_dead_letters "
            "(task_hub, kind, instance_id, body, reason, created_at) "
            "SELECT task_hub, 'message', 'victim-1', '<b>not json</b>', 'made by the test', "
            "created_at FROM ostinato_instances WHERE instance_id = 'victim-1'"
        )
    sign_in(page, url, VIEWER_KEY, "/ui/dead-letters?instance=victim-1")
    rows = page.locator("#dead-letters tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("a").first.click()
    expect(page.locator("#dead-letter-body")).to_have_text("<b>not json</b>")  # escaped
    expect(page.locator("#actions button")).to_have_count(0)
    letter_id = page.locator("#dead-letter-id").inner_text()
    retry = f"/deadLetters/{letter_id}/retry"
    answer = page.evaluate(f"async () => (await fetch('{retry}', {{method: 'POST'}})).status")
    assert answer == 403
