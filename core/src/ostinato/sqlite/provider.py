"""The SQLite provider: ostinato's embedded default, a single database file, no server.

Built on the relational toolkit (:mod:`ostinato.relational`); this module adds only the SQLite
dialect and connection handling:

* one write connection per provider, a read connection per thread (``:memory:``: one shared
  connection, all calls serialized);
* WAL journal, so readers never wait for the writer, checkpointed by a background thread;
* other connections' commits (other processes) wake this process's waiters: a watcher thread
  notices them (``PRAGMA data_version``) and fires :attr:`changes`;
* ``synchronous=FULL`` by default, so a call that returned survives a power cut (``NORMAL``
  trades that for speed), implemented as group commit: the WAL is synced after the write lock
  is released, one sync for every commit waiting (``group_commit=False``: SQLite's own sync);
* every write is a ``BEGIN IMMEDIATE`` transaction: writers serialize up front instead of
  failing on lock upgrade; within a process they queue on a mutex shared by every provider
  on the same file, across processes on a file lock beside the database
  (:mod:`~ostinato.sqlite.write_lock`: a waiter goes on within about a millisecond of the
  holder letting go), and
  behind other applications' writers on SQLite's busy timeout. That makes the
  check-and-write writes (create with a reuse-id policy, lock checks, purge) atomic between
  processes too;
* driver errors are mapped at the edge: a corrupt or non-SQLite file, or a database of
  another application, gives a clear :class:`~ostinato.errors.ProviderError` or
  :class:`~ostinato.errors.ConfigurationError` instead of a raw ``sqlite3`` traceback.

The schema is the toolkit's, rendered for SQLite in ``schema.sql`` beside this module.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from functools import partial

from ostinato.errors import ConfigurationError, ProviderError
from ostinato.provider import (
    InstanceRecord,
    OrchestrationMessage,
    ProviderCapabilities,
    ReuseIdPolicy,
)
from ostinato.relational import (
    SCHEMA_TABLE,
    CallGroup,
    ColumnType,
    CreateRequest,
    Cursor,
    Dialect,
    RelationalProvider,
    Transaction,
    migrate,
    table_names,
    to_micros,
)
from ostinato.sqlite.write_lock import WriteLock

__all__ = ["SYNCHRONOUS_MODES", "SqliteDialect", "SqliteProvider"]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: WAL size (pages) at which a writer checkpoints itself; normally the background thread
#: has copied nearly everything by then, so the writer's share is small.
WRITER_AUTOCHECKPOINT_PAGES = 10000
#: WAL length (pages) from which the background checkpointer finishes under the write mutex.
CATCH_UP_PAGES = 2000
#: Seconds the background checkpointer lets commits accumulate before a checkpoint.
CHECKPOINT_INTERVAL = 0.02
#: Seconds between the watcher's looks for other connections' commits while they commit ...
WATCH_INTERVAL = 0.001
#: ... and, doubling from there, at most while they don't.
WATCH_IDLE_INTERVAL = 0.02
#: Free pages one reclaim_space call gives back (4 KiB each: 8 MiB), so it holds the write
#: lock only briefly.
RECLAIM_PAGES = 2048

#: The longest busy timeout SQLite takes (its milliseconds are a 32-bit integer).
MAX_BUSY_TIMEOUT = (2**31 - 1) // 1000

_MUTEXES: dict[str, threading.RLock] = {}
_MUTEXES_GUARD = threading.Lock()


#: Flush a file's data (and the size, when it changed) but not its timestamps: what SQLite
#: itself uses for the WAL on Linux.
_datasync = getattr(os, "fdatasync", os.fsync)


def _file_mutex(path: str) -> threading.RLock:
    """The in-process write mutex of a database file (shared by every provider on it)."""
    key = os.path.realpath(path)
    with _MUTEXES_GUARD:
        return _MUTEXES.setdefault(key, threading.RLock())


class SqliteDialect(Dialect):
    """SQLite 3.24+ (UPSERT); write transactions are exclusive, so no row-locking hints."""

    placeholder = "?"
    type_names = {
        ColumnType.IDENTITY: "INTEGER PRIMARY KEY",
        ColumnType.BIGINT: "INTEGER",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.KEY: "TEXT",
        ColumnType.TEXT: "TEXT",
    }

    def table_suffix(self, clustered: bool) -> str:
        return " WITHOUT ROWID" if clustered else ""

    def is_unique_violation(self, error: BaseException) -> bool:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, sqlite3.IntegrityError):
                return True
            cause = cause.__cause__
        return False

    def table_names_sql(self) -> str:
        return "SELECT name FROM sqlite_master WHERE type = 'table'"


class SqliteProvider(RelationalProvider):
    """Stores task hubs in one SQLite database file.

    :param path: the database file (created if missing), or ``":memory:"`` for a private
        in-process database (tests; one shared connection, gone when closed).
    :param task_hub: the task hub's name; several hubs share one file, isolated by name.
    :param synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (default: every commit
        is durable), ``"NORMAL"`` (in WAL mode, a power cut may lose the last commits but
        never corrupts), ``"OFF"`` or ``"EXTRA"``.
    :param busy_timeout: seconds a write waits for another process's transaction.
    :param group_commit: with ``synchronous="FULL"`` on a file, sync the write-ahead log
        after releasing the write lock, one sync for every commit waiting (default). A call
        still returns only once its commit is on disk, and a power cut rolls back only
        commits no call has returned for; but another connection may read a commit up to one
        sync (about a millisecond) before it is on disk. ``False``: SQLite syncs inside the
        write lock, one sync per commit, nothing visible before it is durable.
    """

    capabilities = ProviderCapabilities(
        transactional_checkpoints=True,
        max_payload_bytes=100 * 1024 * 1024,
        multi_process=True,
        lock_expiry=True,
        # One file has one writer: a second process adds a little (its Python work overlaps
        # the other's commits); more only take turns on the write lock (docs/scaling.md).
        worker_processes=2,
        eager_activities=True,
        eager_orchestrations=True,
        eager_steps=True,
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = "ostinato.db",
        *,
        task_hub: str = "default",
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        group_commit: bool = True,
    ) -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ConfigurationError("SQLite setting 'path' must be a non-empty file path")
        if not isinstance(task_hub, str) or not task_hub:
            raise ConfigurationError("SQLite setting 'task_hub' must be a non-empty string")
        mode = str(synchronous).upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ConfigurationError(
                f"SQLite setting 'synchronous' must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                f"not {synchronous!r}"
            )
        if (
            not isinstance(busy_timeout, int | float)
            or isinstance(busy_timeout, bool)
            or not 0 <= busy_timeout <= MAX_BUSY_TIMEOUT
        ):
            raise ConfigurationError(
                "SQLite setting 'busy_timeout' must be a number of seconds from 0 to"
                f" {MAX_BUSY_TIMEOUT:,}, not {busy_timeout!r}"
            )
        super().__init__(SqliteDialect(), task_hub)
        self.path = path
        self.synchronous = mode
        self.busy_timeout = float(busy_timeout)
        self.in_memory = path == ":memory:"
        if self.in_memory:
            self.capabilities = ProviderCapabilities(
                transactional_checkpoints=True,
                max_payload_bytes=SqliteProvider.capabilities.max_payload_bytes,
                multi_process=False,
                lock_expiry=True,
                eager_activities=True,
                eager_orchestrations=True,
                eager_steps=True,
            )
        self._mutex = threading.RLock() if self.in_memory else _file_mutex(path)
        #: Taken after the mutex around each write transaction (file databases).
        self._write_lock = None if self.in_memory else WriteLock(os.path.realpath(path))
        self._local = threading.local()
        self._write_cursor: tuple[int, sqlite3.Cursor] | None = None
        # FULL on a file: connections run at NORMAL (commits are not synced inside the write
        # lock) and each durable transaction syncs the WAL itself after releasing the lock, so
        # one sync serves every commit that is waiting (group commit). Claims and releases
        # (non-durable) do not wait for a sync at all. Same guarantee as FULL: a call that
        # returned is on disk. Elsewhere SQLite's own setting applies as given.
        self._group_sync = (
            bool(group_commit) and mode == "FULL" and not self.in_memory and os.name == "posix"
        )
        self._connection_synchronous = "NORMAL" if self._group_sync else mode
        self._toggle_sync = (
            not self._group_sync and mode in ("FULL", "EXTRA") and not self.in_memory
        )
        self._durable = True
        self._sync_guard = threading.Lock()
        #: How many times this provider synced the WAL itself (group commit), for monitoring.
        self.wal_syncs = 0
        self._commit_seq = 0
        self._synced_seq = 0
        self._wal_fd: int | None = None
        self._wal_inode = 0
        self._connections: list[sqlite3.Connection] = []
        self._connections_guard = threading.Lock()
        self._generation = 0
        self._commits_pending = threading.Event()
        #: The background threads (checkpointer, watcher) and the event that stops them.
        self._threads: tuple[list[threading.Thread], threading.Event] | None = None
        self._wal = False
        self._ready = False
        self._setup_guard = threading.Lock()
        self._creates: CallGroup[CreateRequest] = CallGroup(self._create_many)

    def __repr__(self) -> str:
        return f"SqliteProvider({self.path!r}, task_hub={self.task_hub!r})"

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self.in_memory:
            self._make_parent_directory()
        try:
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"Cannot open the SQLite database '{self.path}': {exc}"
            ) from exc
        # Settings are validated above: these are not user text.
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}").fetchall()
        connection.execute(f"PRAGMA synchronous = {self._connection_synchronous}").fetchall()
        with self._connections_guard:
            self._connections.append(connection)
        return connection

    def _make_parent_directory(self) -> None:
        """Create the database file's directory (``var/`` of ``var/app.db``) if missing."""
        parent = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(parent):
            return
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the directory {parent!r} of the SQLite database: {exc.strerror}"
            ) from exc

    def _writer(self) -> sqlite3.Cursor:
        """The provider's one write connection (call with the mutex held).

        Writes share one connection so its page cache stays warm; readers have their own.
        """
        cached = self._write_cursor
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        connection = self._connect()
        cursor = connection.cursor()
        if self._ready and self._wal:
            self._start_threads(connection)
        self._write_cursor = (self._generation, cursor)
        self._durable = True
        return cursor

    def _start_threads(self, writer: sqlite3.Connection) -> None:
        """Start the background threads of a file database in WAL mode (call with the mutex).

        The checkpointer copies the WAL into the database off the write path; the writer
        checkpoints itself only if the WAL grows past ``WRITER_AUTOCHECKPOINT_PAGES``. The
        watcher notices other connections' commits (:meth:`_watch_loop`).
        """
        writer.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}").fetchall()
        ((version,),) = writer.execute("PRAGMA data_version").fetchall()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._checkpoint_loop,
                args=(self._connect(), stop),
                name="ostinato-sqlite-checkpoint",
                daemon=True,
            ),
            threading.Thread(
                target=self._watch_loop,
                args=(self._generation, version, stop),
                name="ostinato-sqlite-watch",
                daemon=True,
            ),
        ]
        self._threads = (threads, stop)
        for thread in threads:
            thread.start()

    def _watch_loop(self, generation: int, seen: int, stop: threading.Event) -> None:
        """Notify :attr:`changes` when another connection commits (another process, or another
        provider in this one): their writes wake this process's waiters, not only its polls.

        Every ``WATCH_INTERVAL`` seconds while others commit, backing off to
        ``WATCH_IDLE_INTERVAL`` while they don't, it asks the write connection for its
        ``PRAGMA data_version``, which only other connections' commits change. That read
        needs the write mutex; while this process writes it waits for the next round.
        """
        interval = WATCH_INTERVAL
        while not stop.wait(interval):
            interval = min(interval * 2, WATCH_IDLE_INTERVAL)
            if not self._mutex.acquire(blocking=False):
                continue
            try:
                cached = self._write_cursor
                if stop.is_set() or cached is None or cached[0] != generation:
                    continue
                try:
                    ((version,),) = cached[1].execute("PRAGMA data_version").fetchall()
                except sqlite3.Error:
                    continue  # closing, or busy: the next round asks again
            finally:
                self._mutex.release()
            if version != seen:
                seen = version
                self.changes.notify()
                interval = WATCH_INTERVAL

    def _checkpoint_loop(self, connection: sqlite3.Connection, stop: threading.Event) -> None:
        """Copy committed WAL frames into the database while writers go on (PASSIVE)."""
        while not stop.is_set():
            self._commits_pending.wait(1.0)
            if stop.wait(CHECKPOINT_INTERVAL):
                break
            if not self._commits_pending.is_set():
                continue
            self._commits_pending.clear()
            with contextlib.suppress(sqlite3.Error):  # busy or closing: the next round retries
                # Copies (and syncs) while writers go on. Whenever it has caught up, the next
                # writer restarts the WAL from the beginning. A steady load may never let it
                # catch up: once the WAL is long, one short round under the write mutex copies
                # the last frames (a brief pause every few megabytes, not every round).
                ((_, frames, _),) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if frames >= CATCH_UP_PAGES:
                    with self._mutex:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _reader(self) -> sqlite3.Cursor:
        """This thread's read connection (the write connection for ``:memory:``)."""
        if self.in_memory:
            return self._writer()
        cached = getattr(self._local, "cursor", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]  # type: ignore[no-any-return]
        cursor = self._connect().cursor()
        self._local.cursor = (self._generation, cursor)
        return cursor

    def close(self) -> None:
        """Close every connection this provider opened (a later call reopens)."""
        background, self._threads = self._threads, None
        if background is not None:
            threads, stop = background
            stop.set()
            self._commits_pending.set()  # wake the checkpointer now
            for thread in threads:
                thread.join(timeout=self.busy_timeout + 5)
        with self._mutex, self._connections_guard:
            self._generation += 1
            self._write_cursor = None
            connections, self._connections = self._connections, []
            if self._wal_fd is not None:
                with self._sync_guard, contextlib.suppress(OSError):
                    os.close(self._wal_fd)
                self._wal_fd = None
            for connection in connections:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
            if self._write_lock is not None:
                self._write_lock.close()
                self._write_lock = WriteLock(self._write_lock.database)
            if self.in_memory:
                self._ready = False

    # -- client side ----------------------------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        # Writers take turns anyway: concurrent creates share one transaction and one sync.
        self._creates((record, start, policy))

    # -- error mapping --------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map ``sqlite3`` errors to ostinato's, naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._map_error(exc) from exc

    def _map_error(self, exc: sqlite3.Error) -> Exception:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "encrypted" in text
        ):
            return ProviderError(
                f"'{self.path}' is not a usable SQLite database: the file is corrupt or is "
                f"not a database ({text}). Point ostinato at another file or restore it."
            )
        if "locked" in text or "busy" in text:
            return self._lock_timeout(f" ({text})")
        if "unable to open" in text:
            return ConfigurationError(f"Cannot open the SQLite database '{self.path}': {text}")
        return ProviderError(f"SQLite error on '{self.path}': {text}")

    def _lock_timeout(self, detail: str = "") -> ProviderError:
        return ProviderError(
            f"The SQLite database '{self.path}' stayed locked by another connection for "
            f"more than {self.busy_timeout:g}s{detail}"
        )

    # -- transactions ---------------------------------------------------------------------
    def transaction(self, durable: bool) -> contextlib.AbstractContextManager[Transaction]:
        """A ``BEGIN IMMEDIATE`` transaction on the write connection (see the module doc)."""
        if not self._ready:
            self.setup()
        return self._transaction(durable)

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[Transaction]:
        seq: int | None = None
        with self._mutex:
            try:
                cursor = self._writer()
                if self._toggle_sync and durable != self._durable:
                    # Without group commit: claims and releases need not reach the disk (see
                    # RelationalProvider.transaction); the next durable commit syncs them too.
                    mode = self.synchronous if durable else "NORMAL"
                    cursor.execute(f"PRAGMA synchronous = {mode}").fetchall()
                    self._durable = durable
                write_lock = self._write_lock
                if write_lock is not None and not write_lock.acquire(self.busy_timeout):
                    raise self._lock_timeout()
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    transaction = Transaction(cursor)
                    try:
                        yield transaction
                    except BaseException:
                        if cursor.connection.in_transaction:
                            cursor.execute("ROLLBACK")
                        raise
                    cursor.execute("COMMIT")
                finally:
                    if write_lock is not None:
                        write_lock.release()
            except sqlite3.Error as exc:
                raise self._map_error(exc) from exc
            if not self._commits_pending.is_set():
                self._commits_pending.set()
            if durable and self._group_sync:
                self._commit_seq += 1
                seq = self._commit_seq
        if seq is not None:
            # Visible now, and the write lock is free again: the toolkit wakes waiters (the
            # next step may start while this one waits for the disk), then waits for a sync
            # of the WAL that covers this commit (one sync covers every commit written
            # before it: group commit).
            transaction.wait_durable = partial(self._sync_wal, seq)

    def _sync_wal(self, seq: int) -> None:
        """Return once the WAL is on disk up to at least commit ``seq`` (see ``synchronous``)."""
        with self._sync_guard:
            if self._synced_seq >= seq:
                return  # another thread's sync covered it
            covered = self._commit_seq  # every commit counted here has been written
            wal = self.path + "-wal"
            try:
                inode = os.stat(wal).st_ino
                if self._wal_fd is None or inode != self._wal_inode:
                    if self._wal_fd is not None:
                        os.close(self._wal_fd)
                    self._wal_fd = os.open(wal, os.O_RDONLY)
                    self._wal_inode = inode
                _datasync(self._wal_fd)
                self.wal_syncs += 1
            except OSError as exc:
                raise ProviderError(
                    f"Could not sync the SQLite write-ahead log '{wal}' to disk: {exc}"
                ) from exc
            self._synced_seq = max(self._synced_seq, covered)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """This thread's read connection (``:memory:``: the shared one, under the mutex)."""
        if not self._ready:
            self.setup()
        if self.in_memory:
            with self._mutex, self._errors():
                yield self._reader()
        else:
            with self._errors():
                yield self._reader()

    # -- space ----------------------------------------------------------------------------
    def reclaim_space(self, max_pages: int = RECLAIM_PAGES) -> None:
        """Give up to ``max_pages`` free pages back to the file system (incremental vacuum).

        Databases created by this version free pages this way; an older file keeps them for
        reuse until a one-off ``VACUUM`` (``sqlite3 FILE 'PRAGMA auto_vacuum = INCREMENTAL;
        VACUUM;'``) switches it over.
        """
        if self.in_memory:
            return
        if not self._ready:
            self.setup()
        with self._mutex, self._errors():
            cursor = self._writer()
            write_lock = self._write_lock
            if write_lock is not None and not write_lock.acquire(self.busy_timeout):
                raise self._lock_timeout()
            try:
                # As a script: sqlite3's execute() steps a statement without result columns
                # once, and each step of incremental_vacuum frees one page.
                cursor.executescript(
                    f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(max_pages)}); COMMIT;"
                )
            except BaseException:
                if cursor.connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
            finally:
                if write_lock is not None:
                    write_lock.release()
            self._commits_pending.set()

    # -- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        """Create or migrate the schema; refuse corrupt files and other applications' databases."""
        with self._setup_guard:
            if self._ready:
                return
            if not self.in_memory:
                with self._mutex, self._errors():
                    writer = self._writer()
                    # Takes effect in a new database (before its first table): pages freed by
                    # purges can then be given back a few at a time (reclaim_space).
                    writer.execute("PRAGMA auto_vacuum = INCREMENTAL").fetchall()
                    (mode,) = writer.execute("PRAGMA journal_mode = WAL").fetchall()[0]
                    self._wal = str(mode).lower() == "wal"
                    if not self._wal:
                        # No WAL here (some network file systems): SQLite's own sync, which
                        # needs no WAL file, on every connection from now on.
                        self._group_sync = False
                        self._toggle_sync = self.synchronous in ("FULL", "EXTRA")
                        self._connection_synchronous = self.synchronous
                        writer.execute(f"PRAGMA synchronous = {self.synchronous}").fetchall()
            with self._transaction() as transaction:
                cursor = transaction.cursor
                tables = table_names(cursor, self.dialect)
                foreign = sorted(t for t in tables if not t.startswith(("ostinato_", "sqlite_")))
                if SCHEMA_TABLE not in tables and foreign:
                    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                    raise ConfigurationError(
                        f"'{self.path}' is a SQLite database of another application (tables: "
                        f"{shown}); ostinato will not write into it. Use another file."
                    )
                migrate(cursor, self.dialect, to_micros(self.now()))
            self._ready = True
            if self._wal:
                with self._mutex, self._errors():
                    self._start_threads(self._writer().connection)
