# ruff: noqa: E501  (the zoo quotes code exactly; some quotes are longer than a line)
"""The mutant zoo: realistic single-change bugs in the real providers' code, and their runner.

Usage (from the repository root)::

    uv run python tests/conformance/mutants.py                 # every mutant; writes the doc
    uv run python tests/conformance/mutants.py --only R03,F06  # some; prints, writes nothing
    uv run python tests/conformance/mutants.py --provider file # one provider's; prints
    uv run python tests/conformance/mutants.py --list          # the zoo, without running

Each mutant is applied to a temporary copy of the repository (never to the working tree),
and that provider's conformance run (the standard suite only, nothing provider-specific)
runs there, stopping at its first failure. A mutant is *killed* when some test fails. The
unmutated copy runs first for every provider involved (a baseline that must pass). Writes
``docs/conformance-kill-matrix.md``; exits non-zero if a mutant survived, its old text was
not found (reported as an error, never skipped), or a baseline failed.

The bugs are the shapes seen in durable-task back ends' trackers (a lock clause missing
from a claim, a lease or lock checked in the wrong unit, a replace that keeps the old
run's lock, results applied for work items whose locks were lost, purge leaving rows
behind, a field not round-tripped) and the everyday ones (a comparison flipped, an
off-by-one at a boundary, the wrong variable in a closure).
"""

from __future__ import annotations

import argparse
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mutant_runner import ROOT, Mutant, Outcome, evaluate  # noqa: E402

RELATIONAL = "core/src/ostinato/relational/provider.py"
STATEMENTS = "core/src/ostinato/relational/statements.py"
ROWS = "core/src/ostinato/relational/rows.py"
DIALECT = "core/src/ostinato/relational/dialect.py"
SQLITE = "core/src/ostinato/sqlite/provider.py"
POSTGRES = "providers/postgres/src/ostinato_postgres/provider.py"
AZURE_CHECKPOINT = "providers/azure/src/ostinato_azure/_checkpoint.py"
AZURE_CLIENT = "providers/azure/src/ostinato_azure/_client.py"
AZURE_INBOX = "providers/azure/src/ostinato_azure/_inbox.py"
AZURE_RECORDS = "providers/azure/src/ostinato_azure/_records.py"
AZURE_ACTIVITIES = "providers/azure/src/ostinato_azure/_activities.py"
FILE = "examples/custom_provider/file_provider.py"

