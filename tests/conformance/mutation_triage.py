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

TRIAGE: dict[str, str] = {
    "provider.py|AddNot|while cause is not None:": (
        "**equivalent** (on SQLite): the loop never runs, so `is_unique_violation` always "
        "answers no. SQLite's write transactions are exclusive (`BEGIN IMMEDIATE`, one "
        "writer per file, across processes too), and every create and lease first looks for "
        "the row inside its own transaction, so no create or lease ever hits a key violation "
        "on SQLite: the answer is never asked for a real one. (PostgreSQL's dialect, whose "
        "creates can race into a key violation, has its own `is_unique_violation`.)"
    ),
    "provider.py|ReplaceComparisonOperator_LtE_Lt|if not rows or rows[0][1] != item.lock_token or (rows[0][2] or 0) <= now:": _TIE,
}
