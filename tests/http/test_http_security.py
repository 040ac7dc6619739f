"""The attacks of issue #19, each refused: CSRF, DNS rebinding, empty keys, scopes, open binds.

Real uvicorn over TCP, a real worker; every test checks that the attack changed nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ostinato as ot
import pytest
from http_api_support import ServerThread
from http_test_app import app as test_app
from ostinato.http import ApiKey, Scope, create_app, keys_from_environment, load_keys_file
from test_http_serve_command import HERE, Served

READ, START, MANAGE = "read-key-0123456789", "start-key-0123456789", "manage-key-0123456789"
ADMIN = "admin-key-0123456789"
SERVE = [sys.executable, "-m", "ostinato", "-p", "memory", "serve", "http_test_app:app"]


@pytest.fixture(scope="module")
def provider() -> Iterator[ot.InMemoryProvider]:
    provider = ot.InMemoryProvider()
    with ot.Worker(test_app, provider, max_poll_interval=0.05):
        yield provider


@pytest.fixture(scope="module")
def open_api(provider: ot.InMemoryProvider) -> Iterator[str]:
    """No keys, on loopback: the local-development setup."""
    with ServerThread(create_app(provider, app=test_app)) as server:
        yield server.url


@pytest.fixture(scope="module")
def scoped_api(provider: ot.InMemoryProvider) -> Iterator[str]:
    keys = [
        ApiKey("reader", READ, frozenset({Scope.READ})),
        ApiKey("starter", START, frozenset({Scope.READ, Scope.START})),
        ApiKey("operator", MANAGE, frozenset({Scope.READ, Scope.MANAGE})),
        ApiKey("admin", ADMIN),
    ]
    with ServerThread(create_app(provider, keys=keys, app=test_app)) as server:
        yield server.url


def exists(provider: ot.StorageProvider, instance_id: str) -> bool:
    return ot.Client(provider).get_orchestration_state(instance_id) is not None


# -- CSRF: a web page the developer opens posts to the local API ------------------------------
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_cross_site_simple_posts_start_nothing(
    open_api: str, provider: ot.InMemoryProvider, content_type: str
) -> None:
    # what a <form> or fetch(..., {mode: "no-cors"}) on https://evil.example sends
    response = httpx.post(
        f"{open_api}/orchestrators/greet/csrf-1",
        content=b'{"x": 1}',
        headers={"content-type": content_type, "origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "Cross-origin request from 'https://evil.example' refused" in response.json()["error"]
    # the same without an Origin header (an old browser, a proxy stripping it): not JSON
    response = httpx.post(
        f"{open_api}/orchestrators/greet/csrf-2",
        content=b'{"x": 1}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 415
    assert response.json()["error"].startswith("Request bodies must be JSON")
    assert not exists(provider, "csrf-1")
    assert not exists(provider, "csrf-2")


def test_cross_site_terminate_without_a_body_is_refused(
    open_api: str, provider: ot.InMemoryProvider
) -> None:
    assert httpx.post(f"{open_api}/orchestrators/background_job/csrf-3").status_code == 202
    response = httpx.post(
        f"{open_api}/instances/csrf-3/terminate", headers={"origin": "http://attacker.example"}
    )
    assert response.status_code == 403
    state = ot.Client(provider).get_orchestration_state("csrf-3")
    assert state is not None and state.runtime_status != ot.OrchestrationStatus.TERMINATED
    # the API's own origin (the dashboard's pages) may
    own = httpx.post(f"{open_api}/instances/csrf-3/terminate", headers={"origin": open_api})
    assert own.status_code == 202


def test_origin_null_is_refused(open_api: str, provider: ot.InMemoryProvider) -> None:
    response = httpx.post(
        f"{open_api}/orchestrators/greet/csrf-4", json=1, headers={"origin": "null"}
    )
    assert response.status_code == 403
    assert not exists(provider, "csrf-4")


# -- DNS rebinding: attacker.example resolves to 127.0.0.1 -------------------------------------
def test_foreign_host_names_get_nothing(open_api: str, provider: ot.InMemoryProvider) -> None:
    assert httpx.post(f"{open_api}/orchestrators/greet/rebind-1", json="secret input").is_success
    for host in ("attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example"):
        response = httpx.get(f"{open_api}/instances", headers={"host": host})
        assert response.status_code == 400, host
        assert "secret input" not in response.text
        assert response.json()["error"].startswith(f"Host {host!r} is not served here")
        response = httpx.post(
            f"{open_api}/orchestrators/greet/rebind-2", json=1, headers={"host": host}
        )
        assert response.status_code == 400
    assert not exists(provider, "rebind-2")
    for host in ("localhost", "LOCALHOST:1234", "[::1]:80"):
        assert httpx.get(f"{open_api}/instances", headers={"host": host}).status_code == 200


def test_allowed_hosts_take_wildcards(provider: ot.InMemoryProvider) -> None:
    asgi = create_app(provider, allowed_hosts=["*.example.com", "api.internal"])
    with ServerThread(asgi) as server:
        for host, code in [
            ("ops.example.com", 200),
            ("api.internal:443", 200),
            ("example.com", 400),
            ("127.0.0.1", 400),
        ]:
            response = httpx.get(f"{server.url}/instances", headers={"host": host})
            assert response.status_code == code, host


# -- empty keys --------------------------------------------------------------------------------
def test_an_empty_key_is_an_error_not_open_access(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="api_key must not be empty"):
        create_app(ot.InMemoryProvider(), api_key=" ")
    with pytest.raises(ValueError, match="empty"):
        ApiKey("ci", "")
    with pytest.raises(ValueError, match="OSTINATO_API_KEY is set but empty"):
        keys_from_environment({"OSTINATO_API_KEY": ""})
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text('[[keys]]\nname = "ci"\nkey = ""\nscopes = ["read"]\n')
    with pytest.raises(ValueError, match="empty"):
        load_keys_file(keys_file)
    result = subprocess.run(
        SERVE,
        cwd=HERE,
        env=_env(OSTINATO_API_KEY=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "OSTINATO_API_KEY is set but empty" in result.stderr


def test_keys_file_scopes_and_key_env(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(
        '[[keys]]\nname = "dash"\nkey = "k1-0123456789"\nscopes = ["read"]\n'
        '[[keys]]\nname = "ops"\nkey_env = "OPS_KEY"\n'
    )
    keys = keys_from_environment({"OPS_KEY": "k2-0123456789", "OSTINATO_API_KEY": "k3"}, keys_file)
    assert [(k.name, k.secret, k.scopes) for k in keys] == [
        ("dash", "k1-0123456789", frozenset({Scope.READ})),
        ("ops", "k2-0123456789", frozenset(Scope)),
        ("default", "k3", frozenset(Scope)),
    ]
    assert "k1-0123456789" not in repr(keys)
    keys_file.write_text('[[keys]]\nname = "x"\nkey = "k"\nscopes = ["admin"]\n')
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        load_keys_file(keys_file)


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")} | extra


# -- scopes ------------------------------------------------------------------------------------
def _call(url: str, key: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", headers={"x-api-key": key}, **kwargs)  # type: ignore[arg-type]


def test_each_key_does_only_what_its_scopes_allow(
    scoped_api: str, provider: ot.InMemoryProvider
) -> None:
    url = scoped_api
    # read: list and status, nothing else
    assert _call(url, READ, "GET", "/instances").status_code == 200
    refused = _call(url, READ, "POST", "/orchestrators/background_job/scoped-1")
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("API key 'reader' lacks the 'start' scope")
    assert not exists(provider, "scoped-1")
    # start: start and raise events, but not terminate or purge
    assert _call(url, START, "POST", "/orchestrators/background_job/scoped-1").status_code == 202
    assert _call(url, START, "POST", "/instances/scoped-1/terminate").status_code == 403
    assert _call(url, START, "POST", "/instances/scoped-1/suspend").status_code == 403
    assert _call(url, START, "POST", "/instances/scoped-1/raiseEvent/finish", json=1).is_success
    _wait_status(provider, "scoped-1", ot.OrchestrationStatus.COMPLETED)
    assert _call(url, START, "DELETE", "/instances/scoped-1").status_code == 403
    purge_all = "/instances?runtimeStatus=Completed,Failed,Terminated"
    assert _call(url, START, "DELETE", purge_all).status_code == 403
    assert _call(url, READ, "DELETE", purge_all).status_code == 403
    assert exists(provider, "scoped-1")
    # manage: terminate and purge, but not start
    assert _call(url, MANAGE, "POST", "/orchestrators/greet").status_code == 403
    assert _call(url, MANAGE, "DELETE", "/instances/scoped-1").json() == {"instancesDeleted": 1}
    assert _call(url, ADMIN, "POST", "/orchestrators/background_job/scoped-2").is_success
    assert _call(url, MANAGE, "POST", "/instances/scoped-2/terminate").status_code == 202
    # a wrong key and no key
    assert _call(url, READ + "x", "GET", "/instances").status_code == 401
    assert httpx.get(f"{url}/instances").status_code == 401


def _wait_status(
    provider: ot.StorageProvider, instance_id: str, status: ot.OrchestrationStatus
) -> None:
    state = ot.Client(provider).wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None and state.runtime_status == status


def test_destructive_calls_are_audit_logged(
    scoped_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = scoped_api
    assert _call(url, ADMIN, "POST", "/orchestrators/background_job/audited-1").is_success
    with caplog.at_level(logging.INFO, logger="ostinato.http.audit"):
        assert _call(url, MANAGE, "POST", "/instances/audited-1/terminate").status_code == 202
        assert _call(url, START, "DELETE", "/instances/audited-1").status_code == 403
        assert _call(url, READ, "GET", "/instances/audited-1").status_code in (200, 202)
    lines = [r.getMessage() for r in caplog.records if r.name == "ostinato.http.audit"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("terminate by operator from 127.0.0.1:")
    assert lines[0].endswith("POST /instances/audited-1/terminate -> 202")
    assert lines[1].startswith("purge by starter from 127.0.0.1:")
    assert "DELETE /instances/audited-1 -> 403" in lines[1]


# -- ostinato serve: secure by default ---------------------------------------------------------
def test_serve_on_a_public_address_without_keys_refuses_to_start() -> None:
    result = subprocess.run(
        [*SERVE, "--host", "0.0.0.0", "--port", "0"],
        cwd=HERE,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Refusing to serve 0.0.0.0 without API keys" in result.stderr
    assert "Uvicorn running" not in result.stderr


def test_serve_takes_no_key_on_the_command_line() -> None:
    result = subprocess.run(
        [*SERVE, "--api-key", "visible-in-ps"],
        cwd=HERE,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "No such option '--api-key'" in result.stderr


def test_serve_insecure_no_auth_says_so_loudly() -> None:
    served = Served(
        "--host", "0.0.0.0", "--insecure-no-auth", "--allowed-host", "127.0.0.1", host="0.0.0.0"
    )
    try:
        local = served.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{local}/instances").status_code == 200
        assert httpx.get(f"{local}/instances", headers={"host": "evil.example"}).status_code == 400
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr
    assert "WARNING: --insecure-no-auth: serving 0.0.0.0 WITHOUT AUTHENTICATION" in stderr


def test_serve_with_a_keys_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(
        '[[keys]]\nname = "dash"\nkey = "dash-key-0123"\nscopes = ["read"]\n'
        '[[keys]]\nname = "ops"\nkey_env = "OPS_KEY"\n'
    )
    served = Served(
        "--host",
        "0.0.0.0",
        "--allowed-host",
        "127.0.0.1",
        host="0.0.0.0",
        env={"OSTINATO_API_KEYS_FILE": str(keys_file), "OPS_KEY": "ops-key-0123"},
    )
    try:
        local = served.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{local}/instances").status_code == 401
        assert _call(local, "dash-key-0123", "GET", "/instances").status_code == 200
        assert _call(local, "dash-key-0123", "POST", "/orchestrators/greet").status_code == 403
        assert _call(local, "ops-key-0123", "POST", "/orchestrators/greet").status_code == 202
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr
    assert "API keys: dash, ops" in stderr
    assert "dash-key-0123" not in stderr and "ops-key-0123" not in stderr


def test_the_schema_names_each_operations_scope(scoped_api: str) -> None:
    from openapi_spec_validator import validate

    schema = _call(scoped_api, READ, "GET", "/openapi.json").json()
    validate(schema)
    paths = schema["paths"]
    assert paths["/orchestrators/{name}"]["post"]["x-ostinato-scope"] == "start"
    assert paths["/instances"]["get"]["x-ostinato-scope"] == "read"
    assert paths["/instances"]["delete"]["x-ostinato-scope"] == "manage"
    assert paths["/instances/{instance_id}/terminate"]["post"]["x-ostinato-scope"] == "manage"
    assert "415" in paths["/orchestrators/{name}"]["post"]["responses"]
    assert "403" in paths["/instances/{instance_id}"]["get"]["responses"]
