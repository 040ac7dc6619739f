"""``ostinato config`` shows that a secret is set, never its value (issue #19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from ostinato.cli.commands import cli
from ostinato.redaction import MASK, redact_setting, redact_text

SECRETS = ["s3cr3t-pw", "p;a}}ss", "QUJDREVGR0g=KEY", "sig0123abcd", "sas+tok/en"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://app:s3cr3t-pw@db:5432/ostinato", "postgresql://app:***@db:5432/ostinato"),
        (
            "postgres://app:s3cr3t-pw@db/x?sslmode=require",
            "postgres://app:***@db/x?sslmode=require",
        ),
        (
            "postgresql://db/x?user=app&password=s3cr3t-pw",
            "postgresql://db/x?user=app&password=***",
        ),
        ("host=db user=app password=s3cr3t-pw dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password='s3 cr3t\\' pw' dbname=x", "host=db password=*** dbname=x"),
        (
            "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=s3cr3t-pw;Encrypt=yes",
            "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=***;Encrypt=yes",
        ),
        ("Server=db;Uid=sa;Pwd={p;a}}ss};", "Server=db;Uid=sa;Pwd=***;"),
        ("Server=db;User ID=sa;Password=s3cr3t-pw", "Server=db;User ID=sa;Password=***"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJDREVGR0g=KEY;"
            "EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;"
            "EndpointSuffix=core.windows.net",
        ),
        (
            "BlobEndpoint=https://acct.blob.core.windows.net;"
            "SharedAccessSignature=sv=2022-11-02&ss=bqt&sp=rwdl&sig=sig0123abcd",
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=***",
        ),
        (
            "https://acct.blob.core.windows.net/?sv=2022-11-02&sp=r&sig=sig0123abcd",
            "https://acct.blob.core.windows.net/?sv=2022-11-02&sp=r&sig=***",
        ),
        ("Endpoint=sb://x/;SharedAccessKey=sas+tok/en", "Endpoint=sb://x/;SharedAccessKey=***"),
        ("./ostinato.db", "./ostinato.db"),
        ("UseDevelopmentStorage=true", "UseDevelopmentStorage=true"),
    ],
)
def test_secrets_inside_connection_strings_are_masked(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_secret_settings_are_masked_whole_and_others_kept() -> None:
    assert redact_setting("account_key", "QUJD") == MASK
    assert redact_setting("sas_token", "sv=1&sig=2") == MASK
    assert redact_setting("password", "pw") == MASK
    assert redact_setting("client_secret", "x") == MASK
    assert redact_setting("password", None) is None  # unset stays unset
    assert redact_setting("task_hub", "hub") == "hub"
    assert redact_setting("pool_size", 10) == 10
    assert redact_setting("partition_count", 4) == 4  # "count" is not a key


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("provider", "setting", "value", "shown"),
    [
        (
            "postgres",
            "dsn",
            "postgresql://app:s3cr3t-pw@db:5432/ostinato",
            "postgresql://app:***@db:5432/ostinato",
        ),
        (
            "mssql",
            "connection_string",
            "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=p;a}}ss",
            "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=***;a}}ss",
        ),
        (
            "azure",
            "connection_string",
            "AccountName=acct;AccountKey=QUJDREVGR0g=KEY;SharedAccessSignature=sv=1&sig=sas+tok/en",
            "AccountName=acct;AccountKey=***;SharedAccessSignature=***",
        ),
    ],
)
def test_ostinato_config_never_prints_a_secret(
    provider: str, setting: str, value: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"OSTINATO_{provider.upper()}_{setting.upper()}", value)
    runner = CliRunner()
    text = runner.invoke(cli, ["-p", provider, "config"])
    assert text.exit_code == 0, text.output
    as_json = runner.invoke(cli, ["-p", provider, "config", "--json"])
    assert as_json.exit_code == 0, as_json.output
    for output in (text.output, as_json.output):
        for secret in SECRETS:
            assert secret not in output
    assert f"{setting} = {shown!r}" in text.output
    assert json.loads(as_json.output)["settings"][setting] == shown


def test_a_config_file_password_is_masked(isolated: Path) -> None:
    (isolated / "ostinato.toml").write_text(
        'provider = "postgres"\n\n[postgres]\ndsn = "host=db user=app password=s3cr3t-pw"\n'
    )
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-pw" not in result.output
    assert "password=***" in result.output
