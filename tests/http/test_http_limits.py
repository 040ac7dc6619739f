"""Bounds of ``ostinato serve``: body size while reading, header and idle timeouts, connections.

The server is a real ``ostinato serve`` process; its memory is read from ``/proc/<pid>/status``
(``VmHWM``, the peak resident set size), so a body read whole before the ``413`` shows up.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from test_http_serve_command import Served

MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads peak memory from /proc (Linux)"
)


def peak_rss(pid: int) -> int:
    """The peak resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def served() -> Iterator[Served]:
    served = Served("--header-timeout", "1", "--idle-timeout", "1")
    try:
        yield served
    finally:
        code, stderr = served.stop()
        assert code == 0, stderr


def address(served: Served) -> tuple[str, int]:
    parts = urlsplit(served.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def send_chunked(where: tuple[str, int], total: int, chunk: int = MiB) -> tuple[int, bytes]:
    """POST ``total`` bytes chunked (no Content-Length); stops when the server closes.

    Returns the bytes sent and whatever answer could be read.
    """
    sock = socket.create_connection(where, timeout=60)
    head = (
        "POST /orchestrators/greet HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sent = 0
    piece = f"{chunk:x}\r\n".encode() + b"7" * chunk + b"\r\n"
    try:
        sock.sendall(head.encode())
        while sent < total:
            sock.sendall(piece)
            sent += chunk
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered 413 and closed the connection
    answer = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    sock.close()
    return sent, answer


def test_a_200_mb_body_is_refused_while_it_streams_in(served: Served) -> None:
    pid = served.process.pid
    before = peak_rss(pid)
    sent, answer = send_chunked(address(served), 200 * MiB)
    # the server kept its memory and stopped reading soon after 16 MiB
    grown = peak_rss(pid) - before
    assert grown < 80 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB"
    assert sent < 100 * MiB, f"the server read {sent / MiB:.0f} MiB"
    if answer:  # the reset can swallow the answer; when it arrives it is the JSON 413
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"error":"The request body is larger than 16,777,216 bytes"' in answer
    # four at once
    threads = [
        threading.Thread(target=send_chunked, args=(address(served), 200 * MiB)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    grown = peak_rss(pid) - before
    print(f"peak RSS growth after 5 x 200 MiB bodies: {grown / MiB:.0f} MiB", file=sys.stderr)
    assert grown < 200 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB"
    assert httpx.get(f"{served.url}/instances").status_code == 200


def test_a_declared_too_large_body_is_refused_before_it_is_read(served: Served) -> None:
    with socket.create_connection(address(served), timeout=30) as sock:
        sock.sendall(
            b"POST /orchestrators/greet HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after it
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert answer.endswith(b'{"error":"The request body is larger than 16,777,216 bytes"}')


def test_a_body_within_the_limit_is_taken(served: Served) -> None:
    value = "x" * (8 * MiB)
    response = httpx.post(f"{served.url}/orchestrators/greet/big-ok", json=value, timeout=60)
    assert response.status_code == 202


def test_a_configured_limit_applies_to_chunked_bodies() -> None:
    served = Served("--max-body-size", "1000")

    def body() -> Iterator[bytes]:
        yield b'"' + b"a" * 999
        yield b'a"'

    try:
        response = httpx.post(
            f"{served.url}/orchestrators/greet",
            content=body(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json() == {"error": "The request body is larger than 1,000 bytes"}
        assert httpx.post(f"{served.url}/orchestrators/greet", json="a" * 990).status_code == 202
    finally:
        code, stderr = served.stop()
    assert code == 0, stderr


def closed_within(sock: socket.socket, seconds: float, dribble: bytes = b"") -> float | None:
    """Seconds until the server closes ``sock`` (sending ``dribble`` a byte at a time), or None."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        if dribble:
            try:
                sock.send(dribble[:1])
            except OSError:
                return time.monotonic() - start
            dribble = dribble[1:]
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def test_slow_or_silent_clients_are_disconnected(served: Served) -> None:
    where = address(served)
    silent = [socket.create_connection(where) for _ in range(10)]
    slow = socket.create_connection(where)
    slow.sendall(b"GET /instances HTTP/1.1\r\n")
    dribbling = socket.create_connection(where)
    try:
        for sock in silent:
            assert closed_within(sock, 10) is not None, "a silent connection stayed open"
        assert closed_within(slow, 10) is not None, "a half-sent request head stayed open"
        elapsed = closed_within(dribbling, 10, b"Host: 127.0.0.1\r\nX-Slow: " + b"a" * 200)
        assert elapsed is not None, "a request head sent byte by byte stayed open"
    finally:
        for sock in [*silent, slow, dribbling]:
            sock.close()


def test_idle_keep_alive_connections_are_closed(served: Served) -> None:
    with socket.create_connection(address(served)) as sock:
        sock.sendall(b"GET /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_within(sock, 10) is not None


def test_connections_beyond_the_limit_get_503_until_others_leave() -> None:
    # a header timeout long enough that the held connections outlive a slow machine's setup
    served = Served("--header-timeout", "5", "--max-connections", "20")
    where = address(served)
    held = [socket.create_connection(where) for _ in range(20)]
    try:
        with socket.create_connection(where, timeout=10) as sock:
            sock.sendall(b"GET /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 503")
        for sock in held:  # the header timeout frees them
            assert closed_within(sock, 30) is not None
        assert httpx.get(f"{served.url}/instances").status_code == 200
    finally:
        for sock in held:
            sock.close()
        code, stderr = served.stop()
    assert code == 0, stderr


def test_an_oversized_request_head_is_refused(served: Served) -> None:
    with socket.create_connection(address(served), timeout=30) as sock:
        sock.sendall(b"GET /instances HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