MUTANTS: list[Mutant] = [
    # -- relational toolkit (run on SQLite) -------------------------------------------------
    Mutant(
        "R01",
        "sqlite",
        RELATIONAL,
        "visible = self._fetch(cur, self._in(s.inbox_visible_in, (hub, now), ids))",
        "visible = self._fetch(cur, self._in(s.inbox_visible_in, (hub, now + _micros(lock_timeout)), ids))",
        "The messages handed out are those visible before the lock expires (its end, not "
        "its start): timers due within the lock's timeout fire early, as in Azure/durabletask "
        "#636 (a timer consumed with an event that arrived before it was due).",
    ),
    Mutant(
        "R02",
        "sqlite",
        STATEMENTS,
        "{excluded}.visible_at < {target}.visible_at",
        "{excluded}.visible_at > {target}.visible_at",
        "Comparison flipped in the upsert that keeps an idle instance's earliest message: an "
        "event behind a far timer then waits for the timer.",
    ),
    Mutant(
        "R03",
        "sqlite",
        STATEMENTS,
        '"visible_at = CASE WHEN {target}.lock_token IS NULL AND "',
        '"visible_at = CASE WHEN "',
        "Missing lock clause: a message for a locked instance resets the queue row's "
        "visible_at (the lock's expiry) to now, so another worker claims a locked instance.",
    ),
    Mutant(
        "R04",
        "sqlite",
        STATEMENTS,
        'f"UPDATE {q} SET visible_at = (SELECT MIN(i.visible_at) FROM {inbox} i "\n'
        '            f"WHERE {inbox_of_row}), locked_by = NULL, lock_token = NULL, "\n'
        '            f"dequeue_count = 0 WHERE',
        'f"UPDATE {q} SET visible_at = (SELECT MAX(i.visible_at) FROM {inbox} i "\n'
        '            f"WHERE {inbox_of_row}), locked_by = NULL, lock_token = NULL, "\n'
        '            f"dequeue_count = 0 WHERE',
        "MIN/MAX mix-up when releasing an instance after a step: it becomes claimable at its latest "
        "remaining message (a far timer), so the events before it wait for the timer.",
    ),
    Mutant(
        "R05",
        "sqlite",
        STATEMENTS,
        'where.append(f"created_at <= {p}")',
        'where.append(f"created_at < {p}")',
        "Off-by-one at a boundary: created_to is inclusive in the contract, exclusive here.",
    ),
    Mutant(
        "R06",
        "sqlite",
        STATEMENTS,
        'where.append(f"instance_id > {p}")',
        'where.append(f"instance_id >= {p}")',
        "Keyset paging with >=: the last row of a page comes back first on the next one.",
    ),
    Mutant(
        "R07",
        "sqlite",
        DIALECT,
        'return f"SUBSTR({column}, 1, {p}) = {p}"',
        'return f"SUBSTR({column}, 0, {p}) = {p}"',
        "Zero-based index into SQL's one-based SUBSTR: prefixes match one character short.",
    ),
    Mutant(
        "R08",
        "sqlite",
        RELATIONAL,
        "            cur.execute(s.inbox_delete, (hub, instance_id))\n"
        "            cur.execute(s.queue_reset, (hub, instance_id))",
        "            cur.execute(s.queue_reset, (hub, instance_id))",
        "Replacing an instance deletes its history and lock but forgets the old run's inbox, "
        "which the new run then consumes.",
    ),
    Mutant(
        "R09",
        "sqlite",
        RELATIONAL,
        "            cur.execute(s.inbox_delete, (hub, instance_id))\n"
        "            cur.execute(s.queue_reset, (hub, instance_id))",
        "            cur.execute(s.inbox_delete, (hub, instance_id))",
        "A replace that keeps the old run's queue row: the worker still holding the old run "
        "keeps its lock and commits into the new one.",
    ),
    Mutant(
        "R10",
        "sqlite",
        RELATIONAL,
        "                s.activity_delete,\n                s.dead_letters_delete,",
        "                s.dead_letters_delete,",
        "Purge forgets the activity table (added to the schema after purge was written).",
    ),
    Mutant(
        "R11",
        "sqlite",
        RELATIONAL,
        "                s.queue_delete,\n                s.activity_delete,",
        "                s.activity_delete,",
        "Purge leaves the queue row, lock token and all: a worker that held the purged "
        "instance still passes its lock check and writes the instance back.",
    ),
    Mutant(
        "R12",
        "sqlite",
        RELATIONAL,
        "        expires = now + _micros(lock_timeout)\n"
        "        locked = _Locked(candidates, token, expires)",
        "        expires = now + lock_timeout // timedelta(milliseconds=1)\n"
        "        locked = _Locked(candidates, token, expires)",
        "Unit: the lock's expiry computed in milliseconds against a clock in microseconds, so "
        "locks expire a thousand times too soon.",
    ),
    Mutant(
        "R13",
        "sqlite",
        RELATIONAL,
        "ready = prepared if len(entries) == len(batch) else None",
        "ready = prepared",
        "Group commit reuses the statements prepared for the whole batch even when some "
        "items lost their locks, applying their checkpoints too.",
    ),
    Mutant(
        "R14",
        "sqlite",
        RELATIONAL,
        "script = self._in(s.activity_delete_ids, (), [item.provider_data for item, _ in pairs])",
        "script = self._in(s.activity_delete_ids, (), [item.provider_data for item, _ in batch])",
        "Wrong variable in a closure: deleting the tasks of the whole batch, not of the items "
        "still locked, deletes a task another worker has taken over.",
    ),
    Mutant(
        "R15",
        "sqlite",
        RELATIONAL,
        "                        now + _micros(delay),\n                        new_lock_token(),",
        "                        now + _micros(delay) // 1000,\n                        new_lock_token(),",
        "Unit: an abandon delay converted to milliseconds where microseconds are stored, so "
        "the instance is claimable again almost at once.",
    ),
    Mutant(
        "R16",
        "sqlite",
        RELATIONAL,
        "            script += self._in(s.inbox_delete_ids, (), consumed)",
        "            script += [(s.inbox_delete, (hub, item.instance_id)) for item, _ in pairs]",
        "'Consume the inbox' simplified to deleting every message of the instance, including "
        "those that arrived after the lock was taken.",
    ),
    Mutant(
        "R17",
        "sqlite",
        ROWS,
        "        parent_instance_id=row[10],",
        "        parent_instance_id=None,",
        "A field not read back (added to the row after the reader was written).",
    ),
    Mutant(
        "R18",
        "sqlite",
        ROWS,
        "        custom_status=row[8],",
        "        custom_status=row[7],",
        "Column index off by one after a column was inserted in the middle of the list.",
    ),
    Mutant(
        "R19",
        "sqlite",
        ROWS,
        "    return _EPOCH + timedelta(microseconds=micros)",
        "    return datetime.utcfromtimestamp(micros / 1_000_000)",
        "The classic naive-UTC conversion: the datetime read back has no time zone (and "
        "float seconds), so it can't be compared with the aware times the contract uses.",
    ),
    Mutant(
        "R20",
        "sqlite",
        RELATIONAL,
        "        if exc_type is not None:\n            return\n        if self._notify is not None:",
        "        if exc_type is None:\n            return\n        if self._notify is not None:",
        "A condition inverted in the transaction's exit (found by Cosmic Ray): committed "
        "writes never signal provider.changes, so in-process workers and clients wake only at "
        "their poll timeouts; every result stays right, only late.",
    ),
    Mutant(
        "R21",
        "sqlite",
        RELATIONAL,
        "lock = (claims.expires, 1, claims.claim.worker_id, claims.token)",
        "lock = (now, 1, claims.claim.worker_id, claims.token)",
        "Eager activities: claimed tasks inserted with their lock already over (the enqueue "
        "time where the expiry belongs): another worker polls them while the committing "
        "worker runs them, so each runs twice at once.",
    ),
    Mutant(
        "R22",
        "sqlite",
        RELATIONAL,
        "lock = (claims.expires, 1, claims.claim.worker_id, claims.token)",
        "lock = (claims.expires, 0, claims.claim.worker_id, claims.token)",
        "Eager activities: a claimed task's delivery is not counted, so after a crash the next "
        "hand-out looks like a first delivery and a poison task gets one more run than "
        "max_delivery_attempts allows.",
    ),
    Mutant(
        "R23",
        "sqlite",
        RELATIONAL,
        "                if len(tasks) < claim.max_count:",
        "                if len(tasks) <= claim.max_count:",
        "Eager activities: an off-by-one in the claim's room: one task more than the worker "
        "has slots for is locked to it and waits there, unseen by other workers.",
    ),
    Mutant(
        "R24",
        "sqlite",
        RELATIONAL,
        "self._in(s.queue_claim_in, (hub, now), targets)",
        "self._in(s.queue_claim_in, (hub, now + _micros(claim.lock_timeout)), targets)",
        "Eager orchestrations: instances claimable by the end of the new lock rather than now: "
        "an instance another worker holds is locked a second time when a result arrives for "
        "it, and two workers run its steps at once.",
    ),
    Mutant(
        "R25",
        "sqlite",
        RELATIONAL,
        "cur, candidates[: claim.max_count], claim.worker_id, claim.lock_timeout, now",
        "cur, candidates[: claim.max_count + 1], claim.worker_id, claim.lock_timeout, now",
        "Eager orchestrations: an off-by-one in the claim's room: one instance more than the "
        "worker has room for is locked to it and waits there, unseen by other workers.",
    ),
    Mutant(
        "R26",
        "sqlite",
        RELATIONAL,
        "                        and iid not in waiting\n",
        "",
        "Eager steps: the visible-message check left out: a step that never saw an event "
        "waiting in the inbox is applied, so the history no longer says what the step "
        "consumed (a replay takes the event where the original run did not).",
    ),
    Mutant(
        "R27",
        "sqlite",
        RELATIONAL,
        "stored.get(iid) == (basis.execution_id, basis.history_size)",
        "stored.get(iid, (None, None))[0] == basis.execution_id",
        "Eager steps: only the execution id compared, not the history size: a step computed "
        "from a cached run that another worker has since moved on is applied over that "
        "worker's step.",
    ),
    Mutant(
        "R28",
        "sqlite",
        RELATIONAL,
        "                        and iid not in applied\n",
        "",
        "Eager steps: two results of one instance in one batch each apply the step computed "
        "from the same record, so the second step is appended after the first without having "
        "seen it.",
    ),
    # -- SQLite -----------------------------------------------------------------------------
    Mutant(
        "S01",
        "sqlite",
        SQLITE,
        "                check_same_thread=False,",
        "                check_same_thread=True,",
        "sqlite3's thread check left on (its default; 'safer'): the one write connection is "
        "shared by the worker's threads, and every write from a second thread fails.",
    ),
    Mutant(
        "S02",
        "sqlite",
        SQLITE,
        'f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}"',
        'f"PRAGMA busy_timeout = {int(self.busy_timeout)}"',
        "Unit: busy_timeout takes milliseconds, the setting is seconds: writers in other "
        "processes give up after 30 ms instead of 30 s.",
    ),
    Mutant(
        "S03",
        "sqlite",
        SQLITE,
        '                    cursor.execute("COMMIT")\n                finally:',
        '                    if durable:\n                        cursor.execute("COMMIT")\n'
        "                finally:",
        "Non-durable transactions left open for 'the next commit to sync': claims, renewals "
        "and activity results are acknowledged but never committed.",
    ),
    Mutant(
        "S04",
        "sqlite",
        SQLITE,
        "                    except BaseException:\n"
        "                        if cursor.connection.in_transaction:\n"
        '                            cursor.execute("ROLLBACK")\n'
        "                        raise",
        "                    except BaseException:\n                        raise",
        "No rollback when the body raises (InstanceAlreadyExistsError, WorkItemLockLost): the "
        "write connection stays inside the failed transaction and every later write fails.",
    ),
    # -- PostgreSQL -------------------------------------------------------------------------
    Mutant(
        "G01",
        "postgres",
        POSTGRES,
        '        return " FOR UPDATE SKIP LOCKED"',
        '        return ""',
        "Missing lock clause on the claim: two transactions read the same free queue row and "
        "both lock it (READ COMMITTED lets both updates through).",
    ),
    Mutant(
        "G02",
        "postgres",
        POSTGRES,
        "            connection.transaction(),\n",
        "",
        "No transaction around a call on an autocommit connection: every statement commits on "
        "its own, so a claim's SELECT ... FOR UPDATE holds nothing by the time it updates.",
    ),
    Mutant(
        "G03",
        "postgres",
        POSTGRES,
        '        ColumnType.BIGINT: "BIGINT",\n        ColumnType.INTEGER: "INTEGER",\n'
        "        # Code-point order",
        '        ColumnType.BIGINT: "INTEGER",\n        ColumnType.INTEGER: "INTEGER",\n'
        "        # Code-point order",
        "INTEGER copied from the SQLite dialect, where it is 64 bits; in PostgreSQL it is 32, "
        "and timestamps in microseconds don't fit.",
    ),
    Mutant(
        "G04",
        "postgres",
        STATEMENTS,
        '                "instance_id, lock_token, visible_at",\n                q,\n'
        '                f"task_hub = {p} AND instance_id IN ({d.params(n)})",\n'
        "                lock=RowLock.HOLD,",
        '                "instance_id, lock_token, visible_at",\n                q,\n'
        '                f"task_hub = {p} AND instance_id IN ({d.params(n)})",\n'
        "                lock=RowLock.NONE,",
        "Lock check without FOR UPDATE: between reading its lock and writing, a completion "
        "can lose the row to a claimer that saw the lock expire.",
    ),
    Mutant(
        "G05",
        "postgres",
        RELATIONAL,
        "ready = prepared if len(entries) == len(batch) else None",
        "ready = prepared",
        "Group commit applies every prepared checkpoint, including those of lost locks (as R13, "
        "on PostgreSQL).",
    ),
    Mutant(
        "G06",
        "postgres",
        RELATIONAL,
        "            expires = now + _micros(lock_timeout)\n"
        "            row_ids = [row[0] for row in rows]",
        "            expires = now + lock_timeout // timedelta(milliseconds=1)\n"
        "            row_ids = [row[0] for row in rows]",
        "Unit: activity locks computed in milliseconds against a clock in microseconds.",
    ),
    # -- the example file provider ----------------------------------------------------------
    Mutant(
        "F01",
        "file",
        FILE,
        '                data["inbox"] = []\n'
        '                data["lock"] = None  # a worker still holding the old run loses its lock',
        '                data["inbox"] = []',
        "A replace that keeps the old run's lock: its holder commits into the new run.",
    ),
    Mutant(
        "F02",
        "file",
        FILE,
        "            for message in checkpoint.messages:\n"
        "                if message.instance_id == item.instance_id:\n"
        "                    self._enqueue(data, message)\n",
        "",
        "Outbound messages handled only for other instances: timers to itself are lost.",
    ),
    Mutant(
        "F03",
        "file",
        FILE,
        '            consumed = set(data["lock"]["seqs"])',
        '            consumed = {m["seq"] for m in data["inbox"]}',
        "Consumes the whole inbox instead of the messages handed out: late arrivals vanish.",
    ),
    Mutant(
        "F04",
        "file",
        FILE,
        "            self._path(instance_id).unlink(missing_ok=True)\n"
        '            for path in self._activities.glob("*.json"):',
        "            self._path(instance_id).unlink(missing_ok=True)\n            for path in []:",
        "Purge forgets the activity files.",
    ),
    Mutant(
        "F05",
        "file",
        FILE,
        "fcntl.flock(handle, fcntl.LOCK_EX)",
        "fcntl.flock(handle, fcntl.LOCK_SH)",
        "A shared lock where an exclusive one is needed: threads of one process still "
        "serialize on the thread lock, so only separate processes race.",
    ),
    Mutant(
        "F06",
        "file",
        FILE,
        '            or lock["token"] != item.lock_token\n'
        "            or not self._lock_is_live(lock, self.now())\n"
        "        ):\n"
        '            raise WorkItemLockLost(f"Lock on instance',
        "            or not self._lock_is_live(lock, self.now())\n"
        "        ):\n"
        '            raise WorkItemLockLost(f"Lock on instance',
        "The lock check looks at the expiry only, not whose lock it is: a stale worker "
        "completes over the worker that took its expired lock.",
    ),
    Mutant(
        "F07",
        "file",
        FILE,
        '            or lock["token"] != item.lock_token\n'
        "            or not (self._lock_is_live(lock, self.now()))",
        "            or not (self._lock_is_live(lock, self.now()))",
        "The same for activity tasks: a stale activity worker's result is accepted.",
    ),
    Mutant(
        "F08",
        "file",
        FILE,
        '                    "seqs": [m["seq"] for m in visible],',
        '                    "seqs": [m["seq"] for m in data["inbox"]],',
        "The lock records every inbox message, not the visible ones handed out: completing "
        "consumes future timers that were never delivered.",
    ),
    Mutant(
        "F09",
        "file",
        FILE,
        "(r for r in records if query.matches(r) and (after is None or r.instance_id > after))",
        "(r for r in records if query.matches(r) and (after is None or r.instance_id >= after))",
        "Keyset paging with >=: the last item of a page repeats.",
    ),
    Mutant(
        "F10",
        "file",
        FILE,
        '        history_size=data["history_size"],',
        '        history_size=len(data.get("history", [])),',
        "history_size derived from the history it sits beside, which the record's JSON doesn't "
        "contain: always 0, so a worker's history cache is never trusted or always stale.",
    ),
    Mutant(
        "F11",
        "file",
        FILE,
        '            data["lock"]["expires"] = expires.isoformat()\n'
        "            self._save(data)\n        item.locked_until = expires",
        '            data["lock"]["expires"] = expires.isoformat()\n'
        "        item.locked_until = expires",
        "A renewal computed but never saved: the caller is told its lock lasts longer, but "
        "the stored lock expires on the old schedule and another worker takes the instance.",
    ),
    # -- Azure Storage ----------------------------------------------------------------------
    Mutant(
        "A01",
        "azure",
        AZURE_INBOX,
        "                    if (\n"
        "                        r.message is not None\n"
        "                        and r.message.visible_at is not None\n"
        "                        and r.message.visible_at > now\n"
        "                    )\n"
        "                    or (r.not_before is not None and r.not_before > now)",
        "                    if (r.not_before is not None and r.not_before > now)",
        "Trusting the queue's visibility timeout for timers: it is rounded down to whole "
        "seconds, so a timer fires up to a second early.",
    ),
    Mutant(
        "A02",
        "azure",
        AZURE_CLIENT,
        "            self._take_locks_away(instance_id)\n            self._forget_alive(instance_id)\n"
        "            self._delete_dead_letters_of(instance_id)\n",
        "            self._forget_alive(instance_id)\n"
        "            self._delete_dead_letters_of(instance_id)\n",
        "Purge leaves this process's in-memory lock of the instance in place.",
    ),
    Mutant(
        "A03",
        "azure",
        AZURE_RECORDS,
        '        put_property(props, "FailureDetails", failure, iid, self.blobs)\n',
        "",
        "A field left out of the row written (added to the record after the writer): a "
        "failed instance's failure details read back as None.",
    ),
    Mutant(
        "A04",
        "azure",
        AZURE_RECORDS,
        '            parent_instance_id=entity.get("ParentInstanceId"),',
        "            parent_instance_id=None,",
        "A field not read back from the row.",
    ),
    Mutant(
        "A05",
        "azure",
        AZURE_INBOX,
        "                if lock is not None and lock.expires > now:\n"
        "                    continue  # in a work item",
        "                if lock is not None and lock.expires < now:\n"
        "                    continue  # in a work item",
        "Comparison flipped: live locks are handed out again, expired ones skipped.",
    ),
    Mutant(
        "A06",
        "azure",
        AZURE_CHECKPOINT,
        '                sentinel["ExecutionId"] = execution\n'
        '                sentinel["HistorySize"] = base + len(rows)\n'
        "            elif last:",
        '                sentinel["ExecutionId"] = execution\n'
        '                sentinel["HistorySize"] = len(rows)\n'
        "            elif last:",
        "Off by the base: the sentinel counts this step's rows only, so earlier events drop "
        "out of the history read back.",
    ),
    Mutant(
        "A07",
        "azure",
        AZURE_INBOX,
        "        seconds = 0 if not delay else math.ceil(delay.total_seconds())\n"
        "        kept: list[_Received] = []",
        "        seconds = 0 if not delay else math.floor(delay.total_seconds())\n"
        "        kept: list[_Received] = []",
        "Rounding an abandon delay down to whole seconds: short delays become none.",
    ),
    Mutant(
        "A08",
        "azure",
        AZURE_CLIENT,
        "            if replaced:\n                self._take_locks_away(instance_id)\n",
        "            if replaced:\n",
        "A replace that keeps the old run's lock in this process (as R09 and F01): the worker "
        "holding the old run commits into the new one.",
    ),
    Mutant(
        "A09",
        "azure",
        AZURE_CLIENT,
        'clauses.append("PartitionKey gt @after")',
        'clauses.append("PartitionKey ge @after")',
        "Keyset paging with ge (as R06 and F09): the last instance of a page comes back first "
        "on the next one.",
    ),
    Mutant(
        "A10",
        "azure",
        AZURE_ACTIVITIES,
        "        lock.queue_expires = now + timedelta(seconds=seconds) - _MARGIN\n"
        "        lock.expires = now + lock_timeout\n",
        "        lock.queue_expires = now + timedelta(seconds=seconds) - _MARGIN\n",
        "A renewal that extends the queue's visibility (the lock, as the queue sees it) but "
        "not the lock in the process: the task is handed to another worker at the first "
        "timeout (as F11, for activities).",
    ),
    Mutant(
        "A11",
        "azure",
        AZURE_CHECKPOINT,
        '                sentinel["ExecutionId"] = execution\n'
        '                sentinel["HistorySize"] = base + len(rows)\n'
        "                mode = UpdateMode.MERGE",
        '                sentinel["ExecutionId"] = execution\n'
        '                sentinel["HistorySize"] = len(rows)\n'
        "                mode = UpdateMode.MERGE",
        "The same off-by-the-base as A06 in the other branch (a step that appends history "
        "without changing the record): the two branches were written apart and fixed apart.",
    ),
    Mutant(
        "A12",
        "azure",
        AZURE_CHECKPOINT,
        "            base = 0 if fresh else lock.sentinel_size",
        "            base = lock.sentinel_size",
        "History row numbers continued across a reset or a new execution: the new execution's "
        "rows start past its HistorySize, so its history reads back short.",
    ),
]

