"""The database file: schema and migrations, settings, and clear errors for bad files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import ostinato as ot
import pytest
from ostinato.errors import ConfigurationError, ProviderError
from ostinato.relational.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_TABLE, render
from ostinato.sqlite import SqliteDialect, SqliteProvider

from .helpers import create, event


def test_schema_sql_is_the_toolkit_schema_rendered_for_sqlite() -> None:
    shipped = Path(ot.__file__).parent / "sqlite" / "schema.sql"
    assert shipped.read_text(encoding="utf-8") == render(SqliteDialect()), (
        "regenerate with: python -m ostinato.sqlite > core/src/ostinato/sqlite/schema.sql"
    )


def test_schema_sql_creates_a_database_the_provider_accepts(tmp_path: Path) -> None:
    path = tmp_path / "from-script.db"
    shipped = Path(ot.__file__).parent / "sqlite" / "schema.sql"
    with sqlite3.connect(path) as conn:
        conn.executescript(shipped.read_text(encoding="utf-8"))
        conn.execute(
            f"INSERT INTO {SCHEMA_TABLE} VALUES (?, ?, 0)",
            (LATEST_VERSION, MIGRATIONS[-1].description),
        )
    provider = SqliteProvider(path)
    create(provider, "works")
    assert provider.get_instance("works") is not None
    provider.close()


def test_setup_is_idempotent_and_records_the_version(db_path: Path) -> None:
    for _ in range(3):
        p = SqliteProvider(db_path)
        p.setup()
        p.setup()
        p.close()
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [(m.version,) for m in MIGRATIONS]
    assert mode == "wal"


def test_concurrent_setup_from_threads(db_path: Path) -> None:
    providers = [SqliteProvider(db_path) for _ in range(8)]
    errors: list[BaseException] = []

    def go(p: SqliteProvider) -> None:
        try:
            p.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for p in providers:
        p.close()


@pytest.mark.parametrize(
    ("setting", "group_commit", "pragma", "group_sync"),
    [
        ("FULL", True, 1, True),
        ("FULL", False, 2, False),
        ("EXTRA", True, 3, False),
        ("NORMAL", True, 1, False),
        ("off", True, 0, False),
    ],
)
def test_synchronous_setting_is_applied(
    db_path: Path, setting: str, group_commit: bool, pragma: int, group_sync: bool
) -> None:
    provider = SqliteProvider(db_path, synchronous=setting, group_commit=group_commit)
    for i in range(5):
        create(provider, f"x{i}")  # durable writes
    cursor = provider._writer()
    assert cursor.execute("PRAGMA synchronous").fetchall()[0][0] == pragma
    # FULL: the connection commits at NORMAL and every durable commit waits for its own
    # sync of the WAL (shared with concurrent commits) before returning.
    assert provider._group_sync is group_sync
    if group_sync:
        assert provider._commit_seq >= 5
        assert provider._synced_seq == provider._commit_seq
    provider.close()


def test_registered_as_the_sqlite_provider() -> None:
    (entry,) = [e for e in entry_points(group="ostinato.providers") if e.name == "sqlite"]
    assert entry.load() is SqliteProvider


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"task_hub": ""}, "task_hub"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"path": ""}, "path"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"'{key}'"):
        SqliteProvider(**kwargs)  # type: ignore[arg-type]


# -- bad files --------------------------------------------------------------------------------
def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"These are my notes, not a database.\n" * 200)
    client = ot.Client(SqliteProvider(path))
    with pytest.raises(ProviderError) as info:
        client.schedule_new_orchestration("x")
    message = str(info.value)
    assert str(path) in message and "not a usable SQLite database" in message
    assert path.read_bytes().startswith(b"These are my notes")  # left alone


def test_a_corrupted_ostinato_database_gives_a_clear_error(db_path: Path) -> None:
    provider = SqliteProvider(db_path)
    create(provider, "x")
    provider.close()
    data = bytearray(db_path.read_bytes())
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():  # make sure everything is in the main file, then drop the WAL
        with sqlite3.connect(db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = bytearray(db_path.read_bytes())
    data[0:16] = b"garbage garbage!"  # the header
    db_path.write_bytes(bytes(data))
    with pytest.raises(ProviderError, match="corrupt or is not a database"):
        SqliteProvider(db_path).get_instance("x")


def test_a_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(ConfigurationError, match=r"another application.*customers"):
        SqliteProvider(path).setup()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"customers"}  # nothing written into it


def test_a_database_from_a_newer_ostinato_is_refused(db_path: Path) -> None:
    SqliteProvider(db_path).setup()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            f"INSERT INTO {SCHEMA_TABLE} VALUES (?, 'from the future', 0)", (LATEST_VERSION + 1,)
        )
    with pytest.raises(ConfigurationError, match="newer than this ostinato"):
        SqliteProvider(db_path).setup()


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    provider = SqliteProvider(tmp_path / "var" / "data" / "app.db")
    provider.setup()
    provider.close()
    assert (tmp_path / "var" / "data" / "app.db").is_file()


def test_a_directory_that_cannot_be_created_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigurationError, match=r"Cannot create the directory .* of the SQLite"):
        SqliteProvider(tmp_path / "file" / "sub" / "app.db").setup()


def test_errors_are_one_line_without_a_sqlite_traceback(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00\x01junk" * 500)
    script = (
        "import ostinato as ot\n"
        "from ostinato.sqlite import SqliteProvider\n"
        f"p = SqliteProvider({str(path)!r})\n"
        "try:\n"
        "    p.setup()\n"
        "except ot.OstinatoError as e:\n"
        "    print(type(e).__name__, '|', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ProviderError | ")
    assert "Traceback" not in out.stdout + out.stderr


def test_group_commit_shares_syncs_between_concurrent_commits(db_path: Path) -> None:
    provider = SqliteProvider(db_path)  # FULL with group commit, the default
    provider.setup()
    for n in range(16):
        create(provider, f"t{n}")
    before_commits, before_syncs = provider._commit_seq, provider.wal_syncs
    barrier = threading.Barrier(16)

    def sends(n: int) -> None:
        barrier.wait()
        for i in range(10):  # (sends, not creates: concurrent creates share a transaction)
            provider.send_message(event(f"t{n}", data=str(i)))

    threads = [threading.Thread(target=sends, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commits = provider._commit_seq - before_commits
    syncs = provider.wal_syncs - before_syncs
    assert commits == 160
    assert provider._synced_seq == provider._commit_seq  # every one of them is on disk
    assert 0 < syncs < commits  # ...with fewer syncs than commits
    provider.close()


def test_background_checkpointer_keeps_the_wal_short(db_path: Path) -> None:
    provider = SqliteProvider(db_path, synchronous="NORMAL")
    payload = '"' + "x" * 100_000 + '"'
    wal = db_path.with_name(db_path.name + "-wal")
    largest = 0
    for i in range(400):  # 40 MB through the WAL
        create(provider, f"big-{i}", input=payload)
        if i % 20 == 19:
            time.sleep(0.05)  # let the checkpointer run, as a real workload's pauses do
        largest = max(largest, wal.stat().st_size)
    # The writer alone would let the WAL reach 10,000 pages (about 40 MB) before
    # checkpointing; the background thread keeps it a fraction of that.
    assert largest < 20 * 1024 * 1024
    assert provider.get_instance("big-0") is not None
    provider.close()
