"""The PostgreSQL provider: the relational toolkit on psycopg 3 with a connection pool.

What this module adds to :mod:`ostinato.relational` (which owns the schema, the SQL and the
contract logic):

* :class:`PostgresDialect`: ``%s`` placeholders, ``FOR UPDATE SKIP LOCKED`` on the claiming
  queries (workers never wait for each other's rows), ``FOR UPDATE`` on rows whose values a
  transaction relies on (lock checks, the reuse-id check), ``TEXT COLLATE "C"`` keys (code-point
  order, the same as Python's, for paging and prefixes);
* **a schema per task hub** (``ostinato_<hub>`` unless named): each hub's tables, triggers
  and notification channel live in their own PostgreSQL schema, reached through the
  connections' ``search_path``; creating it is idempotent, versioned and serialized between
  processes by a transaction-scoped advisory lock, and a current hub is only read (no DDL,
  no table lock), so any number of workers may start beside busy ones;
* **LISTEN/NOTIFY**: statement-level triggers on the inbox, the activity queue and the
  instance table ``pg_notify`` the hub's channel when they commit; a listener thread on a
  dedicated connection turns each notification into ``self.changes.notify()`` (any kind of
  work: a notification does not say which), so an idle
  worker (or a client waiting for completion) in any process wakes at once instead of at its
  next poll. Polling stays the fallback: a lost listener connection is re-established with
  back-off and a wake-up is sent after each reconnect;
* a server restart or failover costs no caller an error: the pool checks, for free, that a
  connection it hands out has not been closed by the server, and replaces it if so;
* driver errors mapped at the edge (:meth:`PostgresProvider._errors`): deadlocks, serialization
  failures and lock timeouts become :class:`TransientDatabaseError`, and every call whose
  transaction failed with one is retried with jittered exponential back-off (nothing of a
  failed transaction was committed, so the retry is safe); everything else becomes a
  :class:`~ostinato.errors.ProviderError` naming the server.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import random
import re
import select
import threading
import time
import zlib
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
from ostinato.errors import ConfigurationError, ProviderError
from ostinato.provider import (
    ChangeSignal,
    InstanceRecord,
    OrchestrationMessage,
    ProviderCapabilities,
    ReuseIdPolicy,
)
from ostinato.relational import (
    ACTIVITIES,
    INBOX,
    INSTANCES,
    LATEST_VERSION,
    SCHEMA_TABLE,
    CallGroup,
    ColumnType,
    CreateRequest,
    Cursor,
    Dialect,
    RelationalProvider,
    RetriesTransientErrors,
    RowLock,
    Transaction,
    TransientDatabaseError,
    current_version,
    migrate,
    to_micros,
)
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ostinato_postgres.vacuum import HubVacuum

__all__ = ["PostgresDialect", "PostgresProvider", "TransientDatabaseError", "default_schema"]

log = logging.getLogger("ostinato.postgres")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: SQLSTATEs whose transaction was rolled back by the server and may simply be run again.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
    }
)


class PostgresDialect(Dialect):
    """PostgreSQL 12+ through psycopg 3."""

    placeholder = "%s"
    type_names = {
        ColumnType.IDENTITY: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.INTEGER: "INTEGER",
        # Code-point order (Python's), whatever the database's default collation is.
        ColumnType.KEY: 'TEXT COLLATE "C"',
        ColumnType.TEXT: "TEXT",
    }
    max_parameters = 30000

    def lock_clause(self, lock: RowLock) -> str:
        if lock is RowLock.CLAIM:
            return " FOR UPDATE SKIP LOCKED"
        if lock is RowLock.HOLD:
            return " FOR UPDATE"
        return ""

    def starts_with(self, column: str) -> str:
        return f"LEFT({column}, %s) = %s"

    def is_unique_violation(self, error: BaseException) -> bool:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, psycopg.errors.UniqueViolation):
                return True
            cause = cause.__cause__
        return False

    def table_names_sql(self) -> str:
        return (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )


def _int4(text: str) -> int:
    """A stable signed 32-bit hash of ``text`` (an advisory-lock key)."""
    return zlib.crc32(text.encode()) - 2**31


def _check_connection(connection: psycopg.Connection[Any]) -> None:
    """The pool's check when handing out a connection: free unless the server said something.

    An idle connection has nothing to read; if its socket is readable the server has closed it
    (a restart or failover) or sent a message, and an empty query tells which, so a dead
    connection is replaced instead of failing the caller's transaction.
    """
    if connection.closed or connection.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(connection)


def server_of(dsn: str) -> str:
    """Where ``dsn`` points, without credentials: ``host:port/dbname`` (libpq's defaults filled
    in from ``PGHOST``/``PGPORT``/``PGDATABASE``). Raises ``psycopg.ProgrammingError`` if
    ``dsn`` is not a connection string."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or 5432)
    dbname = params.get("dbname") or os.environ.get("PGDATABASE")
    return f"{host}:{port}" + (f"/{dbname}" if dbname else "")


