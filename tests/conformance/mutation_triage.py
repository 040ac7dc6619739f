# ruff: noqa: E501  (keys quote source lines exactly)
"""The triage of the mutation tool's survivors (``mutation_tool.py`` renders it into
``docs/conformance-mutation-tool.md``).

Keys are ``file|operator|the mutated line's text``; each value says why the mutant is
equivalent, or names the conformance test that closed the hole (and kills the mutant).
"""

from __future__ import annotations

#: An exact clock tie: the mutant differs only when the clock reads a lock's expiry (or a
#: message's visible-at time) to the microsecond, which no run can arrange.
_TIE = (
    "**equivalent**: `<=` and `<` differ only when the clock reads the lock's expiry to "
    "the microsecond; the clock is the real one (microsecond resolution, moving on between "
    "the claim and the check), so no run, and no provider author's, can arrange the tie."
)

#: A type annotation mutated: the module has ``from __future__ import annotations``, so
#: annotations are strings that nothing evaluates.
_ANNOTATION = (
    "**equivalent**: the mutation is inside a type annotation; the module starts with "
    "`from __future__ import annotations`, so annotations are never evaluated at run time "
    "(only mypy reads them, and `python3 dev.py lint` would reject this one)."
)

#: The row list of a lock check read for one instance id has at most one row.
_ONE_ROW = (
    "**equivalent**: the lock check reads the queue row of one instance id (its primary "
    "key; the `IN` list holds that one id), so `rows` has at most one row and `rows[-1]` "
    "is `rows[0]`."
)

TRIAGE: dict[str, str] = {
    "provider.py|ReplaceBinaryOperator_BitOr_Div|def _create_many(self, requests: Sequence[CreateRequest]) -> list[Exception / None]:": _ANNOTATION,
    "provider.py|NumberReplacer|if not rows or rows[ -1][1] != item.lock_token or (rows[0][2] or 0) <= now:": _ONE_ROW,
    "provider.py|ReplaceBinaryOperator_BitOr_Sub|def _fresh_creates(self, requests: Sequence[CreateRequest]) -> Script - None:": _ANNOTATION,
    "provider.py|AddNot|while not cause is not None:": (
        "**equivalent** (on SQLite): the loop never runs, so `is_unique_violation` always "
        "answers no. SQLite's write transactions are exclusive (`BEGIN IMMEDIATE`, one "
        "writer per file, across processes too), and every create and lease first looks for "
        "the row inside its own transaction, so no create or lease ever hits a key violation "
        "on SQLite: the answer is never asked for a real one. (PostgreSQL's dialect, whose "
        "creates can race into a key violation, has its own `is_unique_violation`.)"
    ),
    "provider.py|ReplaceComparisonOperator_LtE_Lt|if not rows or rows[0][1] != item.lock_token or (rows[0][2] or 0) < now:": _TIE,
    "provider.py|NumberReplacer|self._commits_pending.wait( 2.0)": (
        "**equivalent**: the background checkpointer waits for the event every commit sets, "
        "so the timeout only bounds how often an idle checkpointer looks again (1 s or 2 s); "
        "when WAL frames are copied into the database file changes no result (readers read "
        "the WAL, and a crash replays it), only the WAL's size meanwhile."
    ),
    "provider.py|ReplaceComparisonOperator_IsNot_Is|if exc_type is None:": (
        "**a hole, closed**: every committed write returned before signalling "
        "`provider.changes`, so in-process workers and clients woke only at their poll "
        "timeouts; every result stayed right, only late, and no test looked at the signal. "
        "`test_writes_wake_waiters_in_the_process` (new) checks that create, checkpoint, "
        "activity result and send each signal the change before returning and that a status "
        "change wakes the instance's watchers; it kills this mutant (zoo mutant R20)."
    ),
    'provider.py|ReplaceComparisonOperator_Eq_GtE|self._wal = str(mode).lower() >= "wal"': (
        "**equivalent**: SQLite's journal modes are `delete`, `truncate`, `persist`, "
        '`memory`, `wal` and `off`; `wal` is the only one that is not less than `"wal"`, so '
        "`>=` and `==` agree on every answer `PRAGMA journal_mode` can give."
    ),
    "provider.py|ReplaceComparisonOperator_Eq_Gt|ready = prepared if len(entries) > len(batch) else None": (
        "**equivalent**: the statements prepared before the transaction are never reused, so "
        "a batch whose items all hold their locks has its statements built again inside the "
        "transaction from the same items: the same writes (immediate messages stamped a few "
        "microseconds later), only slower. (Reusing them when some lock was lost is zoo "
        "mutant R13, which the suite kills.)"
    ),
    "file_provider.py|ReplaceBinaryOperator_BitOr_Mul|def get_instance(self, instance_id: str) -> InstanceRecord * None:": _ANNOTATION,
    "statements.py|ReplaceBinaryOperator_FloorDiv_Sub|rows = max(1, min(MAX_ROWS, (dialect.max_parameters - 4) - columns))": (
        "**equivalent on SQLite** (and PostgreSQL): chunks then hold up to 128 rows whatever "
        "their width, more parameters than the SQLite dialect's declared 999; but that is "
        "the limit of SQLite before 3.32, and the SQLite every supported Python ships "
        "(3.40 in CI) takes 32,766, far above 128 rows of the widest statement, so every "
        "statement still runs and writes the same rows. The mutant would break an engine "
        "whose real limit is close to the declared one (SQL Server: 2,100 parameters), whose "
        "conformance run needs a server this machine cannot have."
    ),
    "provider.py|AddNot|if not durable and self._group_sync:": (
        '**not observable by any test** (a power-cut bug): under `synchronous="FULL"` with '
        "group commit, durable commits return without waiting for the WAL's sync (and "
        "non-durable ones wait instead). The commit is in the operating system's page cache "
        "either way, so `kill -9` of the process loses nothing "
        "(`test_acknowledged_writes_survive_kill_9` passes, rightly); only losing the "
        "machine's power before the sync could show it, which no test can do. (The SQLite "
        'conformance run uses `synchronous="NORMAL"`, where the line is never reached.)'
    ),
    "provider.py|ReplaceBinaryOperator_Add_Sub|self._work_added[peek] = self._work_added.get(peek, 0) - 1": (
        "**equivalent**: the count of writes that may add work is only ever compared for "
        "equality with its value at the last empty claim; counting down changes it on every "
        "such write just as counting up does, so the same claims skip their look."
    ),
    "provider.py|AddNot|if not self.in_memory:": (
        "**a weaker claim, not a wrong behaviour** (left open, by design): a provider on a "
        "file then claims `multi_process=False`, so the suite skips the tests that need "
        "several processes (workers in separate processes, `kill -9` durability), naming "
        "the capability, in pytest's summary and in the conformance report "
        "(`docs/conformance-reports/sqlite.md` lists the capabilities claimed and each "
        "skip). The suite holds a provider to what it claims and cannot know what it should "
        "claim; the report, regenerated and reviewed, is where such a change shows."
    ),
}
