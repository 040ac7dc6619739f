"""The PostgreSQL provider's contract behaviour on a real server, beyond the conformance suite:
several provider objects (as several processes would have) on one hub, SKIP LOCKED claiming,
schemas per hub, bulk purge and paging, large payloads, Unicode ids, concurrent setup."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import ostinato as ot
import pytest
from ostinato.clock import utcnow
from ostinato.errors import InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.provider import ReuseIdPolicy
from ostinato.relational import Transaction
from ostinato.status import OrchestrationStatus
from ostinato_conformance.support import (
    activity_task,
    consume,
    create,
    event_message,
    lock_orchestration,
    new_record,
    start_message,
)
from ostinato_postgres import PostgresProvider

from .conftest import ProviderFactory, new_hub

SHORT = timedelta(milliseconds=400)


def test_lock_complete_and_double_complete(provider: PostgresProvider) -> None:
    create(provider, "i1")
    item = lock_orchestration(provider)
    assert item is not None and item.instance_id == "i1"
    assert provider.lock_next_orchestration_work_item("w2", SHORT) is None
    consume(provider, item, runtime_status=OrchestrationStatus.RUNNING)
    with pytest.raises(WorkItemLockLost):
        consume(provider, item)
    record = provider.get_instance("i1")
    assert record is not None and record.runtime_status is OrchestrationStatus.RUNNING
    assert len(provider.get_history("i1")) == 1


def test_abandon_hands_messages_out_again(provider: PostgresProvider) -> None:
    create(provider, "i1")
    item = lock_orchestration(provider)
    assert item is not None
    provider.abandon_orchestration_work_item(item)
    again = lock_orchestration(provider, "w2")
    assert again is not None and again.dequeue_count == 1  # an abandon is not counted
    assert [m.message_id for m in again.messages] == [m.message_id for m in item.messages]
    with pytest.raises(WorkItemLockLost):
        provider.abandon_orchestration_work_item(item)


def test_expired_lock_is_taken_and_the_stale_worker_loses(provider: PostgresProvider) -> None:
    create(provider, "i1")
    stale = provider.lock_next_orchestration_work_item("w1", SHORT)
    assert stale is not None
    time.sleep(SHORT.total_seconds() + 0.1)
    fresh = provider.lock_next_orchestration_work_item("w2", timedelta(minutes=1))
    assert fresh is not None and fresh.instance_id == "i1"
    with pytest.raises(WorkItemLockLost):
        provider.renew_orchestration_work_item_lock(stale, SHORT)
    with pytest.raises(WorkItemLockLost):
        consume(provider, stale)
    consume(provider, fresh)
    assert len(provider.get_history("i1")) == 1


def test_renewal_keeps_the_lock(provider: PostgresProvider) -> None:
    create(provider, "i1")
    item = provider.lock_next_orchestration_work_item("w1", SHORT)
    assert item is not None
    for _ in range(3):
        time.sleep(SHORT.total_seconds() / 2)
        provider.renew_orchestration_work_item_lock(item, SHORT)
    assert provider.lock_next_orchestration_work_item("w2", SHORT) is None
    consume(provider, item)


def test_activity_lock_renew_and_loss(provider: PostgresProvider) -> None:
    record = create(provider, "i1")
    item = lock_orchestration(provider)
    assert item is not None
    provider.complete_orchestration_work_item(
        item,
        ot.provider.OrchestrationCheckpoint(
            instance=None, activity_tasks=[activity_task(record, 1, '"x"')]
        ),
    )
    task = provider.lock_next_activity_work_item("w1", SHORT)
    assert task is not None and task.task.input == '"x"'
    provider.renew_activity_work_item_lock(task, SHORT)
    time.sleep(SHORT.total_seconds() + 0.1)
    taken = provider.lock_next_activity_work_item("w2", timedelta(minutes=1))
    assert taken is not None and taken.dequeue_count == 2
    with pytest.raises(WorkItemLockLost):
        provider.complete_activity_work_item(task, event_message("i1", 1))
    provider.complete_activity_work_item(taken, event_message("i1", 2))
    assert provider.lock_next_activity_work_item("w3", SHORT) is None


def test_timer_message_is_not_handed_out_early(provider: PostgresProvider) -> None:
    record = new_record("i1")
    due = utcnow() + timedelta(seconds=1.0)
    provider.create_instance(
        record, start_message(record, visible_at=due), ReuseIdPolicy.ERROR_IF_EXISTS
    )
    while utcnow() < due - timedelta(milliseconds=50):
        assert provider.lock_next_orchestration_work_item("w1", SHORT) is None
        time.sleep(0.05)
    item = lock_orchestration(provider, timeout=5)
    assert item is not None
    assert utcnow() >= due


def test_skip_locked_claims_distinct_instances_concurrently(
    make_provider: ProviderFactory,
) -> None:
    hub = new_hub()
    providers = [make_provider(task_hub=hub) for _ in range(4)]
    for i in range(40):
        create(providers[0], f"i{i:02d}")
    claimed: list[str] = []
    guard = threading.Lock()

    def claim(p: PostgresProvider) -> None:
        while True:
            items = p.lock_next_orchestration_work_items("w", timedelta(minutes=1), 3)
            if not items:
                return
            with guard:
                claimed.extend(i.instance_id for i in items)

    threads = [threading.Thread(target=claim, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [f"i{i:02d}" for i in range(40)]


def test_twenty_concurrent_starts_make_one_instance(make_provider: ProviderFactory) -> None:
    hub = new_hub()
    providers = [make_provider(task_hub=hub, pool_max_size=5) for _ in range(4)]
    for p in providers:
        p.setup()
    for policy, seed_status in (
        (ReuseIdPolicy.REPLACE_TERMINAL, None),
        (ReuseIdPolicy.REPLACE_TERMINAL, OrchestrationStatus.COMPLETED),
    ):
        iid = f"singleton-{seed_status}"
        if seed_status is not None:
            create(providers[0], iid, status=seed_status)
        barrier = threading.Barrier(20)
        outcomes: list[str] = []
        guard = threading.Lock()

        def start(
            n: int,
            iid: str = iid,
            policy: ReuseIdPolicy = policy,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
            guard: threading.Lock = guard,
        ) -> None:
            record = new_record(iid, input=str(n))
            barrier.wait()
            try:
                providers[n % 4].create_instance(record, start_message(record), policy)
                result = "created"
            except InstanceAlreadyExistsError:
                result = "conflict"
            with guard:
                outcomes.append(result)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 19 + ["created"], outcomes
        item = lock_orchestration(providers[1])
        assert item is not None and len(item.messages) == 1
        consume(providers[1], item)


def test_concurrent_creates_in_one_process_share_a_transaction(provider: PostgresProvider) -> None:
    """Creates that arrive while another create's transaction runs go together in the next
    one (fails if each create took a transaction of its own)."""
    provider.setup()
    count = 8
    transactions: list[bool] = []
    inner = provider.transaction
    queued = provider._creates._waiting  # the creates waiting for the running batch

    @contextlib.contextmanager
    def counted(durable: bool) -> Iterator[Transaction]:
        transactions.append(durable)
        if len(transactions) == 1:  # hold the first create until the others wait
            deadline = time.monotonic() + 10
            while len(queued) < count - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        with inner(durable) as transaction:
            yield transaction

    provider.transaction = counted  # type: ignore[method-assign]
    threads = [
        threading.Thread(target=create, args=(provider, f"grouped-{n}")) for n in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del provider.transaction
    assert len(transactions) == 2  # the first create alone, then the other seven together
    for n in range(count):
        record = provider.get_instance(f"grouped-{n}")
        assert record is not None and record.runtime_status is OrchestrationStatus.PENDING


def test_task_hubs_are_isolated_schemas(make_provider: ProviderFactory) -> None:
    a, b = make_provider(), make_provider()
    assert a.schema != b.schema
    create(a, "same-id", input='"a"')
    create(b, "same-id", input='"b"')
    ra, rb = a.get_instance("same-id"), b.get_instance("same-id")
    assert ra is not None and rb is not None and (ra.input, rb.input) == ('"a"', '"b"')
    item = lock_orchestration(a)
    assert item is not None
    consume(a, item, runtime_status=OrchestrationStatus.COMPLETED)
    assert a.lock_next_orchestration_work_item("w", SHORT) is None
    other = lock_orchestration(b)
    assert other is not None and other.instance is not None
    assert other.instance.input == '"b"'


def test_concurrent_setup_of_a_new_hub(make_provider: ProviderFactory) -> None:
    hub = new_hub()
    providers = [make_provider(task_hub=hub, pool_max_size=2) for _ in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(providers))

    def setup(p: PostgresProvider) -> None:
        barrier.wait()
        try:
            p.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=setup, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    create(providers[3], "x")
    assert providers[5].get_instance("x") is not None


def test_purge_of_many_instances_in_bounded_batches(provider: PostgresProvider) -> None:
    client = ot.Client(provider)
    count = 1203
    for i in range(count):
        create(provider, f"p{i:05d}", status=OrchestrationStatus.COMPLETED)
    create(provider, "still-running", status=OrchestrationStatus.RUNNING)
    result = client.purge_orchestrations_by(runtime_status=[OrchestrationStatus.COMPLETED])
    assert result.deleted_instance_count == count
    page = provider.query_instances(ot.provider.InstanceQuery(page_size=10))
    assert [r.instance_id for r in page.items] == ["still-running"]
    # Inbox and queue rows went with the records: only the running one's start is left.
    item = lock_orchestration(provider)
    assert item is not None and item.instance_id == "still-running"


def test_query_paging_returns_each_instance_once_in_id_order(provider: PostgresProvider) -> None:
    ids = [f"q-{i:03d}" for i in range(0, 250)] + ["Q-upper", "q-ü", "q-日本"]
    for iid in ids:
        create(provider, iid, name="alpha" if iid.endswith("7") else "beta")
    seen: list[str] = []
    token = None
    while True:
        page = provider.query_instances(
            ot.provider.InstanceQuery(
                instance_id_prefix="q-", page_size=37, continuation_token=token
            )
        )
        seen += [r.instance_id for r in page.items]
        token = page.continuation_token
        if token is None:
            break
    assert seen == sorted(i for i in ids if i.startswith("q-"))
    alpha = provider.query_instances(ot.provider.InstanceQuery(name_prefix="al", page_size=500))
    assert {r.instance_id for r in alpha.items} == {i for i in ids if i.endswith("7")}


@pytest.mark.parametrize("size", [1_000_000, 10 * 1024 * 1024])
def test_large_payloads_round_trip(provider: PostgresProvider, size: int) -> None:
    payload = '"' + ("€ab" * (size // 5))[: size - 2] + '"'
    create(provider, "big", input=payload)
    record = provider.get_instance("big")
    assert record is not None and record.input == payload
    item = lock_orchestration(provider)
    assert item is not None
    consume(provider, item, output=payload)
    record = provider.get_instance("big")
    assert record is not None and record.output == payload
    history = provider.get_history("big")
    assert getattr(history[0], "input", None) == payload


def test_unicode_ids_round_trip_end_to_end(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    app = ot.App()

    @app.activity
    def echo(ctx: ot.ActivityContext, value: str) -> str:
        return value

    @app.orchestrator
    def orch(ctx: ot.OrchestrationContext, value: str):  # type: ignore[no-untyped-def]
        return (yield ctx.call_activity(echo, input=value))

    ids = ["ünïcødé-ìd", "日本語の識別子", "emoji-🎼-🎵", "ΑΒΓ", "trailing space ", "a b"]
    client = ot.Client(provider)
    with ot.Worker(app, provider, max_poll_interval=0.1):
        for iid in ids:
            client.schedule_new_orchestration(orch, input=iid, instance_id=iid)
        for iid in ids:
            state = client.wait_for_orchestration_completion(iid, timeout=30)
            assert state.instance_id == iid
            assert ot.raise_if_failed(state).output == iid
    listed = provider.query_instances(ot.provider.InstanceQuery(page_size=100))
    assert sorted(r.instance_id for r in listed.items) == sorted(ids)


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ot.ConfigurationError, match="dsn"):
        PostgresProvider("")
    with pytest.raises(ot.ConfigurationError, match="schema"):
        PostgresProvider("host=/nowhere", task_hub="has-dash")
    assert PostgresProvider("host=/nowhere", task_hub="has-dash", schema="hub_x").schema == "hub_x"


def test_unreachable_server_is_a_provider_error() -> None:
    provider = PostgresProvider(
        "host=127.0.0.1 port=1 user=nobody dbname=none", connect_timeout=2, listen=False
    )
    with pytest.raises(ot.ProviderError, match="PostgreSQL"):
        provider.setup()
    provider.close()


def test_pooler_friendly_settings_run_end_to_end(make_provider: ProviderFactory) -> None:
    # What a transaction-mode pooler (PgBouncer) needs: no server-side prepared statements,
    # no LISTEN; idle workers then poll.
    provider = make_provider(prepared_statements=False, listen=False)
    hello = __import__("examples.hello_cities", fromlist=["main"])
    assert hello.main(provider) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert provider._listener is None