def _first_line(exc: BaseException) -> str:
    """The driver's message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines) or type(exc).__name__


#: The tables whose writes NOTIFY the hub's channel, and on which statements.
_NOTIFY_TABLES = ((INBOX, "INSERT"), (ACTIVITIES, "INSERT"), (INSTANCES, "INSERT OR UPDATE"))


def default_schema(task_hub: str) -> str:
    """The PostgreSQL schema of a task hub when none is configured: ``ostinato_<hub>``."""
    return f"ostinato_{task_hub}".lower()


class PostgresProvider(RetriesTransientErrors, RelationalProvider):
    """Stores task hubs in a PostgreSQL database, one schema per hub.

    :param dsn: a libpq connection string or URI (``postgresql://user:pw@host:5432/db``);
        from config: ``OSTINATO_POSTGRES_DSN``.
    :param task_hub: the task hub's name.
    :param schema: the PostgreSQL schema holding the hub (default ``ostinato_<task_hub>``,
        lower-cased); letters, digits and ``_``, at most 63 characters.
    :param pool_min_size: connections the pool keeps open.
    :param pool_max_size: the most connections the pool opens (one more is used by the
        listener).
    :param listen: wake on LISTEN/NOTIFY (otherwise waiters in other processes poll).
    :param max_retries: how often a transaction rolled back by a deadlock or serialization
        failure is run again before the error is raised.
    :param connect_timeout: seconds to wait for the server when connecting (an unreachable
        server fails after this, naming host, port and the driver's reason).
    :param pool_timeout: seconds a call waits for a free connection from the pool.
    :param prepared_statements: let psycopg prepare frequent statements on the server (off
        for connection poolers in transaction mode, e.g. PgBouncer before 1.21; such poolers
        also don't pass LISTEN through: set ``listen=False`` there).
    :param vacuum_interval: seconds between looks at the hub's hot tables, each vacuumed once
        it holds :data:`~ostinato_postgres.vacuum.DEAD_ROWS` dead rows
        (:mod:`ostinato_postgres.vacuum`); ``None`` leaves them to autovacuum.
    """

    capabilities = ProviderCapabilities(
        transactional_checkpoints=True,
        # A TEXT value may hold up to 1 GB; stay well clear of it.
        max_payload_bytes=256 * 1024 * 1024,
        multi_process=True,
        lock_expiry=True,
        eager_activities=True,
        eager_orchestrations=True,
        eager_steps=True,
    )

    def __init__(
        self,
        dsn: str = "",
        *,
        task_hub: str = "default",
        schema: str | None = None,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        listen: bool = True,
        max_retries: int = 8,
        connect_timeout: float = 5.0,
        pool_timeout: float = 30.0,
        prepared_statements: bool = True,
        vacuum_interval: float | None = 1.0,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigurationError(
                "PostgreSQL setting 'dsn' is required: a libpq connection string such as "
                "'postgresql://user:password@localhost:5432/dbname' (OSTINATO_POSTGRES_DSN)"
            )
        try:
            self.server = server_of(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(
                f"PostgreSQL setting 'dsn' is not a connection string: {_first_line(exc)}; "
                "expected e.g. 'postgresql://user:password@localhost:5432/dbname'"
            ) from None
        for name, seconds in (("connect_timeout", connect_timeout), ("pool_timeout", pool_timeout)):
            if not 0 < seconds < 10**6:
                raise ConfigurationError(
                    f"PostgreSQL setting {name!r} must be a positive number of seconds"
                )
        if vacuum_interval is not None and not 0 < vacuum_interval < 10**6:
            raise ConfigurationError(
                "PostgreSQL setting 'vacuum_interval' must be a positive number of seconds, or"
                " None to leave the hub's tables to autovacuum"
            )
        if not isinstance(task_hub, str) or not task_hub:
            raise ConfigurationError("PostgreSQL setting 'task_hub' must be a non-empty string")
        schema = schema or default_schema(task_hub)
        if not _IDENTIFIER.match(schema):
            raise ConfigurationError(
                f"PostgreSQL schema {schema!r} is not a plain identifier (letters, digits and "
                "'_', at most 63 characters, not starting with a digit); set the 'schema' "
                "setting explicitly for this task hub"
            )
        if pool_min_size < 0 or pool_max_size < max(1, pool_min_size):
            raise ConfigurationError(
                "PostgreSQL settings need 0 <= pool_min_size <= pool_max_size, pool_max_size >= 1"
            )
        super().__init__(PostgresDialect(), task_hub)
        self.dsn = dsn
        self.schema = schema
        self.channel = schema
        self.listen = listen
        self.max_retries = max(0, max_retries)
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self._prepare_threshold: int | None = 5 if prepared_statements else None
        self._pool_sizes = (pool_min_size, pool_max_size)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._guard = threading.RLock()
        self._ready = False
        self._closed = False
        self._listener: _Listener | None = None
        self.vacuum_interval = vacuum_interval
        self._vacuum: HubVacuum | None = None
        self._hub_key = _int4(f"hub:{schema}")
        self._own_pids: set[int] = set()
        self._creates: CallGroup[CreateRequest] = CallGroup(self.create_instances)

    def __repr__(self) -> str:
        return (
            f"PostgresProvider({self.server!r}, schema={self.schema!r}, task_hub={self.task_hub!r})"
        )

    # -- connections ----------------------------------------------------------------------
    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        # This provider notifies its own process itself after each commit: the listener
        # skips notifications sent by these connections.
        self._own_pids.add(connection.info.backend_pid)

    def _get_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._guard:
            if self._pool is None:
                self._closed = False
                min_size, max_size = self._pool_sizes
                self._probe()
                pool = ConnectionPool(
                    self.dsn,
                    min_size=min_size,
                    max_size=max_size,
                    kwargs={
                        "autocommit": True,
                        "prepare_threshold": self._prepare_threshold,
                        "connect_timeout": self._libpq_connect_timeout,
                    },
                    configure=self._configure,
                    check=_check_connection,
                    timeout=self.pool_timeout,
                    name=f"ostinato-{self.schema}",
                    open=False,
                )
                try:
                    with self._errors():
                        pool.open(wait=min_size > 0, timeout=self.pool_timeout)
                except BaseException:
                    pool.close()  # or its threads would keep trying to connect
                    raise
                self._pool = pool
                if self.vacuum_interval is not None:
                    self._vacuum = HubVacuum(pool.connection, self.schema, self.vacuum_interval)
                    self._vacuum.start()
            return self._pool

    @property
    def _libpq_connect_timeout(self) -> int:
        return max(1, math.ceil(self.connect_timeout))

    def _probe(self) -> None:
        """Connect once before opening the pool: an unreachable server, a wrong password or a
        missing database fail at once with the driver's reason (the pool would retry)."""
        try:
            psycopg.connect(self.dsn, connect_timeout=self._libpq_connect_timeout).close()
        except psycopg.Error as exc:
            reason = _first_line(exc)
            if isinstance(exc, psycopg.errors.ConnectionTimeout):
                reason = f"no answer within {self.connect_timeout:g}s (connect_timeout)"
            raise ProviderError(
                f"Cannot connect to the PostgreSQL server at {self.server}: {reason}"
            ) from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._errors(), self._get_pool().connection() as connection:
            yield connection

    @contextlib.contextmanager
    def transaction(self, durable: bool) -> Iterator[Transaction]:
        """A transaction on a pooled connection (durable=False: ``synchronous_commit`` off)."""
        if not self._ready:
            self.setup()
        with (
            self._connection() as connection,
            connection.transaction(),
            _Cursor(connection) as cursor,
        ):
            if not durable:
                # Its loss is harmless (see RelationalProvider.transaction): don't wait for
                # the WAL.
                cursor.execute("SET LOCAL synchronous_commit = off")
            yield Transaction(cursor)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor on a pooled connection in autocommit mode."""
        if not self._ready:
            self.setup()
        with self._connection() as connection, _Cursor(connection) as cursor:
            yield cursor

    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        # Concurrent creates in this process share one transaction (one commit, one WAL
        # flush, a few round trips). One that the database rolled back (a deadlock, a
        # serialization failure) runs again on its own, retried.
        try:
            self._creates((record, start, policy))
        except TransientDatabaseError:
            super().create_instance(record, start, policy)

    def guard_create(self, cursor: Cursor, instance_ids: Sequence[str]) -> None:
        """Creates of one id serialize on an advisory lock (FOR UPDATE can't lock a missing
        row), so N concurrent creates (any process) give one instance and N-1 conflicts.

        One statement takes the locks of a whole batch, in ascending key order (the order of
        the array ``unnest`` reads), so two batches never wait for each other crosswise."""
        if instance_ids:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, k) FROM unnest(%s::int4[]) AS k",
                (self._hub_key, sorted({_int4(i) for i in instance_ids})),
            )
            cursor.fetchall()

    def close(self) -> None:
        """Stop the listener and close the pool (a later call reopens them)."""
        with self._guard:
            self._closed = True
            listener, self._listener = self._listener, None
            vacuum, self._vacuum = self._vacuum, None
            pool, self._pool = self._pool, None
        if listener is not None:
            listener.stop()
        if vacuum is not None:
            vacuum.stop()
        if pool is not None:
            pool.close()

    # -- error mapping --------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map psycopg errors to ostinato's (the driver error stays as ``__cause__``)."""
        try:
            yield
        except psycopg.Error as exc:
            raise self._map_error(exc) from exc
        except PoolTimeout as exc:
            raise ProviderError(
                f"No connection to the PostgreSQL server at {self.server} became available"
                f" within {self.pool_timeout:g}s ({exc}); check that the server is reachable"
                " and pool_max_size"
            ) from exc

    def _map_error(self, exc: psycopg.Error) -> Exception:
        state = exc.sqlstate or ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if state in _TRANSIENT_SQLSTATES:
            return TransientDatabaseError(f"PostgreSQL rolled back a transaction: {message}")
        if isinstance(exc, psycopg.OperationalError) and not state:
            return ProviderError(f"Cannot reach the PostgreSQL server at {self.server}: {message}")
        if state == "42501":
            return ConfigurationError(
                f"The PostgreSQL user lacks a privilege ostinato needs (schema "
                f"{self.schema!r}): {message}"
            )
        return ProviderError(f"PostgreSQL error ({state or 'no SQLSTATE'}): {message}")

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create or migrate the hub's schema, tables and notify triggers (idempotent).

        A hub that is already current costs a few catalog reads and no DDL, so workers start
        beside busy ones without taking a lock their work needs. Otherwise concurrent callers,
        in any process, serialize on an advisory lock, and each piece (schema, each migration,
        the trigger function, each trigger) is created only if it is missing. A setup that
        the server rolls back (deadlock, serialization failure) is run again.
        """
        with self._guard:
            if self._ready:
                return
            for attempt in itertools.count():
                try:
                    self._set_up()
                    break
                except TransientDatabaseError:
                    if attempt >= self.max_retries:
                        raise
                    log.info("Setting up schema %r was rolled back; retrying", self.schema)
                    time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
            self._ready = True

    def _set_up(self) -> None:
        with self._connection() as connection:
            cur = connection.cursor()
            if self._is_current(cur):
                return
            with connection.transaction():
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_int4(f"ostinato:{self.schema}"),))
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                migrate(cur, self.dialect, to_micros(self.now()))
                function, triggers = self._notify_objects(cur)
                for statement in self._notify_ddl(function, triggers):
                    cur.execute(statement)

    def _is_current(self, cur: Cursor) -> bool:
        """Whether the hub has the latest schema version and all its notify triggers."""
        cur.execute("SELECT to_regclass(%s)", (f"{self.schema}.{SCHEMA_TABLE}",))
        rows = cur.fetchall()
        if not rows or rows[0][0] is None or current_version(cur, self.dialect) != LATEST_VERSION:
            return False
        function, triggers = self._notify_objects(cur)
        return function and len(triggers) == len(_NOTIFY_TABLES)

    def _notify_objects(self, cur: Cursor) -> tuple[bool, set[str]]:
        """Whether the hub's notify function exists, and the names of its notify triggers."""
        cur.execute(
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = 'ostinato_notify'",
            (self.schema,),
        )
        function = bool(cur.fetchall())
        cur.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (self.schema,),
        )
        return function, {str(r[0]) for r in cur.fetchall()}

    def _notify_ddl(self, function: bool, triggers: set[str]) -> list[sql.Composed]:
        """What is missing of the trigger function and the statement-level triggers that
        NOTIFY the hub's channel."""
        statements: list[sql.Composed] = []
        if not function:
            statements.append(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION ostinato_notify() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify({}, ''); RETURN NULL; END $$"
                ).format(sql.Literal(self.channel))
            )
        for table, events in _NOTIFY_TABLES:
            name = f"{table}_notify"
            if name in triggers:
                continue
            statements.append(
                sql.SQL(
                    "CREATE TRIGGER {} AFTER " + events + " ON {} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION ostinato_notify()"
                ).format(sql.Identifier(name), sql.Identifier(table))
            )
        return statements

    def drop_task_hub(self) -> None:
        """Delete the hub's schema and everything in it (irreversible)."""
        with self._connection() as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )
        self._ready = False

    def server_version(self) -> str:
        """The server's version string (``SHOW server_version``)."""
        with self._connection() as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    # -- change notifications -------------------------------------------------------------
    @property
    def changes(self) -> ChangeSignal:
        """The change signal, fed across processes by LISTEN/NOTIFY (started on first use)."""
        signal = super().changes
        if self.listen and self._listener is None and not self._closed:
            with self._guard:
                if self._listener is None and not self._closed:
                    self._listener = _Listener(self.dsn, self.channel, signal, self._own_pids)
                    self._listener.start()
        return signal

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Block until the listener is subscribed to the hub's channel (for tests)."""
        _ = self.changes
        listener = self._listener
        return listener is not None and listener.listening.wait(timeout)


