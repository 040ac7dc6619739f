"""The storage-provider contract implemented once on SQL, for every transactional engine.

:class:`RelationalProvider` holds all of the contract's logic; an engine's provider supplies
a :class:`~ostinato.relational.dialect.Dialect` and two public hooks:
:meth:`~RelationalProvider.transaction` (a :class:`~ostinato.relational.connection.Transaction`
around a DB-API cursor, committed on a clean exit, rolled back on an exception) and
:meth:`~RelationalProvider.read` (a cursor for reads); it may override
:meth:`~RelationalProvider.guard_create`. The toolkit wraps each transaction: it wakes waiters
once the commit is visible, and reports how a group commit's last transaction ended
(:class:`BatchOutcome`, what :class:`~ostinato.relational.retry.RetriesTransientErrors` retries
on). Every call is one transaction. Locks are checked by row
state inside the transaction that acts on them (``lock_token`` matches and ``visible_at``,
the lock's expiry, is still ahead), never read-then-write across transactions.

Batched calls (``lock_next_*_work_items``, ``complete_*_work_items``) claim or commit many
items in one transaction (group commit), as a few multi-row statements. The statements of a
commit are built before the transaction starts, so the write lock is held only for the
database's own work. A completion batch checks every item's lock first; items whose lock is
gone get ``WorkItemLockLost`` and the others are applied together. If that fails for another
reason, the transaction is redone with each item under its own savepoint, so that one item's
error never undoes another's success.

Idle polls don't take the write lock: after a claim that found nothing, a claim first looks
with a read, until this provider writes something that may add work of that kind (a message
for an instance, an activity task): then work is likely, and the look would be one statement
more on every step of a busy worker.

Claims, renewals, abandons and activity results are not forced to disk
(``transaction(durable=False)``): losing a claim, renewal or abandon in a crash only means a lock
that was never taken or released, and losing an activity result means the activity runs again,
as it would after a crash just before the result's commit (activities run at least once).
Commits are ordered, so the next durable commit, such as the checkpoint of the step that
consumes the result, syncs them too.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from types import TracebackType
from typing import Any, TypeVar

from ostinato import history
from ostinato.errors import InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityClaim,
    ActivityTask,
    ActivityWorkItem,
    DeadLetter,
    DeadLetterKind,
    InstanceQuery,
    InstanceRecord,
    InstanceSnapshot,
    OrchestrationCheckpoint,
    OrchestrationClaim,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ResultStep,
    ReuseIdPolicy,
    StorageProvider,
    Work,
    new_lock_token,
)
from ostinato.relational.connection import Cursor, Transaction
from ostinato.relational.dialect import Dialect
from ostinato.relational.leases import LeaseStatements
from ostinato.relational.migrations import migrate
from ostinato.relational.rows import from_micros, instance_record, instance_row, to_micros
from ostinato.relational.statements import (
    Statements,
    chunk_sizes,
    largest_chunk,
)
from ostinato.relational.transfer import BacklogStatements, TransferStatements
from ostinato.status import OrchestrationStatus

__all__ = ["BatchOutcome", "CreateRequest", "RelationalProvider", "Script"]

Item = TypeVar("Item")
Claimed = TypeVar("Claimed")
#: Statements to run, in order, with their parameters.
Script = list[tuple[str, Sequence[Any]]]
log = logging.getLogger("ostinato.relational")
_Completion = tuple[OrchestrationWorkItem, OrchestrationCheckpoint]
#: The arguments of one :meth:`RelationalProvider.create_instance` call.
CreateRequest = tuple[InstanceRecord, OrchestrationMessage, ReuseIdPolicy]
#: Most creates one ``create_instances`` transaction writes (bounds a transaction's size).
CREATE_BATCH = 1000


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True)
class BatchOutcome:
    """How a group-commit call ended."""

    #: Per item: the exception it failed with, or ``None``.
    errors: list[Exception | None]
    #: The error the call's last transaction failed with (``None``: it committed). Only a
    #: failed last transaction may be run again: a batch whose first attempt failed but
    #: whose second committed must never be re-applied.
    failure: Exception | None = None


class RelationalProvider(StorageProvider):
    """A :class:`~ostinato.provider.StorageProvider` on a SQL database (see the module doc)."""

    def __init__(self, dialect: Dialect, task_hub: str) -> None:
        self.dialect = dialect
        self.task_hub = task_hub
        self._sql = Statements(dialect)
        self._transfer_sql = TransferStatements(dialect)
        self._lease_sql = LeaseStatements(dialect)
        self._backlog_sql = BacklogStatements(dialect)
        self._largest: dict[int, int] = {}
        #: Per kind of work (named by its peek statement): how many of this provider's writes
        #: may have added some (messages enqueued, activities scheduled), and that count when
        #: a claim last found nothing.
        self._work_added: dict[str, int] = {}
        self._found_nothing_at: dict[str, int] = {}

    # -- what an engine supplies ----------------------------------------------------------
    @abstractmethod
    def transaction(self, durable: bool) -> AbstractContextManager[Transaction]:
        """A write transaction: committed when the context exits cleanly, rolled back when it
        exits with an exception (which then propagates, mapped to ostinato's errors).

        ``durable=False`` marks a transaction whose loss in a crash is harmless (claiming,
        renewing or releasing a lock: a lost claim is a lock never taken; an activity
        result: the activity runs again, which at-least-once allows); the engine may then
        skip forcing its commit to disk (SQLite's ``synchronous``, PostgreSQL's
        ``synchronous_commit``). Commits are ordered, so a later durable commit makes it
        durable too.

        On a clean exit the commit must be visible to other connections. An engine whose
        commit becomes visible before it is durable (SQLite's group commit) sets
        :attr:`Transaction.wait_durable` instead of waiting in the context manager: the
        toolkit first wakes whoever waits for the change (so that the next step runs while
        this call still waits for the disk; commits are ordered, so whatever that step
        commits can only be durable together with this) and then calls it.

        Map transient driver errors (deadlocks, serialization failures) to
        :class:`~ostinato.relational.retry.TransientDatabaseError`.
        """

    @abstractmethod
    def read(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads (each statement sees committed data)."""

    def guard_create(self, cursor: Cursor, instance_ids: Sequence[str]) -> None:
        """Run first in every transaction that creates the instances ``instance_ids``.

        The create's reuse-id check locks the instance row it reads
        (:attr:`~ostinato.relational.dialect.RowLock.HOLD`), but some engines cannot lock a
        row that does not exist yet: they serialize creates of one id here instead
        (PostgreSQL takes a transaction-scoped advisory lock per id). Default: nothing.
        """

    # -- the toolkit's transactions -------------------------------------------------------
    def _write(
        self,
        durable: bool = True,
        *,
        notify: Work | None = None,
        status_changed: Collection[str] | Mapping[str, OrchestrationStatus] | None = None,
        visible: Callable[[], None] | None = None,
    ) -> AbstractContextManager[Cursor]:
        """A cursor inside :meth:`transaction`; with ``notify`` (the kinds of work the write
        may make claimable), once the transaction has committed, call
        ``self.changes.notify(status_changed, work=notify)`` (``status_changed`` names the
        instances whose runtime status it may change, ``None`` if unknown), then
        ``visible()``, both before waiting for the commit to be durable."""
        return _Write(self, durable, notify, status_changed, visible)

    def _read(self) -> AbstractContextManager[Cursor]:
        return self.read()

    def _now_micros(self) -> int:
        return to_micros(self.now())

    # -- statement building ---------------------------------------------------------------
    def _rows(
        self, script: Script, make: Callable[[int], str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append multi-row statements for ``rows`` (power-of-two chunks) to ``script``."""
        if not rows:
            return
        width = len(rows[0])
        largest = self._largest.get(width)
        if largest is None:
            largest = self._largest[width] = largest_chunk(self.dialect, width)
        start = 0
        for size in chunk_sizes(len(rows), largest):
            chunk = rows[start : start + size]
            script.append((make(size), list(chain.from_iterable(chunk))))
            start += size

    def _in(self, make: Callable[[int], str], head: Sequence[Any], values: Sequence[Any]) -> Script:
        """Statements for ``values`` in an ``IN`` list after ``head`` parameters, padded to a
        power of two by repeating the last value (so few distinct statements exist)."""
        largest = self._largest.get(-1)
        if largest is None:
            largest = self._largest[-1] = largest_chunk(self.dialect, 1)
        script: Script = []
        for start in range(0, len(values), largest):
            chunk = list(values[start : start + largest])
            padded = 1 << (len(chunk) - 1).bit_length()
            chunk += [chunk[-1]] * (padded - len(chunk))
            script.append((make(padded), [*head, *chunk]))
        return script

    @staticmethod
    def _run(cur: Cursor, script: Script) -> None:
        execute_script = getattr(cur, "execute_script", None)
        if execute_script is not None and len(script) > 1:
            execute_script(script)  # e.g. one pipelined round trip (see Cursor)
            return
        for sql, params in script:
            cur.execute(sql, params)

    @staticmethod
    def _fetch(cur: Cursor, script: Script) -> list[Any]:
        rows: list[Any] = []
        for sql, params in script:
            cur.execute(sql, params)
            rows.extend(cur.fetchall())
        return rows

    def _enqueue(
        self,
        script: Script,
        messages: Sequence[OrchestrationMessage],
        now: int,
        may_add_work: bool = True,
    ) -> None:
        """Append the statements that enqueue ``messages`` (immediate ones visible at ``now``);
        ``may_add_work=False``: the caller notes the work they add itself."""
        if not messages:
            return
        if may_add_work:
            self._work_may_be_added(self._sql.queue_peek)
        hub = self.task_hub
        rows = []
        earliest: dict[str, int] = {}
        for message in messages:
            visible = now if message.visible_at is None else to_micros(message.visible_at)
            rows.append((hub, message.instance_id, visible, message.to_json()))
            current = earliest.get(message.instance_id)
            if current is None or visible < current:
                earliest[message.instance_id] = visible
        self._rows(script, self._sql.inbox_insert, rows)
        self._rows(
            script, self._sql.queue_upsert, [(hub, iid, at, 0) for iid, at in earliest.items()]
        )

    def _release(self, instance_ids: Sequence[str], now: int) -> Script:
        """Unlock instances; each becomes claimable at its earliest remaining message."""
        return self._in(self._sql.queue_release, (now, self.task_hub), instance_ids)

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create or migrate the schema (idempotent; concurrent callers serialize)."""
        with self._write() as cursor:
            migrate(cursor, self.dialect, self._now_micros())

    # -- client side ----------------------------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        self._create_one(record, start, policy)

    def _create_one(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        """One create in its own transaction."""
        scripts = self._create_scripts(record, start)
        for attempt in range(3):
            try:
                with self._write(
                    notify=Work.of_messages([start]),
                    status_changed={record.instance_id: record.runtime_status},
                ) as cur:
                    self.guard_create(cur, (record.instance_id,))
                    self._create_in(cur, record.instance_id, policy, scripts)
                return
            except InstanceAlreadyExistsError:
                raise
            except Exception as exc:
                # Engines whose isolation lets two creates both see "no row" report the loser
                # as a key violation: look again, and let the policy decide.
                if attempt < 2 and self.dialect.is_unique_violation(exc):
                    continue
                raise

    def _create_scripts(
        self, record: InstanceRecord, start: OrchestrationMessage
    ) -> tuple[Script, Script]:
        """The statements that create ``record`` with its start message: for a new id (a
        plain insert, so two creates that both saw no row can't both win), and replacing an
        existing instance (an upsert under the status check's row lock)."""
        s, row = self._sql, [(self.task_hub, *instance_row(record))]
        messages: Script = []
        self._enqueue(messages, [start], self._now_micros())
        insert: Script = []
        self._rows(insert, s.instances_insert, row)
        replace: Script = []
        self._rows(replace, s.instances_upsert, row)
        return insert + messages, replace + messages

    def _create_in(
        self, cur: Cursor, instance_id: str, policy: ReuseIdPolicy, scripts: tuple[Script, Script]
    ) -> None:
        """Check-and-create one instance inside the caller's write transaction."""
        s, hub = self._sql, self.task_hub
        cur.execute(s.instance_status, (hub, instance_id))
        rows = cur.fetchall()
        if rows:
            status = OrchestrationStatus(rows[0][0])
            if status not in policy.replaceable_statuses:
                raise InstanceAlreadyExistsError(instance_id, status)
            # The replaced instance's history, messages and lock go with it (its lock
            # holder, if any, then gets WorkItemLockLost).
            cur.execute(s.history_delete, (hub, instance_id))
            cur.execute(s.inbox_delete, (hub, instance_id))
            cur.execute(s.queue_reset, (hub, instance_id))
        self._run(cur, scripts[1] if rows else scripts[0])

    def _create_request(self, cur: Cursor, request: CreateRequest) -> None:
        record, start, policy = request
        self._create_in(cur, record.instance_id, policy, self._create_scripts(record, start))

    def _fresh_creates(self, requests: Sequence[CreateRequest]) -> Script | None:
        """Multi-row inserts creating every request, for the usual case of new, distinct ids;
        ``None`` if two requests share an id or one can't be encoded."""
        if len({record.instance_id for record, _, _ in requests}) < len(requests):
            return None
        script: Script = []
        try:
            self._rows(
                script,
                self._sql.instances_insert,
                [(self.task_hub, *instance_row(record)) for record, _, _ in requests],
            )
            self._enqueue(script, [start for _, start, _ in requests], self._now_micros())
        except Exception:  # noqa: BLE001 - the per-request path reports it to its caller
            return None
        return script

    def _create_many(self, requests: Sequence[CreateRequest]) -> list[Exception | None]:
        """Several creates in one transaction; per request, the exception it failed with or
        ``None``. New, distinct ids (the usual case) take a few multi-row inserts; otherwise
        each request runs under its own savepoint.

        For an engine that serializes writes, to run concurrent creates together (see
        :class:`~ostinato.relational.grouping.CallGroup`). A request that hits a key
        violation is tried again on its own.
        """
        if len(requests) == 1:
            try:
                self._create_one(*requests[0])
            except Exception as exc:  # noqa: BLE001 - reported to its caller
                return [exc]
            return [None]
        fresh = self._fresh_creates(requests)
        ids = [record.instance_id for record, _, _ in requests]
        results: list[Exception | None] = [None] * len(requests)
        try:
            work = Work.of_messages(start for _, start, _ in requests)
            statuses = {record.instance_id: record.runtime_status for record, _, _ in requests}
            with self._write(notify=work, status_changed=statuses) as cur:
                self.guard_create(cur, sorted(set(ids)))
                check = self._in(self._sql.instance_ids_in, (self.task_hub,), ids)
                if fresh is not None and not self._fetch(cur, check):
                    self._run(cur, fresh)
                    return results
                # Some id exists already, repeats or can't be encoded: a savepoint each.
                for index, request in enumerate(requests):
                    results[index] = self._under_savepoint(cur, self._create_request, cur, request)
        except Exception as exc:  # noqa: BLE001 - nothing was committed
            return [exc if r is None else r for r in results]
        for index, error in enumerate(results):
            if error is not None and self.dialect.is_unique_violation(error):
                try:
                    self._create_one(*requests[index])
                    results[index] = None
                except Exception as exc:  # noqa: BLE001 - reported to its caller
                    results[index] = exc
        return results

    def create_instances(self, requests: Sequence[CreateRequest]) -> list[Exception | None]:
        """Creates in transactions of up to :data:`CREATE_BATCH` requests each (see
        :meth:`_create_many`)."""
        results: list[Exception | None] = []
        for start in range(0, len(requests), CREATE_BATCH):
            results += self._create_many(requests[start : start + CREATE_BATCH])
        return results

    def send_message(self, message: OrchestrationMessage) -> None:
        script: Script = []
        self._enqueue(script, [message], self._now_micros())
        # A message changes no status itself; the step that consumes it may (and says so).
        with self._write(notify=Work.of_messages([message]), status_changed=()) as cur:
            self._run(cur, script)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._read() as cur:
            cur.execute(self._sql.instance_select, (self.task_hub, instance_id))
            rows = cur.fetchall()  # (not fetchone: a finished statement ends its read)
        return instance_record(rows[0]) if rows else None

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._read() as cur:
            cur.execute(self._sql.history_select, (self.task_hub, instance_id))
            rows = cur.fetchall()
        return [event for (text,) in rows for event in history.loads_many(text)]

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        statuses = sorted(s.value for s in query.runtime_status or ())
        if query.runtime_status is not None and not statuses:
            return Page(items=[])
        params: list[Any] = [self.task_hub]
        if query.continuation_token is not None:
            params.append(query.continuation_token)
        if query.instance_id_prefix is not None:
            params += [len(query.instance_id_prefix), query.instance_id_prefix]
        if query.name_prefix is not None:
            params += [len(query.name_prefix), query.name_prefix]
        params += statuses
        if query.created_from is not None:
            params.append(to_micros(query.created_from))
        if query.created_to is not None:
            params.append(to_micros(query.created_to))
        params.append(query.page_size + 1)
        sql = self._sql.query(
            after=query.continuation_token is not None,
            id_prefix=query.instance_id_prefix is not None,
            name_prefix=query.name_prefix is not None,
            statuses=len(statuses),
            created_from=query.created_from is not None,
            created_to=query.created_to is not None,
        )
        with self._read() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        records = [instance_record(row) for row in rows[: query.page_size]]
        token = records[-1].instance_id if len(rows) > query.page_size else None
        return Page(items=records, continuation_token=token)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        statuses = sorted({s.value for s in only_if_status})
        if not statuses:
            return False
        s, key = self._sql, (self.task_hub, instance_id)
        with self._write() as cur:
            cur.execute(s.instance_delete_if(len(statuses)), (*key, *statuses))
            if cur.rowcount != 1:
                return False
            for statement in (
                s.history_delete,
                s.inbox_delete,
                s.queue_delete,
                s.activity_delete,
                s.dead_letters_delete,
            ):
                cur.execute(statement, key)
        return True

    # -- state transfer -------------------------------------------------------------------
    def export_state(self) -> Iterator[InstanceSnapshot]:
        after: str | None = None
        while page := self._export_page(after, 100):
            yield from page
            after = page[-1].instance_id

    def _export_page(self, after: str | None, limit: int) -> list[InstanceSnapshot]:
        t, hub, start = self._transfer_sql, self.task_hub, after or ""
        with self._read() as cur:
            cur.execute(t.ids_after, (hub, start, hub, start, hub, start, limit))
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                return []
            records = self._fetch(cur, self._in(self._sql.instances_in, (hub,), ids))
            events = self._fetch(cur, self._in(t.history_in, (hub,), ids))
            bodies = self._fetch(cur, self._in(t.inbox_in, (hub,), ids))
            tasks = self._fetch(cur, self._in(t.activities_in, (hub,), ids))
        by_id = {row[0]: instance_record(row) for row in records}
        histories: dict[str, list[HistoryEvent]] = {}
        for iid, text in events:
            histories.setdefault(iid, []).extend(history.loads_many(text))
        messages: dict[str, list[OrchestrationMessage]] = {}
        for iid, body in bodies:
            messages.setdefault(iid, []).append(OrchestrationMessage.from_json(body))
        activities: dict[str, list[ActivityTask]] = {}
        for iid, execution_id, task_id, name, payload in tasks:
            activities.setdefault(iid, []).append(
                ActivityTask(iid, execution_id, task_id, name, payload)
            )
        return [
            InstanceSnapshot(
                instance_id=iid,
                record=by_id.get(iid),
                history=histories.get(iid, []),
                messages=messages.get(iid, []),
                activity_tasks=activities.get(iid, []),
            )
            for iid in ids
        ]

    def import_snapshot(self, snapshot: InstanceSnapshot) -> None:
        s, hub, iid, now = self._sql, self.task_hub, snapshot.instance_id, self._now_micros()
        script: Script = []
        if snapshot.record is not None:
            self._rows(script, s.instances_insert, [(hub, *instance_row(snapshot.record))])
        if snapshot.history:
            self._rows(script, s.history_insert, [(hub, iid, history.dumps_many(snapshot.history))])
        if snapshot.activity_tasks:
            self._work_may_be_added(s.activity_peek)
        self._rows(
            script,
            s.activity_insert,
            [
                (hub, iid, t.execution_id, t.task_id, t.name, t.input, now, 0)
                for t in snapshot.activity_tasks
            ],
        )
        self._enqueue(script, snapshot.messages, now)
        with self._write(notify=Work.ALL, status_changed=(iid,)) as cur:
            cur.execute(self._transfer_sql.holds_id, (hub, iid) * 3)
            if cur.fetchall():
                raise InstanceAlreadyExistsError(iid)
            self._run(cur, script)

    def active_workers(self) -> list[str]:
        """The workers holding a lock now (an idle worker holds none)."""
        now = self._now_micros()
        with self._read() as cur:
            cur.execute(self._transfer_sql.lock_owners, (self.task_hub, now) * 2)
            return sorted({row[0] for row in cur.fetchall()})

    def backlog(self) -> dict[str, int]:
        sql, params = self._backlog_sql, (self.task_hub, self._now_micros())
        counts: dict[str, int] = {}
        with self._read() as cur:
            for kind, statement in (
                ("orchestrations", sql.orchestrations),
                ("activities", sql.activities),
            ):
                cur.execute(statement, params)
                counts[kind] = int(cur.fetchall()[0][0])
        return counts

    # -- leases ---------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, duration: timedelta) -> bool:
        sql, hub = self._lease_sql, self.task_hub
        try:
            with self._write(durable=False) as cur:
                now = self._now_micros()
                expires = now + _micros(duration)
                cur.execute(sql.select, (hub, name))
                rows = cur.fetchall()
                if not rows:
                    cur.execute(sql.insert, (hub, name, owner, expires))
                    return True
                holder, held_until = rows[0]
                if holder != owner and held_until > now:
                    return False
                cur.execute(sql.update, (owner, expires, hub, name))
                return True
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                return False  # another worker created it first
            raise

    def release_lease(self, name: str, owner: str) -> None:
        with self._write(durable=False) as cur:
            cur.execute(self._lease_sql.delete, (self.task_hub, name, owner))

    # -- group commit ---------------------------------------------------------------------
    def _commit_batch(
        self,
        batch: Sequence[Item],
        held: Callable[[Cursor, int], set[tuple[Any, str]]],
        key: Callable[[Item], tuple[Any, str]],
        lost: Callable[[Item], Exception],
        prepare: Callable[[list[Item]], Script],
        work: Work | None,
        durable: bool = True,
        status_changed: Collection[str] | Mapping[str, OrchestrationStatus] | None = None,
        then: Callable[[Cursor], None] | None = None,
        visible: Callable[[], None] | None = None,
    ) -> BatchOutcome:
        """Check every item's lock, then apply the held ones in one transaction.

        ``held(cursor, now)`` gives the (key, token) pairs still locked; ``key(item)`` an
        item's pair. ``prepare`` builds an item list's statements outside the transaction.
        ``work`` (what the batch may make claimable), ``durable`` and ``status_changed``: as
        for :meth:`_write`. ``then(cursor)`` runs last in every attempt's transaction;
        ``visible()`` once the one that commits is visible (see :meth:`_write`).
        If applying the whole batch fails, the transaction is retried with each item under
        its own savepoint, so one bad item never undoes the others. The outcome says how the
        last transaction ended.
        """
        results: list[Exception | None] = [None] * len(batch)
        prepared: Script | None
        try:
            prepared = prepare(list(batch))
        except Exception:  # noqa: BLE001 - an unencodable item: narrowed down below
            prepared = None
        for careful in (True,) if prepared is None else (False, True):
            results = [None] * len(batch)
            try:
                with self._write(
                    durable, notify=work, status_changed=status_changed, visible=visible
                ) as cur:
                    locked = held(cur, self._now_micros())
                    entries: list[tuple[int, Item]] = []
                    for index, item in enumerate(batch):
                        pair = key(item)
                        if pair in locked:
                            locked.discard(pair)
                            entries.append((index, item))
                        else:
                            results[index] = lost(item)
                    if entries and not careful:
                        ready = prepared if len(entries) == len(batch) else None
                        self._run(cur, ready or prepare([e for _, e in entries]))
                    elif entries:
                        self._apply_each(cur, entries, prepare, results)
                    if then is not None:
                        then(cur)
                break
            except Exception as exc:  # noqa: BLE001 - reported per item
                if careful:
                    return BatchOutcome([exc if r is None else r for r in results], exc)
        return BatchOutcome(results)

    def _apply_each(
        self,
        cur: Cursor,
        entries: list[tuple[int, Item]],
        prepare: Callable[[list[Item]], Script],
        results: list[Exception | None],
    ) -> None:
        """Apply each entry under its own savepoint, recording each failure in ``results``."""
        for index, entry in entries:
            results[index] = self._under_savepoint(cur, self._apply_one, cur, prepare, entry)

    def _apply_one(self, cur: Cursor, prepare: Callable[[list[Item]], Script], entry: Item) -> None:
        self._run(cur, prepare([entry]))

    def _under_savepoint(
        self, cur: Cursor, apply: Callable[..., None], *args: Any
    ) -> Exception | None:
        """``apply(*args)`` under a savepoint; on failure roll back to it, return the error."""
        d = self.dialect
        error: Exception | None = None
        cur.execute(d.savepoint("ostinato_item"))
        try:
            apply(*args)
        except Exception as exc:  # noqa: BLE001 - reported for this item only
            cur.execute(d.rollback_to_savepoint("ostinato_item"))
            error = exc
        release = d.release_savepoint("ostinato_item")
        if release:
            cur.execute(release)
        return error

    def _work_may_be_added(self, peek: str) -> None:
        """Note a write that may add work of ``peek``'s kind (see :meth:`_claim`)."""
        self._work_added[peek] = self._work_added.get(peek, 0) + 1

    def _claim(self, peek: str, max_count: int, lock: Callable[[], list[Claimed]]) -> list[Claimed]:
        """Run the claim ``lock`` of the kind of work ``peek`` looks for, if it is worth it.

        After a claim that got fewer than ``max_count`` (it took all there was), and with no
        write by this provider since that may add work of this kind, only if a read-only look
        finds some (so idle polls never take the write lock, and neither do polls woken by
        writes that add no such work); otherwise work is likely, and the claim runs straight
        away.
        """
        if max_count < 1:
            return []
        added = self._work_added.get(peek, 0)
        if self._found_nothing_at.get(peek) == added:
            with self._read() as cur:
                cur.execute(peek, (self.task_hub, self._now_micros(), 1))
                if not cur.fetchall():
                    return []
        items = lock()
        if len(items) < max_count:
            self._found_nothing_at[peek] = added
        else:
            self._found_nothing_at.pop(peek, None)
        return items

    # -- orchestration work items ---------------------------------------------------------
    def lock_next_orchestration_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        return self._claim(
            self._sql.queue_peek,
            max_count,
            lambda: self._lock_orchestrations(worker_id, lock_timeout, max_count),
        )

    def _lock_orchestrations(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[OrchestrationWorkItem]:
        with self._write(durable=False) as cur:
            now = self._now_micros()
            cur.execute(self._sql.queue_claim, (self.task_hub, now, max_count))
            locked = self._lock_candidates(cur, cur.fetchall(), worker_id, lock_timeout, now)
        return self._orchestration_items(locked)

    def _lock_candidates(
        self,
        cur: Cursor,
        candidates: list[tuple[str, int]],
        worker_id: str,
        lock_timeout: timedelta,
        now: int,
    ) -> _Locked:
        """Lock the claimable instances ``candidates`` (id, dequeue count) that have visible
        messages, inside a transaction; what to build their work items from."""
        s, hub = self._sql, self.task_hub
        # One token for the batch: a lock is (instance, token), and a batch holds each
        # instance once.
        token = new_lock_token()
        expires = now + _micros(lock_timeout)
        locked = _Locked(candidates, token, expires)
        if not candidates:
            return locked
        ids = [row[0] for row in candidates]
        messages = locked.messages
        visible = self._fetch(cur, self._in(s.inbox_visible_in, (hub, now), ids))
        for message_id, iid, body in visible:
            messages.setdefault(iid, []).append((message_id, body))
        if len(messages) < len(candidates):
            # Claimable through an expired lock but with only future messages: reschedule.
            self._run(cur, self._release([i for i in ids if i not in messages], now))
            ids = list(messages)
        if not ids:
            return locked
        self._run(cur, self._in(s.queue_lock, (expires, worker_id, token, hub), ids))
        rows = self._fetch(cur, self._in(s.instances_in, (hub,), ids))
        locked.records = {row[0]: row for row in rows}
        return locked

    def _orchestration_items(self, locked: _Locked) -> list[OrchestrationWorkItem]:
        """The work items of the instances ``locked`` locked (built after its commit)."""
        messages, records, token = locked.messages, locked.records, locked.token
        locked_until = from_micros(locked.expires)
        items = []
        for iid, dequeue_count in locked.candidates:
            found = messages.get(iid)
            if found is None:
                continue
            row = records.get(iid)
            decoded, consumed, undecodable = _decode_messages(found)
            items.append(
                OrchestrationWorkItem(
                    instance_id=iid,
                    messages=decoded,
                    instance=None if row is None else instance_record(row),
                    lock_token=token,
                    locked_until=locked_until,
                    dequeue_count=dequeue_count + 1,
                    # Undecodable messages are consumed with the item and moved into the dead
                    # letters by the same transaction that completes it.
                    dead_letters=[
                        DeadLetter("", DeadLetterKind.MESSAGE, iid, body, reason, locked_until)
                        for _, body, reason in undecodable
                    ],
                    provider_data=consumed + [message_id for message_id, _, _ in undecodable],
                )
            )
        return items

    def _last_dead_letter(self, cur: Cursor, instance_id: str) -> DeadLetter:
        """The newest dead letter of ``instance_id``: the one just inserted in this
        transaction (for a history, which holds the instance's lock, always; for an activity
        task, unless another task of the instance was moved aside at the same moment)."""
        cur.execute(self._sql.dead_letters_newest, (self.task_hub, instance_id, 1))
        return _dead_letter(cur.fetchall()[0])

    # -- dead letters ---------------------------------------------------------------------
    def dead_letter_history(self, item: OrchestrationWorkItem, reason: str) -> DeadLetter | None:
        s, hub = self._sql, self.task_hub
        with self._write(durable=True) as cur:
            rows = self._fetch(cur, self._in(s.queue_locks_in, (hub,), [item.instance_id]))
            now = self._now_micros()
            if not rows or rows[0][1] != item.lock_token or (rows[0][2] or 0) <= now:
                raise _lock_lost(item)
            cur.execute(s.history_rows, (hub, item.instance_id))
            texts = [text for _, text in cur.fetchall()]
            if not texts:
                return None
            body = json.dumps(texts, ensure_ascii=False)
            cur.execute(
                s.dead_letter_insert,
                (hub, item.instance_id, DeadLetterKind.HISTORY.value, body, reason, now),
            )
            cur.execute(s.history_delete, (hub, item.instance_id))
            return self._last_dead_letter(cur, item.instance_id)

    def dead_letter_activity_task(
        self, item: ActivityWorkItem, reason: str, result: OrchestrationMessage
    ) -> DeadLetter | None:
        s, hub = self._sql, self.task_hub
        script: Script = []
        self._enqueue(script, [result], self._now_micros())
        iid = item.task.instance_id
        with self._write(durable=True, notify=Work.of_messages([result]), status_changed=()) as cur:
            rows = self._fetch(cur, self._in(s.activity_locks_in, (hub,), [item.provider_data]))
            now = self._now_micros()
            if not rows or rows[0][1] != item.lock_token or (rows[0][2] or 0) <= now:
                raise _activity_lock_lost(item)
            body = item.task.to_json()
            values = (hub, iid, DeadLetterKind.ACTIVITY_TASK.value, body, reason, now)
            cur.execute(s.dead_letter_insert, values)
            self._run(cur, self._in(s.activity_delete_ids, (), [item.provider_data]))
            self._run(cur, script)
            return self._last_dead_letter(cur, iid)

    def list_dead_letters(
        self, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        with self._read() as cur:
            if instance_id is None:
                cur.execute(self._sql.dead_letters_select, (self.task_hub, limit))
            else:
                cur.execute(self._sql.dead_letters_of, (self.task_hub, instance_id, limit))
            return [_dead_letter(row) for row in cur.fetchall()]

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        key = _dead_letter_key(dead_letter_id)
        if key is None:
            return None
        with self._read() as cur:
            cur.execute(self._sql.dead_letter_select, (self.task_hub, key))
            rows = cur.fetchall()
        return _dead_letter(rows[0]) if rows else None

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        key = _dead_letter_key(dead_letter_id)
        if key is None:
            return False
        s, hub = self._sql, self.task_hub
        script: Script
        work = Work.ORCHESTRATIONS | Work.ACTIVITIES
        with self._write(durable=True, notify=work) as cur:
            cur.execute(s.dead_letter_select, (hub, key))
            rows = cur.fetchall()
            if not rows:
                return False
            cur.execute(s.dead_letter_delete, (hub, key))
            if cur.rowcount != 1:  # another retry or delete took it meanwhile
                return False
            letter = _dead_letter(rows[0])
            now = self._now_micros()
            iid = letter.instance_id
            if letter.kind is DeadLetterKind.HISTORY:
                cur.execute(s.history_delete, (hub, iid))
                script = []
                self._rows(
                    script, s.history_insert, [(hub, iid, t) for t in json.loads(letter.body)]
                )
                self._run(cur, script)
            elif letter.kind is DeadLetterKind.ACTIVITY_TASK:
                t = ActivityTask.from_json(letter.body)
                script = []
                self._rows(
                    script,
                    s.activity_insert,
                    [(hub, iid, t.execution_id, t.task_id, t.name, t.input, now, 0)],
                )
                self._work_may_be_added(s.activity_peek)
                self._run(cur, script)
            else:
                script = []
                self._rows(script, s.inbox_insert, [(hub, iid, now, letter.body)])
                self._rows(script, s.queue_upsert, [(hub, iid, now, 0)])
                self._work_may_be_added(s.queue_peek)
                self._run(cur, script)
        return True

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        key = _dead_letter_key(dead_letter_id)
        if key is None:
            return False
        with self._write(durable=True) as cur:
            cur.execute(self._sql.dead_letter_delete, (self.task_hub, key))
            return bool(cur.rowcount)

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        (error,) = self.complete_orchestration_work_items([(item, checkpoint)])
        if error is not None:
            raise error

    def complete_orchestration_work_items(
        self, batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]]
    ) -> list[Exception | None]:
        return self._complete_orchestrations(batch).errors

    def complete_and_claim_activities(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim,
    ) -> list[Exception | None]:
        return self._complete_orchestrations(batch, claim).errors

    def _complete_orchestrations(
        self,
        batch: Sequence[tuple[OrchestrationWorkItem, OrchestrationCheckpoint]],
        claim: ActivityClaim | None = None,
    ) -> BatchOutcome:
        if not batch:
            return BatchOutcome([])
        instance_ids = list(dict.fromkeys(item.instance_id for item, _ in batch))
        check = self._in(self._sql.queue_locks_in, (self.task_hub,), instance_ids)
        claims = _Claims.of(batch, claim, self._now_micros()) if claim is not None else None
        work = Work.of_checkpoints(checkpoint for _, checkpoint in batch)
        then: Callable[[Cursor], None] | None = None
        visible: Callable[[], None] | None = None
        if claims is not None:
            if claims.all_tasks:  # nothing is left for the pollers
                work &= ~Work.ACTIVITIES
            claimed_in = self._in(
                self._sql.activity_claimed_in, (self.task_hub, claims.token), instance_ids
            )

            def then(cur: Cursor) -> None:
                claims.rows = self._fetch(cur, claimed_in)

            visible = claims.hand_over

        def held(cur: Cursor, now: int) -> set[tuple[Any, str]]:
            return {
                (iid, token)
                for iid, token, expires in self._fetch(cur, check)
                if token is not None and expires is not None and expires > now
            }

        return self._commit_batch(
            batch,
            held,
            lambda pair: (pair[0].instance_id, pair[0].lock_token),
            lambda pair: _lock_lost(pair[0]),
            lambda pairs: self._checkpoint_script(pairs, claims),
            work,
            status_changed={
                item.instance_id: checkpoint.instance.runtime_status
                for item, checkpoint in batch
                if checkpoint.instance is not None
                and (
                    item.instance is None
                    or item.instance.runtime_status is not checkpoint.instance.runtime_status
                )
            },
            then=then,
            visible=visible,
        )

    def _checkpoint_script(self, pairs: list[_Completion], claims: _Claims | None = None) -> Script:
        """The statements that apply ``pairs`` (built outside the transaction: encoding the
        events is most of a commit's Python work); the tasks ``claims`` names are inserted
        locked."""
        s, hub, now = self._sql, self.task_hub, self._now_micros()
        script: Script = []
        consumed = [message_id for item, _ in pairs for message_id in item.provider_data]
        script += [
            (
                s.dead_letter_insert,
                (hub, item.instance_id, letter.kind.value, letter.body, letter.reason, now),
            )
            for item, _ in pairs
            for letter in item.dead_letters
        ]
        if consumed:
            script += self._in(s.inbox_delete_ids, (), consumed)
        resets = [item.instance_id for item, cp in pairs if cp.reset_history]
        if resets:
            script += self._in(s.histories_delete, (hub,), resets)
        self._rows(
            script,
            s.history_insert,
            [
                (hub, item.instance_id, history.dumps_many(cp.new_history))
                for item, cp in pairs
                if cp.new_history
            ],
        )
        self._rows(
            script,
            s.instances_upsert,
            [
                (hub, item.instance_id, *instance_row(cp.instance)[1:])
                for item, cp in pairs
                if cp.instance is not None
            ],
        )
        tasks = [t for _, cp in pairs for t in cp.activity_tasks]
        if claims is not None:
            locked = [t for t in tasks if (t.instance_id, t.task_id) in claims.tasks]
            tasks = [t for t in tasks if (t.instance_id, t.task_id) not in claims.tasks]
            lock = (claims.expires, 1, claims.claim.worker_id, claims.token)
            self._rows(
                script,
                s.activity_insert_claimed,
                [
                    (hub, t.instance_id, t.execution_id, t.task_id, t.name, t.input, *lock)
                    for t in locked
                ],
            )
        if tasks:
            self._work_may_be_added(s.activity_peek)
        self._rows(
            script,
            s.activity_insert,
            [
                (hub, t.instance_id, t.execution_id, t.task_id, t.name, t.input, now, 0)
                for t in tasks
            ],
        )
        self._enqueue(script, [m for _, cp in pairs for m in cp.messages], now)
        return script + self._in(
            s.queue_release_completed, (hub,), [item.instance_id for item, _ in pairs]
        )

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        s, hub = self._sql, self.task_hub
        work = Work.TIMERS if delay else Work.ORCHESTRATIONS
        with self._write(durable=False, notify=work, status_changed=()) as cur:
            now = self._now_micros()
            if delay:
                # Keep the instance locked (by nobody) until the delay passes.
                cur.execute(
                    s.queue_hold,
                    (
                        now + _micros(delay),
                        new_lock_token(),
                        hub,
                        item.instance_id,
                        item.lock_token,
                        now,
                    ),
                )
                if cur.rowcount != 1:
                    raise _lock_lost(item)
            else:
                rows = self._fetch(cur, self._in(s.queue_locks_in, (hub,), [item.instance_id]))
                if not rows or rows[0][1] != item.lock_token or (rows[0][2] or 0) <= now:
                    raise _lock_lost(item)
                cur.execute(s.queue_uncount, (hub, item.instance_id))
                self._run(cur, self._release([item.instance_id], now))

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._write(durable=False) as cur:
            now = self._now_micros()
            expires = now + _micros(lock_timeout)
            cur.execute(
                self._sql.queue_renew,
                (expires, self.task_hub, item.instance_id, item.lock_token, now),
            )
            if cur.rowcount != 1:
                raise _lock_lost(item)
        item.locked_until = from_micros(expires)

    # -- activity work items --------------------------------------------------------------
    def lock_next_activity_work_items(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        return self._claim(
            self._sql.activity_peek,
            max_count,
            lambda: self._lock_activities(worker_id, lock_timeout, max_count),
        )

    def _lock_activities(
        self, worker_id: str, lock_timeout: timedelta, max_count: int
    ) -> list[ActivityWorkItem]:
        s = self._sql
        token = new_lock_token()
        with self._write(durable=False) as cur:
            now = self._now_micros()
            cur.execute(s.activity_claim, (self.task_hub, now, max_count))
            rows = cur.fetchall()
            if not rows:
                return []
            expires = now + _micros(lock_timeout)
            row_ids = [row[0] for row in rows]
            self._run(cur, self._in(s.activity_lock, (expires, worker_id, token), row_ids))
        locked_until = from_micros(expires)
        return [
            ActivityWorkItem(
                task=ActivityTask(iid, execution_id, task_id, name, payload),
                lock_token=token,
                locked_until=locked_until,
                dequeue_count=dequeue_count + 1,
                provider_data=row_id,
            )
            for row_id, iid, execution_id, task_id, name, payload, dequeue_count in rows
        ]

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        (error,) = self.complete_activity_work_items([(item, result)])
        if error is not None:
            raise error

    def complete_activity_work_items(
        self, batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[Exception | None]:
        return self._complete_activities(batch).errors

    def complete_activities_and_claim(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim,
    ) -> list[Exception | None]:
        return self._complete_activities(batch, claim).errors

    def _complete_activities(
        self,
        batch: Sequence[tuple[ActivityWorkItem, OrchestrationMessage]],
        claim: OrchestrationClaim | None = None,
    ) -> BatchOutcome:
        if not batch:
            return BatchOutcome([])
        s, hub = self._sql, self.task_hub
        then: Callable[[Cursor], None] | None = None
        visible: Callable[[], None] | None = None
        work: Work | None = Work.of_messages(result for _, result in batch)
        if claim is not None and claim.max_count > 0:
            work = None  # visible() wakes pollers for the instances left unclaimed
            targets = list(dict.fromkeys(result.instance_id for _, result in batch))
            taken: list[_Locked] = []

            def then(cur: Cursor) -> None:
                # Runs in every attempt: only the committed attempt's locks are handed over.
                taken.clear()
                now = self._now_micros()
                candidates = self._fetch(cur, self._in(s.queue_claim_in, (hub, now), targets))
                taken.append(
                    self._lock_candidates(
                        cur, candidates[: claim.max_count], claim.worker_id, claim.lock_timeout, now
                    )
                )

            def visible() -> None:
                items = self._orchestration_items(taken[0]) if taken else []
                held = {item.instance_id for item in items}
                left = Work.of_messages(r for _, r in batch if r.instance_id not in held)
                if left is not Work.NONE:  # instances for the pollers
                    self._work_may_be_added(s.queue_peek)
                self.changes.notify((), work=left)
                if items:
                    claim.start(items)

        check = self._in(s.activity_locks_in, (hub,), [item.provider_data for item, _ in batch])

        def held(cur: Cursor, now: int) -> set[tuple[Any, str]]:
            return {
                (row_id, token)
                for row_id, token, expires in self._fetch(cur, check)
                if token is not None and expires > now
            }

        def prepare(pairs: list[tuple[ActivityWorkItem, OrchestrationMessage]]) -> Script:
            script = self._in(s.activity_delete_ids, (), [item.provider_data for item, _ in pairs])
            self._enqueue(script, [m for _, m in pairs], self._now_micros(), work is not None)
            return script

        return self._commit_batch(
            batch,
            held,
            lambda pair: (pair[0].provider_data, pair[0].lock_token),
            lambda pair: _activity_lock_lost(pair[0]),
            prepare,
            work,
            # An activity result need not wait for the disk: losing it in a crash only runs
            # the activity again (at least once, as after a crash before its commit), and the
            # step that consumes it commits durably, which takes the result to the disk too.
            durable=False,
            status_changed=(),  # results change no instance record
            then=then,
            visible=visible,
        )

    def complete_activities_and_steps(
        self, batch: Sequence[ResultStep], claim: ActivityClaim | None = None
    ) -> list[bool | Exception]:
        """One durable transaction: each held activity is deleted and either its step is
        applied (if it stands) or its result enqueued. The statements that apply every step
        are built first (the common case: all stand); should the transaction fail, or a
        step not encode, the results are completed the ordinary way
        (:meth:`complete_activity_work_items`) and no step is applied."""
        if not batch:
            return []
        s, hub = self._sql, self.task_hub
        pairs = [(step.activity, step.result) for step in batch]
        completions = [(_unlocked_item(step), step.checkpoint) for step in batch]
        claims = _Claims.of(completions, claim, self._now_micros()) if claim else None
        try:
            apply_all = self._checkpoint_script(completions, claims)
        except Exception:  # noqa: BLE001 - unencodable: the ordinary way reports it
            return self._results_without_steps(pairs)
        ids = list(dict.fromkeys(step.result.instance_id for step in batch))
        outcomes: list[bool | Exception] = [False] * len(batch)
        committed = False

        def visible() -> None:
            nonlocal committed
            committed = True
            applied = [step for step, done in zip(batch, outcomes, strict=True) if done is True]
            work = Work.of_checkpoints(step.checkpoint for step in applied)
            if claims is not None and _all_claimed(applied, claims):
                work &= ~Work.ACTIVITIES
            work |= Work.of_messages(
                step.result for step, done in zip(batch, outcomes, strict=True) if done is False
            )
            changed = {
                step.basis.instance_id: step.checkpoint.instance.runtime_status
                for step in applied
                if step.checkpoint.instance is not None
                and step.checkpoint.instance.runtime_status is not step.basis.runtime_status
            }
            self.changes.notify(changed, work=work)
            if claims is not None:
                claims.hand_over()

        try:
            with self._write(durable=True, visible=visible) as cur:
                now = self._now_micros()
                check = self._in(
                    s.activity_locks_in, (hub,), [step.activity.provider_data for step in batch]
                )
                held = {
                    (row_id, token)
                    for row_id, token, expires in self._fetch(cur, check)
                    if token is not None and expires > now
                }
                # Holds the instances' queue rows (engines with row locks): a claim of one
                # of them waits for this commit. A held instance has visible messages too,
                # so the lock test below is the contract's rule more than a second check.
                locked = {
                    iid
                    for iid, token, expires in self._fetch(
                        cur, self._in(s.queue_locks_in, (hub,), ids)
                    )
                    if token is not None and expires is not None and expires > now
                }
                waiting = {
                    iid
                    for _, iid, _ in self._fetch(cur, self._in(s.inbox_visible_in, (hub, now), ids))
                }
                versions = self._in(s.instance_versions_in, (hub,), ids)
                stored = {iid: (eid, size) for iid, eid, size in self._fetch(cur, versions)}
                applied: set[str] = set()
                completed: list[int] = []
                for index, step in enumerate(batch):
                    activity = step.activity
                    if (activity.provider_data, activity.lock_token) not in held:
                        outcomes[index] = _activity_lock_lost(activity)
                        continue
                    held.discard((activity.provider_data, activity.lock_token))
                    completed.append(index)
                    iid, basis = step.result.instance_id, step.basis
                    if (
                        iid == basis.instance_id
                        and iid not in applied
                        and iid not in locked
                        and iid not in waiting
                        and stored.get(iid) == (basis.execution_id, basis.history_size)
                    ):
                        applied.add(iid)
                        outcomes[index] = True
                script = self._in(
                    s.activity_delete_ids, (), [batch[i].activity.provider_data for i in completed]
                )
                if len(applied) == len(batch):
                    script += apply_all
                else:  # rare: build the statements of what happens instead
                    stand = [completions[i] for i in completed if outcomes[i] is True]
                    if stand:
                        script += self._checkpoint_script(stand, claims)
                    enqueue = [batch[i].result for i in completed if outcomes[i] is False]
                    self._enqueue(script, enqueue, now)
                self._run(cur, script)
                if claims is not None:
                    claimed_in = self._in(s.activity_claimed_in, (hub, claims.token), [*applied])
                    claims.rows = self._fetch(cur, claimed_in)
        except Exception:
            if committed:
                raise  # committed, but not made durable: as any other call, it raises
            log.debug("Committing results with their steps failed; committing the results")
            return self._results_without_steps(pairs)
        return outcomes

    def _results_without_steps(
        self, pairs: list[tuple[ActivityWorkItem, OrchestrationMessage]]
    ) -> list[bool | Exception]:
        """:meth:`complete_activities_and_steps` applying no step: the results enqueued."""
        errors = self.complete_activity_work_items(pairs)
        return [False if error is None else error for error in errors]

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._write(durable=False, notify=Work.ACTIVITIES, status_changed=()) as cur:
            now = self._now_micros()
            visible = now + (_micros(delay) if delay else 0)
            cur.execute(
                self._sql.activity_abandon,
                (visible, self.task_hub, item.provider_data, item.lock_token, now),
            )
            if cur.rowcount != 1:
                raise _activity_lock_lost(item)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._write(durable=False) as cur:
            now = self._now_micros()
            expires = now + _micros(lock_timeout)
            cur.execute(
                self._sql.activity_renew,
                (expires, self.task_hub, item.provider_data, item.lock_token, now),
            )
            if cur.rowcount != 1:
                raise _activity_lock_lost(item)
        item.locked_until = from_micros(expires)


def _decode_messages(
    found: list[tuple[int, str]],
) -> tuple[list[OrchestrationMessage], list[int], list[tuple[int, str, str]]]:
    """Split stored inbox rows into the decoded messages, their row ids (in the same order),
    and the undecodable rows as (id, body, reason)."""
    messages: list[OrchestrationMessage] = []
    ids: list[int] = []
    undecodable: list[tuple[int, str, str]] = []
    for message_id, body in found:
        try:
            messages.append(OrchestrationMessage.from_json(body))
            ids.append(message_id)
        except Exception as exc:  # noqa: BLE001 - any decoding failure: moved aside
            undecodable.append(
                (message_id, body, f"undecodable message: {type(exc).__name__}: {exc}")
            )
    return messages, ids, undecodable


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    row_id, kind, instance_id, body, reason, created_at = row
    return DeadLetter(
        str(row_id), DeadLetterKind(kind), instance_id, body, reason, from_micros(created_at)
    )


def _dead_letter_key(dead_letter_id: str) -> int | None:
    return int(dead_letter_id) if dead_letter_id.isdigit() else None


class _Locked:
    """Instances a transaction locked as orchestration work items, and what their items are
    built from once it has committed."""

    __slots__ = ("candidates", "expires", "messages", "records", "token")

    def __init__(self, candidates: list[tuple[str, int]], token: str, expires: int) -> None:
        #: (instance id, dequeue count) of the claimable instances looked at.
        self.candidates = candidates
        self.token = token
        self.expires = expires
        #: Visible (row id, body) inbox rows of each instance locked.
        self.messages: dict[str, list[tuple[int, str]]] = {}
        #: The instance rows of those instances.
        self.records: dict[str, Any] = {}


class _Claims:
    """The activity tasks one completion call claims (eager activities): the first
    ``max_count`` of its checkpoints', by (instance id, task id), under one token."""

    __slots__ = ("all_tasks", "claim", "expires", "rows", "tasks", "token")

    def __init__(
        self, tasks: dict[tuple[str, int], ActivityTask], claim: ActivityClaim, expires: int
    ) -> None:
        self.tasks = tasks
        self.claim = claim
        self.expires = expires
        self.token = new_lock_token()
        #: (row id, instance id, execution id, task id) of the claimed rows, once committed.
        self.rows: list[Any] = []
        self.all_tasks = False

    @classmethod
    def of(cls, batch: Sequence[_Completion], claim: ActivityClaim, now: int) -> _Claims:
        tasks: dict[tuple[str, int], ActivityTask] = {}
        total = 0
        for _, checkpoint in batch:
            for task in checkpoint.activity_tasks:
                total += 1
                if len(tasks) < claim.max_count:
                    tasks[task.instance_id, task.task_id] = task
        claims = cls(tasks, claim, now + _micros(claim.lock_timeout))
        claims.all_tasks = len(tasks) == total
        return claims

    def hand_over(self) -> None:
        """Give the claimed tasks to the worker (once their transaction is visible)."""
        items = self.work_items()
        if items:
            self.claim.start(items)

    def work_items(self) -> list[ActivityWorkItem]:
        """The claimed tasks the committed transaction holds, as work items."""
        locked_until = from_micros(self.expires)
        items = []
        for row_id, instance_id, execution_id, task_id in self.rows:
            task = self.tasks.get((instance_id, task_id))
            if task is not None and task.execution_id == execution_id:
                items.append(ActivityWorkItem(task, self.token, locked_until, 1, row_id))
        return items


class _Write:
    """:meth:`RelationalProvider._write`: the engine's transaction, then the wake-up and the
    wait for the disk (a class, not a generator: it runs for every transaction)."""

    __slots__ = (
        "_context",
        "_durable",
        "_notify",
        "_provider",
        "_status_changed",
        "_transaction",
        "_visible",
    )

    def __init__(
        self,
        provider: RelationalProvider,
        durable: bool,
        notify: Work | None,
        status_changed: Collection[str] | Mapping[str, OrchestrationStatus] | None,
        visible: Callable[[], None] | None = None,
    ) -> None:
        self._provider = provider
        self._durable = durable
        self._notify = notify
        self._status_changed = status_changed
        self._visible = visible

    def __enter__(self) -> Cursor:
        self._context = self._provider.transaction(self._durable)
        self._transaction = self._context.__enter__()
        return self._transaction.cursor

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._context.__exit__(exc_type, exc, traceback)  # commits, or rolls back and raises
        if exc_type is not None:
            return
        if self._notify is not None:
            self._provider.changes.notify(self._status_changed, work=self._notify)
        if self._visible is not None:
            self._visible()
        wait_durable = self._transaction.wait_durable
        if wait_durable is not None:
            wait_durable()


#: The lock expiry of the stand-in work item of a step computed without a lock.
_NEVER = datetime.min.replace(tzinfo=UTC)


def _unlocked_item(step: ResultStep) -> OrchestrationWorkItem:
    """A stand-in work item for ``step`` (no lock, no stored message to consume), so that
    its checkpoint is applied by the same statements as a locked step's."""
    return OrchestrationWorkItem(
        instance_id=step.basis.instance_id,
        messages=[step.result],
        instance=step.basis,
        lock_token="",
        locked_until=_NEVER,
        provider_data=[],
    )


def _all_claimed(applied: list[ResultStep], claims: _Claims) -> bool:
    """Whether every task the ``applied`` steps schedule was claimed."""
    return all(
        (task.instance_id, task.task_id) in claims.tasks
        for step in applied
        for task in step.checkpoint.activity_tasks
    )


def _lock_lost(item: OrchestrationWorkItem) -> WorkItemLockLost:
    return WorkItemLockLost(f"Lock on instance '{item.instance_id}' was lost")


def _activity_lock_lost(item: ActivityWorkItem) -> WorkItemLockLost:
    return WorkItemLockLost(
        f"Lock on activity task {item.task.name!r} of '{item.task.instance_id}' was lost"
    )
