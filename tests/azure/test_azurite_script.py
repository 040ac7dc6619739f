"""``python azurite/start.py`` stopped with SIGTERM (not only Ctrl+C) stops Azurite's node too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "azurite" / "start.py"
sys.path.insert(0, str(SCRIPT.parent))

from start import missing_tools  # noqa: E402


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
@pytest.mark.skipif(missing_tools() is not None, reason=f"Azurite cannot run: {missing_tools()}")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_script_stops_node(sig: signal.Signals) -> None:
    node: list[int] = []
    script = subprocess.Popen(
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert script.stdout is not None
        connection_string = script.stdout.readline()
        assert "TableEndpoint=" in connection_string, script.stderr.read() if script.stderr else ""
        table_port = int(
            connection_string.split("TableEndpoint=http://127.0.0.1:")[1][:5].rstrip("/")
        )
        node += children_of(script.pid)
        assert node and all(alive(pid) for pid in node) and listening(table_port)
        script.send_signal(sig)
        assert script.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in node):
            assert time.monotonic() < deadline, f"node {node} survived {sig.name} of its script"
            time.sleep(0.05)
        assert not listening(table_port)
    finally:
        if script.poll() is None:
            script.kill()
        for pid in node:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