@functools.lru_cache(maxsize=1024)
def _numbered(query: str) -> str:
    """``query`` with its ``%s`` placeholders numbered for the server (``$1``, ``$2``...).

    The toolkit's statements are few (multi-row ones come in power-of-two sizes), so each is
    converted once; psycopg's own conversion parses every statement with more than 50
    parameters again at each execution, which cost a quarter of a busy worker's time.
    """
    pieces = query.replace("%%", "\0").split("%s")
    numbered = [pieces[0]]
    for n, piece in enumerate(pieces[1:], 1):
        numbered += (f"${n}", piece)
    return "".join(numbered).replace("\0", "%")


class _Cursor(psycopg.RawCursor[Any]):
    """A cursor taking the toolkit's ``%s`` statements, sent with numbered placeholders
    (:func:`_numbered`); ``execute_script`` sends a write's statements in one pipeline: one
    round trip to the server instead of one per statement (an error still fails the
    transaction, raised when the pipeline syncs)."""

    def execute(  # type: ignore[override]
        self, query: str, params: Sequence[Any] | None = None, *, prepare: bool | None = None
    ) -> _Cursor:
        if params is not None:
            query = _numbered(query)
        super().execute(query, params, prepare=prepare)
        return self

    def execute_script(self, script: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self.connection.pipeline():
            for statement, params in script:
                self.execute(statement, params)


class _Listener:
    """A daemon thread that LISTENs on a channel and feeds a :class:`ChangeSignal`."""

    def __init__(
        self, dsn: str, channel: str, signal: ChangeSignal, ignore_pids: Collection[int] = ()
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.signal = signal
        self.ignore_pids = ignore_pids
        self.listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ostinato-listen-{channel}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    backoff = 0.1
                    # Anything committed while we were not listening: wake waiters once.
                    self.signal.notify()
                    while not self._stopping.is_set():
                        for notification in conn.notifies(timeout=0.25):
                            if notification.pid not in self.ignore_pids:
                                self.signal.notify()
            except psycopg.Error as exc:
                self.listening.clear()
                if self._stopping.is_set():
                    return
                log.warning("PostgreSQL listener lost its connection (%s); reconnecting", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
