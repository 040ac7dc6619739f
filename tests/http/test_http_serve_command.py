"""``ostinato serve MODULE:APP``: the API and a worker in one process, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from http_api_support import poll_until_done

HERE = Path(__file__).resolve().parent


class Served:
    """A running ``ostinato serve`` process; its stderr is drained in the background."""

    def __init__(
        self,
        *args: str,
        provider: tuple[str, ...] = ("-p", "memory"),
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")} | (env or {})
        command = [sys.executable, "-m", "ostinato", *provider, "serve", "http_test_app:app"]
        self.process = subprocess.Popen(
            [*command, "--port", "0", *args],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.lines: list[str] = []
        for line in self.process.stderr:
            self.lines.append(line)
            found = re.search(rf"Uvicorn running on (http://{re.escape(host)}:\d+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise AssertionError("ostinato serve did not start:\n" + "".join(self.lines))
        # keep reading, so the server never blocks on a full pipe
        self.drain = threading.Thread(target=self.lines.extend, args=(self.process.stderr,))
        self.drain.start()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything it wrote on stderr."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.drain.join(10)
        return code, "".join(self.lines)


def test_serve_runs_the_api_and_a_worker_and_stops_gracefully() -> None:
    served = Served("--base-path", "/api", "--grace-period", "5", env={"OSTINATO_API_KEY": "k"})
    url = served.url
    try:
        with httpx.Client(base_url=f"{url}/api", headers={"x-api-key": "k"}, timeout=30) as http:
            response = http.post("/orchestrators/hello_cities/served-1")
            assert response.status_code == 202
            assert response.headers["location"] == f"{url}/api/instances/served-1"
            final = poll_until_done(http, response.headers["location"]).json()
            assert final["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
            assert http.post("/orchestrators/background_job/served-2").status_code == 202
            assert http.post("/orchestrators/background_job/served-2").status_code == 409
            assert http.post("/orchestrators/unknown").status_code == 404
            assert http.get("/openapi.json").status_code == 200
        assert httpx.get(f"{url}/api/instances").status_code == 401
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr
    assert "Worker stopped." in stderr


def test_instances_outlive_the_server_on_sqlite(tmp_path: Path) -> None:
    sqlite = ("-p", "sqlite", "--set", f"path={tmp_path / 'served.db'}")
    served = Served(provider=sqlite)
    url = served.url
    try:
        started = httpx.post(f"{url}/orchestrators/background_job/durable-1", json="kept")
        assert started.status_code == 202
        assert poll_running(url, "durable-1")
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr

    served = Served(provider=sqlite)
    url = served.url
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/orchestrators/background_job/durable-1").status_code == 409
            assert http.post("/instances/durable-1/raiseEvent/finish", json=1).status_code == 202
            final = poll_until_done(http, "/instances/durable-1").json()
            assert final["output"] == {"job": "kept", "finished_with": 1}
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr


def poll_running(url: str, instance_id: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/instances/{instance_id}").json()["runtimeStatus"] == "Running":
            return True
        time.sleep(0.02)
    return False


def test_serve_reports_a_bad_target_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ostinato", "-p", "memory", "serve", "no_such_module:app"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: Cannot import 'no_such_module': no module named 'no_such_module'"
    ]


def test_without_the_http_extra_the_message_says_how_to_install_it() -> None:
    for blocked in ("uvicorn", "starlette"):
        code = (
            f"import sys; sys.modules[{blocked!r}] = None; from ostinato.cli import main;"
            " main(['-p', 'memory', 'serve', 'http_test_app:app'])"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"Error: ostinato serve needs {blocked!r}: install it with pip install 'ostinato[http]'"
        )
    code = "import sys; sys.modules['starlette'] = None; import ostinato.http"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ostinato.http needs Starlette: install it with pip install 'ostinato[http]'" in (
        result.stderr
    )
