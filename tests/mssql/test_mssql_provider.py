"""SQL Server provider: what runs without a server (the SQL text, configuration, error
reporting) and SQL Server specifics that need one (skipped, with the reason, without)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ostinato as ot
import ostinato_mssql
import pytest
from ostinato.errors import OstinatoError
from ostinato_conformance.support import create, lock_orchestration
from ostinato_mssql import SqlServerProvider
from ostinato_mssql import sql as mssql_sql

from .conftest import ProviderFactory, new_hub

STATEMENTS_SQL = Path(ostinato_mssql.__file__).with_name("statements.sql")


def _every_statement(schema: str = "ostinato") -> list[tuple[str, str]]:
    rendered = mssql_sql.SqlServerSql(schema)
    return [
        *rendered.all_statements().items(),
        *((f"ddl {i}", ddl) for i, ddl in enumerate(rendered.ddl())),
        ("applock", mssql_sql.APPLOCK),
        ("create schema", mssql_sql.CREATE_SCHEMA),
        ("session setup", mssql_sql.SESSION_SETUP),
        *((f"delete hub {i}", s) for i, s in enumerate(rendered.delete_hub_rows)),
    ]


def test_checked_in_statement_listing_is_current() -> None:
    assert STATEMENTS_SQL.read_text(encoding="utf-8") == mssql_sql.script(), (
        "regenerate it: python -m ostinato_mssql.sql > "
        "providers/mssql/src/ostinato_mssql/statements.sql"
    )


def test_every_statement_parses_as_t_sql() -> None:
    sqlglot = pytest.importorskip("sqlglot")
    for name, text in _every_statement():
        # sqlglot's T-SQL reader wants named parameters; ODBC's are positional.
        sqlglot.parse(text.replace("?", "@p"), read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
        assert "LIMIT" not in text and "FOR UPDATE" not in text, name


def test_every_statement_stays_in_the_configured_schema() -> None:
    tables = "|".join(mssql_sql.TABLES)
    # A table reference outside [app_x] (column qualifiers "table.col" and index names aside).
    stray = re.compile(rf"(?<!\[app_x\]\.\[)\b({tables})\b(?![._\]])")
    for name, text in _every_statement("app_x"):
        assert not stray.search(text), (name, text)
        assert "[app_x]." in text or name in {"applock", "create schema", "session setup"}, name


def test_hot_path_reads_skip_and_lock_rows() -> None:
    listed = mssql_sql.SqlServerSql("ostinato").all_statements()

    def statement(name: str) -> str:
        (found,) = [text for key, text in listed.items() if key.split(" ")[0] == name]
        return found

    for claim in ("queue_claim", "activity_claim"):
        assert "WITH (UPDLOCK, READPAST, ROWLOCK)" in statement(claim)
    for probe in ("queue_peek", "activity_peek"):
        assert "READPAST" in statement(probe)
    for check in ("queue_locks_in", "activity_locks_in", "instance_status"):
        assert "WITH (UPDLOCK, HOLDLOCK, ROWLOCK)" in statement(check)
    for renew in ("queue_renew", "activity_renew"):
        assert "lock_token = ?" in statement(renew)  # the owner is checked, by row count


def test_settings_come_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_PROVIDER", "mssql")
    monkeypatch.setenv("OSTINATO_TASK_HUB", "orders")
    monkeypatch.setenv("OSTINATO_MSSQL_CONNECTION_STRING", "Driver={FreeTDS};Server=db")
    monkeypatch.setenv("OSTINATO_MSSQL_SCHEMA", "jobs")
    provider = ot.provider_from_config()
    assert isinstance(provider, SqlServerProvider)
    assert (provider.task_hub, provider.schema) == ("orders", "jobs")
    assert provider.connection_string == "Driver={FreeTDS};Server=db"


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ot.ConfigurationError, match="connection_string"):
        SqlServerProvider("")
    with pytest.raises(ot.ConfigurationError, match="schema"):
        SqlServerProvider("Driver={FreeTDS}", schema="no;such")


def test_an_unusable_connection_string_is_a_clear_error() -> None:
    provider = SqlServerProvider(
        "Driver={FreeTDS};Server=127.0.0.1;Port=1;Database=x;UID=u;PWD=p;LoginTimeout=2"
    )
    # No driver manager, no FreeTDS, or no server: each is reported in ostinato's terms.
    with pytest.raises(OstinatoError, match=r"pyodbc|ODBC|SQL Server"):
        provider.setup()
    provider.close()


# -- with a server ----------------------------------------------------------------------------
def test_task_hubs_in_one_schema_and_schemas_are_isolated(make_provider: ProviderFactory) -> None:
    a, b = make_provider(), make_provider()
    c = make_provider(task_hub=a.task_hub, schema="ostinato_test_other")
    for p, payload in ((a, '"a"'), (b, '"b"'), (c, '"c"')):
        create(p, "same-id", input=payload)
    inputs = [p.get_instance("same-id").input for p in (a, b, c)]  # type: ignore[union-attr]
    assert inputs == ['"a"', '"b"', '"c"']
    item = lock_orchestration(a)
    assert item is not None and item.instance is not None and item.instance.input == '"a"'


def test_unicode_ids_round_trip(make_provider: ProviderFactory) -> None:
    provider = make_provider(task_hub=new_hub())
    ids = ["ünïcødé-ìd", "日本語の識別子", "emoji-🎼-🎵", "ΑΒΓ", "Case", "case", "a b"]
    for iid in ids:
        create(provider, iid)
    assert sorted(
        r.instance_id for r in provider.query_instances(ot.provider.InstanceQuery()).items
    ) == sorted(ids)
    for iid in ids:
        record = provider.get_instance(iid)
        assert record is not None and record.instance_id == iid


def test_the_package_imports_without_pyodbc_and_says_what_is_missing() -> None:
    # As on a machine without the unixODBC driver manager, where `import pyodbc` fails.
    code = (
        "import sys; sys.modules['pyodbc'] = None\n"
        "import ostinato as ot, ostinato_mssql\n"
        "p = ot.provider_from_config(provider='mssql', "
        "settings={'connection_string': 'Driver={FreeTDS};Server=x'})\n"
        "try:\n    p.setup()\nexcept ot.ConfigurationError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pyodbc" in result.stdout and "unixodbc" in result.stdout.lower(), result


def test_printing_the_statements_gives_no_python_warning() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "ostinato_mssql.sql"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == mssql_sql.script()
