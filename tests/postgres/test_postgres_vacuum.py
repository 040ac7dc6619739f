"""The PostgreSQL provider vacuums a busy hub's hot tables and analyzes its new tables itself
(ostinato_postgres.vacuum): after real HelloCities runs, on a real server."""

from __future__ import annotations

import time
from typing import Any

import ostinato as ot
import psycopg
import pytest
from ostinato.relational import HISTORY
from ostinato_postgres import PostgresProvider
from ostinato_postgres.vacuum import DEAD_ROWS, HOT_TABLES, HubVacuum
from psycopg import sql

from .conftest import ProviderFactory

hello = pytest.importorskip("examples.hello_cities")

#: Enough HelloCities to leave well over DEAD_ROWS dead versions in each hot table.
RUNS = 800


def _run_hello_cities(provider: PostgresProvider, n: int = RUNS) -> None:
    client = ot.Client(provider)
    with ot.Worker(hello.app, provider):
        results = client.schedule_new_orchestrations(
            [ot.NewOrchestration(hello.hello_cities) for _ in range(n)]
        )
        for result in results:
            assert result.instance_id is not None
            state = client.wait_for_orchestration_completion(result.instance_id, timeout=120)
            assert state.runtime_status is ot.OrchestrationStatus.COMPLETED


def _table_stats(dsn: str, schema: str) -> dict[str, tuple[int, Any, Any]]:
    """Per hot table and the history: dead rows, last manual vacuum, last manual analyze."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        rows = connection.execute(
            "SELECT relname, n_dead_tup, last_vacuum, last_analyze FROM pg_stat_user_tables "
            "WHERE schemaname = %s AND relname = ANY(%s)",
            (schema, [*HOT_TABLES, HISTORY]),
        ).fetchall()
    return {str(name): (int(dead), vacuumed, analyzed) for name, dead, vacuumed, analyzed in rows}


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    """Wait until ``predicate()`` holds (the server publishes table statistics within about
    a second of a transaction, or ten of an idle connection's)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _without_autovacuum(dsn: str, provider: PostgresProvider) -> None:
    """Set the hub up with autovacuum off for its tables, so that only the provider vacuums
    and analyzes them while the test watches."""
    provider.setup()
    with psycopg.connect(dsn, autocommit=True) as connection:
        for table in (*HOT_TABLES, HISTORY):
            connection.execute(
                sql.SQL("ALTER TABLE {}.{} SET (autovacuum_enabled = false)").format(
                    sql.Identifier(provider.schema), sql.Identifier(table)
                )
            )


def test_a_busy_hub_has_its_hot_tables_vacuumed(
    make_provider: ProviderFactory, postgres_dsn: str
) -> None:
    provider = make_provider(vacuum_interval=0.2)
    _without_autovacuum(postgres_dsn, provider)
    _run_hello_cities(provider)

    # The provider vacuums every hot table and analyzes every table it writes (last_vacuum and
    # last_analyze are only set by explicit VACUUM and ANALYZE, not by autovacuum).
    def done() -> bool:
        stats = _table_stats(postgres_dsn, provider.schema)
        return all(
            (vacuumed is not None or table == HISTORY) and analyzed is not None
            for table, (_, vacuumed, analyzed) in stats.items()
        )

    _wait_for(done)
    assert provider._vacuum is not None and provider._vacuum.commands >= len(HOT_TABLES) + 1
    provider.close()
    assert provider._vacuum is None


def test_vacuum_once_takes_the_tables_with_enough_dead_rows(
    make_provider: ProviderFactory, postgres_dsn: str
) -> None:
    provider = make_provider(vacuum_interval=None)
    _without_autovacuum(postgres_dsn, provider)
    _run_hello_cities(provider)
    assert provider._vacuum is None
    _wait_for(
        lambda: all(
            dead >= DEAD_ROWS
            for table, (dead, _, _) in _table_stats(postgres_dsn, provider.schema).items()
            if table != HISTORY
        )
    )
    stats = _table_stats(postgres_dsn, provider.schema)
    assert len(stats) == len(HOT_TABLES) + 1
    assert all(vacuumed is None and analyzed is None for _, vacuumed, analyzed in stats.values())

    vacuum = HubVacuum(
        lambda: psycopg.connect(postgres_dsn, autocommit=True), provider.schema, interval=1.0
    )
    # Hot tables: vacuumed, and analyzed with it (never analyzed); the history (appended to,
    # never updated): analyzed alone.
    assert sorted(vacuum.vacuum_once()) == sorted(
        [f"VACUUM (SKIP_LOCKED, ANALYZE) {table}" for table in HOT_TABLES]
        + [f"ANALYZE (SKIP_LOCKED) {HISTORY}"]
    )
    after = _table_stats(postgres_dsn, provider.schema)
    for table, (dead, vacuumed, analyzed) in after.items():
        assert analyzed is not None, table
        if table != HISTORY:
            assert vacuumed is not None and dead < stats[table][0], table
    # Nothing is left to do until dead rows pile up again.
    assert vacuum.vacuum_once() == []


def test_vacuum_interval_must_be_positive_or_none() -> None:
    for bad in (0, -1.0, 10**7):
        with pytest.raises(ot.ConfigurationError, match="vacuum_interval"):
            PostgresProvider("host=/nowhere", vacuum_interval=bad)
    assert PostgresProvider("host=/nowhere", vacuum_interval=None).vacuum_interval is None
