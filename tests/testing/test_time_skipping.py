"""The time-skipping environment: virtual time jumps over timers, retries, scheduled starts."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ostinato as ot
import pytest
from ostinato.sqlite import SqliteProvider
from ostinato.testing import TimeSkippingEnvironment

START = datetime(2030, 1, 1, tzinfo=UTC)

app = ot.App()
_attempts: dict[str, int] = {}


@app.activity
def flaky(ctx: ot.ActivityContext, day: int) -> int:
    """Fails on its first two attempts of each day."""
    key = f"{ctx.instance_id}:{day}"
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] <= 2:
        raise RuntimeError(f"day {day}: attempt {_attempts[key]} fails")
    return day


@app.orchestrator
def month(ctx: ot.OrchestrationContext, _: Any) -> Any:
    """30 days: a timer a day, a retried activity a day, and an approval on day 15."""
    retry = ot.RetryPolicy(first_retry_interval=timedelta(hours=1), max_number_of_attempts=3)
    days = []
    approval = None
    for day in range(1, 31):
        yield ctx.create_timer(timedelta(days=1))
        days.append((yield ctx.call_activity(flaky, input=day, retry_policy=retry)))
        if day == 15:
            event = ctx.wait_for_external_event("approval")
            timeout = ctx.create_timer(timedelta(days=3))
            winner = yield ot.when_any([event, timeout])
            approval = event.get_result() if winner is event else "timed out"
    return {"days": len(days), "approval": approval, "now": ctx.current_utc_datetime.isoformat()}


@app.orchestrator
def approver(ctx: ot.OrchestrationContext, target: str) -> Any:
    ctx.send_event(target, "approval", data="yes")
    return ctx.current_utc_datetime.isoformat()


@app.orchestrator
def wait_or_timeout(ctx: ot.OrchestrationContext, hours: int) -> Any:
    event = ctx.wait_for_external_event("go")
    timeout = ctx.create_timer(timedelta(hours=hours))
    winner = yield ot.when_any([event, timeout])
    return ["event", event.get_result()] if winner is event else ["timeout", None]


@app.orchestrator
def sleeper(ctx: ot.OrchestrationContext, days: int) -> str:
    yield ctx.create_timer(timedelta(days=days))
    return ctx.current_utc_datetime.isoformat()


def test_a_30_day_orchestration_completes_in_well_under_a_second() -> None:
    with TimeSkippingEnvironment(app, start=START) as env:
        started = time.perf_counter()
        month_id = env.client.schedule_new_orchestration(month, instance_id="month")
        # The approval comes from another orchestration, scheduled to start on day 17.
        env.client.schedule_new_orchestration(
            approver, input=month_id, start_at=START + timedelta(days=17)
        )
        state = env.client.wait_for_orchestration_completion(month_id, timeout=10)
        elapsed = time.perf_counter() - started
    assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    # 30 daily timers, two one-hour retry delays a day, and the approval awaited from the end
    # of day 15's activity (15 days + 30 h) to the approver's start (17 days): 18 h.
    end = START + timedelta(days=30, hours=60 + 18)
    assert state.output == {"days": 30, "approval": "yes", "now": end.isoformat()}
    assert env.now() == end
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


def test_current_utc_datetime_follows_the_virtual_clock_exactly() -> None:
    with TimeSkippingEnvironment(app, start=START) as env:
        instance_id = env.client.schedule_new_orchestration(sleeper, input=3)
        state = env.client.wait_for_orchestration_completion(instance_id)
    assert state.output == (START + timedelta(days=3)).isoformat()
    assert state.created_at == START


def test_time_stands_still_until_moved() -> None:
    with TimeSkippingEnvironment(app, start=START) as env:
        instance_id = env.client.schedule_new_orchestration(sleeper, input=1)
        env.wait_until_idle()
        state = env.client.get_orchestration_state(instance_id)
        assert state is not None and state.runtime_status is ot.OrchestrationStatus.RUNNING
        assert env.now() == START


def test_auto_skip_jumps_without_a_wait() -> None:
    with TimeSkippingEnvironment(app, start=START, auto_skip=True) as env:
        instance_id = env.client.schedule_new_orchestration(sleeper, input=10)
        plain = ot.Client(env.provider)  # its waits do not ask for skipping
        state = plain.wait_for_orchestration_completion(instance_id, timeout=10)
    assert state.output == (START + timedelta(days=10)).isoformat()


def test_advance_lets_a_test_send_events_at_chosen_times() -> None:
    with TimeSkippingEnvironment(app, start=START) as env:
        early = env.client.schedule_new_orchestration(wait_or_timeout, input=24)
        late = env.client.schedule_new_orchestration(wait_or_timeout, input=24)
        env.advance(timedelta(hours=12))
        env.client.raise_orchestration_event(early, "go", data="at noon")
        env.advance(timedelta(hours=13))
        env.client.raise_orchestration_event(late, "go", data="too late")
        env.wait_until_idle()
        assert env.now() == START + timedelta(hours=25)
        early_state = env.client.get_orchestration_state(early)
        late_state = env.client.get_orchestration_state(late)
    assert early_state is not None and early_state.output == ["event", "at noon"]
    assert late_state is not None and late_state.output == ["timeout", None]


def test_sleep_until_runs_each_timer_at_its_own_time() -> None:
    with TimeSkippingEnvironment(app, start=START) as env:
        ids = [env.client.schedule_new_orchestration(sleeper, input=d) for d in (1, 2, 5)]
        env.sleep_until(START + timedelta(days=3))
        states = [env.client.get_orchestration_state(i) for i in ids]
        assert [s.output if s else None for s in states] == [
            (START + timedelta(days=1)).isoformat(),
            (START + timedelta(days=2)).isoformat(),
            None,
        ]
        assert env.now() == START + timedelta(days=3)
        with pytest.raises(ValueError, match="cannot go back"):
            env.sleep_until(START)


def test_on_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "skipping.db"
    with TimeSkippingEnvironment(app, start=START, sqlite_path=path) as env:
        instance_id = env.client.schedule_new_orchestration(sleeper, input=30)
        state = env.client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state.output == (START + timedelta(days=30)).isoformat()
    assert path.exists()
    # The file is an ordinary SQLite task hub: a real provider reads the finished instance.
    provider = SqliteProvider(path)
    try:
        record = ot.Client(provider).get_orchestration_state(instance_id)
    finally:
        provider.close()
    assert record is not None and record.runtime_status is ot.OrchestrationStatus.COMPLETED


class _SlowJob(BaseHTTPRequestHandler):
    """A job that answers 202 with ``Retry-After: 3600`` twice, then 200."""

    polls = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).polls += 1
        done = type(self).polls >= 3
        body = json.dumps({"polls": type(self).polls}).encode()
        self.send_response(200 if done else 202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if not done:
            self.send_header("Location", self.path)
            self.send_header("Retry-After", "3600")
        self.end_headers()
        self.wfile.write(body)


@app.orchestrator
def poll_job(ctx: ot.OrchestrationContext, url: str) -> Any:
    response = yield ctx.call_http("GET", url)
    return [response.status_code, ctx.current_utc_datetime.isoformat()]


def test_call_http_polls_an_hour_apart_complete_at_once() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowJob)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with TimeSkippingEnvironment(app, start=START) as env:
            started = time.perf_counter()
            instance_id = env.client.schedule_new_orchestration(
                poll_job, input=f"http://127.0.0.1:{server.server_port}/job"
            )
            state = env.client.wait_for_orchestration_completion(instance_id, timeout=30)
            elapsed = time.perf_counter() - started
    finally:
        server.shutdown()
    assert state.output == [200, (START + timedelta(hours=2)).isoformat()]
    assert elapsed < 5, f"took {elapsed:.2f}s"


def test_the_skipping_wrapper_passes_dead_letters_through_to_its_provider() -> None:
    from ostinato.history import ExecutionStarted, TaskCompleted
    from ostinato.provider import (
        ActivityTask,
        InstanceRecord,
        OrchestrationCheckpoint,
        OrchestrationMessage,
        ReuseIdPolicy,
    )
    from ostinato.status import OrchestrationStatus
    from ostinato.testing.clock import VirtualClock
    from ostinato.testing.skipping import SkippingProvider

    inner = ot.InMemoryProvider()
    clock = VirtualClock()
    wrapper = SkippingProvider(inner, clock)
    now = clock.now()
    record = InstanceRecord("i", "orch", "e", OrchestrationStatus.PENDING, now, now)
    start = OrchestrationMessage("i", ExecutionStarted(name="orch", execution_id="e"), "e")
    wrapper.create_instance(record, start, ReuseIdPolicy.REPLACE_TERMINAL)
    item = wrapper.lock_next_orchestration_work_item("w", timedelta(minutes=1))
    assert item is not None
    task = ActivityTask("i", "e", 0, "act")
    wrapper.complete_orchestration_work_item(
        item, OrchestrationCheckpoint(instance=None, activity_tasks=[task])
    )
    activity = wrapper.lock_next_activity_work_item("w", timedelta(minutes=1))
    assert activity is not None
    result = OrchestrationMessage("i", TaskCompleted(task_scheduled_id=0), "e")
    letter = wrapper.dead_letter_activity_task(activity, "unreadable", result)
    assert letter is not None and letter.kind is ot.DeadLetterKind.ACTIVITY_TASK
    assert wrapper.list_dead_letters() == inner.list_dead_letters() == [letter]
    assert wrapper.get_dead_letter(letter.id) == letter
    assert wrapper.retry_dead_letter(letter.id)
    assert wrapper.lock_next_activity_work_item("w", timedelta(minutes=1)) is not None
    assert wrapper.list_dead_letters() == []