DOC = ROOT / "docs" / "conformance-kill-matrix.md"


def _short(text: str, limit: int = 90) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-8:])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(baselines: list[Outcome], outcomes: list[Outcome]) -> str:
    """The kill matrix as Markdown."""
    killed = sum(o.status == "killed" for o in outcomes)
    lines = [
        "# Conformance kill matrix: mutants of the real providers",
        "",
        "Generated by `uv run python tests/conformance/mutants.py`; do not edit by hand.",
        "",
        "Each row is a realistic single-change bug written into a shipped provider's code",
        "(`tests/conformance/mutants.py` holds the exact change and why it is plausible),",
        "applied to a temporary copy of the repository, and the first test of that provider's",
        "conformance run (the standard suite only) that fails against it. A mutant no test",
        "kills is a hole in the suite.",
        "",
        f"**{killed} of {len(outcomes)} mutants killed.**",
        "",
        "Baselines (the unmutated copy, whole conformance run): "
        + ", ".join(
            f"{b.mutant.provider} {'passes' if b.status == 'survived' else '**fails**'}"
            f" ({b.passed} passed, {b.seconds:.0f}s)"
            for b in baselines
        )
        + ".",
        "",
        "| mutant | provider | file | change | why plausible | killed by | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        m = o.mutant
        change = f"`{_short(m.old, 60)}` → `{_short(m.new, 60) or '(deleted)'}`"
        if o.status == "killed":
            verdict = f"`{o.killed_by[0]}`"
        elif o.status == "survived":
            verdict = "**survived**"
        else:
            verdict = f"**error**: {_short(o.detail, 120)}"
        lines.append(
            f"| {m.id} | {m.provider} | `{m.path.rsplit('/', 1)[-1]}` | {_cell(change)} "
            f"| {_cell(_short(m.why, 160))} | {_cell(verdict)} | {o.seconds:.0f} |"
        )
    lines.append("")
    return "\n".join(_recount(lines))


def update_rows(doc: str, partial: str) -> str:
    """``doc`` with the mutant rows of ``partial`` (a rendering of some mutants) replaced or,
    for mutants new to it, added after the last row of their provider; the baselines that
    ``partial`` ran replaced; and its count of killed mutants recomputed."""
    fresh = {line.split(" | ")[0]: line for line in partial.splitlines() if _is_row(line)}
    lines = [
        fresh.pop(line.split(" | ")[0], line) if _is_row(line) else line
        for line in doc.splitlines()
    ]
    for row in fresh.values():  # new mutants
        provider = row.split(" | ")[1]
        rows = [i for i, line in enumerate(lines) if _is_row(line)]
        same = [i for i in rows if lines[i].split(" | ")[1] == provider]
        lines.insert((same or rows)[-1] + 1, row)
    ran = _baselines(partial)
    if ran:
        index = next(i for i, line in enumerate(lines) if line.startswith("Baselines"))
        runs = {**_baselines(lines[index]), **ran}
        head = lines[index].split(": ", 1)[0]
        lines[index] = f"{head}: " + ", ".join(runs[p] for p in sorted(runs)) + "."
    return "\n".join(_recount(lines)) + "\n"


def _baselines(text: str) -> dict[str, str]:
    """The baseline runs named on a rendering's Baselines line, by provider."""
    line = next((x for x in text.splitlines() if x.startswith("Baselines")), "")
    runs = re.findall(r"\w+ (?:passes|\*\*\w+\*\*) \([^)]*\)", line)
    return {run.split()[0]: run for run in runs}


def _recount(lines: list[str]) -> list[str]:
    """The count line recomputed from the rows; a provider whose baseline run fails has its
    kills not counted (its suite fails without any mutant)."""
    baseline = next((line for line in lines if line.startswith("Baselines")), "")
    runs = baseline.split(": ", 1)[-1].split(", ")
    broken = {run.split()[0] for run in runs if "**" in run}
    rows = [line for line in lines if _is_row(line)]
    killed = sum(
        line.rsplit(" | ", 2)[1].startswith("`test") and line.split(" | ")[1] not in broken
        for line in rows
    )
    count = f"**{killed} of {len(rows)} mutants killed.**"
    if broken:
        count += (
            f" Not counted: the mutants of {', '.join(sorted(broken))}, whose unmutated "
            "conformance run fails (see the baselines), so their kills prove nothing."
        )
    return [count if "mutants killed.**" in line else line for line in lines]


def _is_row(line: str) -> bool:
    return line.startswith("| ") and line[2:3].isupper() and line[3:5].isdigit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutant ids (prints; writes nothing)")
    parser.add_argument("--provider", help="only this provider's mutants (prints)")
    parser.add_argument("--list", action="store_true", help="list the zoo and exit")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    parser.add_argument(
        "--select",
        help="run only the tests pytest's -k EXPR picks (a focused run: a survivor of it is "
        "not a survivor of the suite)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --only: replace those mutants' rows in the doc (and its count) instead of "
        "printing",
    )
    args = parser.parse_args(argv)
    ids = [m.id for m in MUTANTS]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        print(f"error: duplicate mutant ids {sorted(duplicates)}", file=sys.stderr)
        return 2
    chosen = MUTANTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(ids)
        if unknown:
            print(f"error: unknown mutant ids {sorted(unknown)}", file=sys.stderr)
            return 2
        chosen = [m for m in MUTANTS if m.id in wanted]
    if args.provider:
        chosen = [m for m in chosen if m.provider == args.provider]
    if args.list:
        for m in chosen:
            print(f"{m.id} {m.provider:8} {m.path}: {_short(m.why, 100)}")
        return 0
    providers = sorted({m.provider for m in chosen})
    with ThreadPoolExecutor(args.jobs) as pool:
        baseline_runs = (
            []
            if args.no_baseline
            else [pool.submit(evaluate, None, p, args.timeout, args.select) for p in providers]
        )
        runs = [pool.submit(evaluate, m, m.provider, args.timeout, args.select) for m in chosen]
        baselines = [f.result() for f in baseline_runs]
        outcomes = []
        for future in runs:
            outcome = future.result()
            outcomes.append(outcome)
            print(
                f"{outcome.mutant.id}: {outcome.status} "
                f"{outcome.killed_by[:1] or ''} ({outcome.seconds:.0f}s)",
                flush=True,
            )
            print(_indent(outcome.detail), flush=True)
            if args.update and args.only:  # row by row, so a run cut short keeps its rows
                DOC.write_text(update_rows(DOC.read_text("utf-8"), render([], [outcome])), "utf-8")
    for b in baselines:
        print(f"baseline {b.mutant.provider}: {b.status} ({b.passed} passed)")
        if b.status != "survived":
            print(b.detail)
    text = render(baselines, outcomes)
    if args.update and args.only:
        DOC.write_text(update_rows(DOC.read_text("utf-8"), text), encoding="utf-8")
        print(f"updated {DOC.relative_to(ROOT)}")
    elif args.only or args.provider:
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    errors = [o.mutant.id for o in outcomes if o.status == "error"]
    survivors = [o.mutant.id for o in outcomes if o.status == "survived"]
    broken = [b.mutant.provider for b in baselines if b.status != "survived"]
    if errors:
        print(f"ERROR: mutants that could not be applied or run: {errors}", file=sys.stderr)
    if survivors:
        print(f"SURVIVED: {survivors}", file=sys.stderr)
    if broken:
        print(f"ERROR: baseline runs that fail: {broken}", file=sys.stderr)
    return 1 if errors or survivors or broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
