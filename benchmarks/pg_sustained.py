"""Sustained load on one PostgreSQL task hub, with the provider's vacuum thread and without.

    python3 dev.py run python benchmarks/pg_sustained.py                # 8 rounds of 1,600
    python3 dev.py run python benchmarks/pg_sustained.py --rounds 12 --n 2000

Each side gets a fresh task hub and one worker (defaults) and runs ``--rounds`` rounds back to
back: ``--n`` of ``run.py``'s HelloCities started at once from the harness's client threads
(``start_at_once``), timed from the first start to the last completion. One side keeps the
provider's default ``vacuum_interval`` (:mod:`ostinato_postgres.vacuum`); the other sets it to
``None``, leaving the hub's tables to autovacuum (which visits a database once a minute by
default, at a moment of its choosing, so that side's rounds depend on when it comes). The sides
run one after the other, in the order given by ``--first``. Per round: orchestrations/s, the
dead row versions left in the hub's hot tables and whether its tables have planner statistics
yet (``pg_stat_user_tables``, which the server updates about once a second).

The server is ``OSTINATO_POSTGRES_DSN`` or a throwaway cluster with PostgreSQL's durable
defaults (:func:`ostinato_postgres.testing.benchmark_dsn`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import ostinato as ot
import psycopg
from ostinato.relational import HISTORY
from ostinato_postgres import PostgresProvider
from ostinato_postgres.testing import benchmark_dsn
from ostinato_postgres.vacuum import HOT_TABLES
from peers.protocol import start_at_once
from run import app, hello_cities


def one_round(client: ot.Client, n: int) -> float:
    """``n`` HelloCities started at once (the harness's ``start_at_once``); orchestrations/s."""
    started = time.perf_counter()
    ids = start_at_once(lambda: client.schedule_new_orchestration(hello_cities), n)
    for instance_id in ids:
        state = client.wait_for_orchestration_completion(instance_id, timeout=600)
        assert state.runtime_status is ot.OrchestrationStatus.COMPLETED, state.failure_details
    return n / (time.perf_counter() - started)


def table_state(dsn: str, schema: str) -> tuple[int, str]:
    """Dead rows in ``schema``'s hot tables, and who has analyzed all of its tables so far."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute(
            "SELECT COALESCE(SUM(n_dead_tup) FILTER (WHERE relname = ANY(%s)), 0), "
            "bool_and(last_analyze IS NOT NULL), bool_and(last_autoanalyze IS NOT NULL) "
            "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = ANY(%s)",
            (list(HOT_TABLES), schema, [*HOT_TABLES, HISTORY]),
        ).fetchone()
    assert row is not None
    dead, by_us, by_autovacuum = row
    return int(dead), "provider" if by_us else "autovacuum" if by_autovacuum else "no"


def run_side(dsn: str, name: str, rounds: int, n: int, **settings: Any) -> None:
    provider = PostgresProvider(dsn, task_hub=f"sustained_{time.strftime('%H%M%S')}", **settings)
    provider.setup()
    try:
        with ot.Worker(app, provider):
            client = ot.Client(provider)
            for round_number in range(1, rounds + 1):
                rate = one_round(client, n)
                dead, analyzed = table_state(dsn, provider.schema)
                print(
                    f"{name:>15} {round_number:>5} {rate:>9,.0f} {dead:>10,} {analyzed:>10}",
                    flush=True,
                )
    finally:
        provider.drop_task_hub()
        provider.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--n", type=int, default=1600, help="HelloCities per round")
    parser.add_argument("--first", choices=("vacuumed", "autovacuum"), default="vacuumed")
    args = parser.parse_args(argv)
    dsn = benchmark_dsn()
    sides: list[tuple[str, dict[str, Any]]] = [
        ("vacuumed", {}),
        ("autovacuum", {"vacuum_interval": None}),
    ]
    if args.first == "autovacuum":
        sides.reverse()
    print(f"{args.rounds} rounds of {args.n:,} HelloCities at once per side, one worker")
    print(f"{'side':>15} {'round':>5} {'orch/s':>9} {'dead rows':>10} {'analyzed':>10}")
    for name, settings in sides:
        run_side(dsn, name, args.rounds, args.n, **settings)


if __name__ == "__main__":
    main()
