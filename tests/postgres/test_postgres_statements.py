"""The toolkit's statements as the PostgreSQL dialect renders them (no server needed)."""

from __future__ import annotations

from ostinato.relational import Statements, render
from ostinato_postgres import PostgresDialect

SQL = Statements(PostgresDialect())


def test_claims_skip_rows_other_workers_hold() -> None:
    assert SQL.queue_claim == (
        "SELECT instance_id, dequeue_count FROM ostinato_orchestration_queue "
        "WHERE task_hub = %s AND visible_at <= %s ORDER BY visible_at LIMIT %s "
        "FOR UPDATE SKIP LOCKED"
    )
    assert SQL.activity_claim == (
        "SELECT id, instance_id, execution_id, task_id, name, input, dequeue_count "
        "FROM ostinato_activities WHERE task_hub = %s AND visible_at <= %s "
        "ORDER BY visible_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
    )


def test_lock_checks_and_the_reuse_id_check_lock_the_rows_they_read() -> None:
    assert SQL.instance_status == (
        "SELECT runtime_status FROM ostinato_instances "
        "WHERE task_hub = %s AND instance_id = %s FOR UPDATE"
    )
    assert SQL.queue_locks_in(2) == (
        "SELECT instance_id, lock_token, visible_at FROM ostinato_orchestration_queue "
        "WHERE task_hub = %s AND instance_id IN (%s, %s) FOR UPDATE"
    )
    assert SQL.activity_locks_in(2) == (
        "SELECT id, lock_token, visible_at FROM ostinato_activities "
        "WHERE task_hub = %s AND id IN (%s, %s) FOR UPDATE"
    )


def test_probes_and_reads_take_no_row_locks() -> None:
    for sql in (SQL.queue_peek, SQL.activity_peek, SQL.instance_select, SQL.history_select):
        assert "FOR UPDATE" not in sql
    assert SQL.queue_peek == (
        "SELECT 1 FROM ostinato_orchestration_queue WHERE task_hub = %s AND visible_at <= %s "
        "LIMIT %s"
    )


def test_tables_are_named_unqualified_and_found_through_the_search_path() -> None:
    # Each hub's schema is the connections' search_path, so statements name bare tables.
    ddl = render(PostgresDialect())
    assert "CREATE TABLE ostinato_instances (" in ddl
    assert 'instance_id TEXT COLLATE "C" NOT NULL' in ddl
    assert "." not in SQL.instances_insert(1).split("(")[0]


def test_placeholders_are_numbered_once_per_statement() -> None:
    """The provider's cursor sends the toolkit's ``%s`` statements with numbered
    placeholders, converting each distinct statement once (psycopg itself parses a
    statement with more than 50 parameters again at every execution)."""
    from ostinato_postgres.provider import _numbered

    assert _numbered("SELECT 1 FROM t WHERE a = %s AND b IN (%s, %s)") == (
        "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)"
    )
    assert _numbered("SELECT '%%' || %s") == "SELECT '%' || $1"
    insert = SQL.inbox_insert(64)
    assert insert.count("%s") > 50
    _numbered(insert)
    before = _numbered.cache_info()
    numbered = _numbered(insert)
    after = _numbered.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    assert "%s" not in numbered and f"${insert.count('%s')}" in numbered
