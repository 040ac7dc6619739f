"""Start and stop the pinned Azurite emulator (``azurite/package.json``) for tests and demos.

Azurite runs under ``node`` directly (not ``npx``, whose child survives SIGTERM), on ports the
OS picks (``--blobPort 0 ...``); the real ports are read from its stdout. On a fresh checkout
``npm ci`` is run here first. As a script it prints the connection string and runs until
interrupted::

    python azurite/start.py                  # in memory
    python azurite/start.py --location DIR   # persisted on disk

From Python::

    from start import Azurite   # with azurite/ on sys.path
    with Azurite() as azurite:
        print(azurite.connection_string)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"

ACCOUNT_NAME = "devstoreaccount1"
#: Azurite's well-known development account key (public; the same for every Azurite).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


class AzuriteUnavailable(RuntimeError):
    """Azurite cannot run here (no ``node``/``npm``, or the install failed)."""


def missing_tools() -> str | None:
    """Why Azurite cannot be started on this machine, or ``None`` if it can."""
    if shutil.which("node") is None:
        return "node is not installed (Azurite needs Node.js 18+)"
    if not ENTRY.exists() and shutil.which("npm") is None:
        return "npm is not installed and azurite/node_modules is missing"
    return None


def ensure_installed() -> None:
    """Run ``npm ci`` in ``azurite/`` if the pinned package is not installed yet."""
    reason = missing_tools()
    if reason:
        raise AzuriteUnavailable(reason)
    if ENTRY.exists():
        return
    npm = shutil.which("npm")
    assert npm is not None
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not ENTRY.exists():
        raise AzuriteUnavailable(f"npm ci failed in {HERE}:\n{result.stdout}\n{result.stderr}")


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    """The connection string for an Azurite listening on these ports of 127.0.0.1."""
    base = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint={base}:{table_port}/{ACCOUNT_NAME};"
    )


class Azurite:
    """One Azurite process. ``start()`` returns once all three services listen.

    ``location=None`` keeps everything in memory; a directory persists it, so a new
    ``Azurite(location=same_dir, ports=old.ports)`` continues where a stopped one left off.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        ports: tuple[int, int, int] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.location = Path(location) if location is not None else None
        self.requested_ports = ports or (0, 0, 0)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.ports: tuple[int, int, int] | None = None
        self.output: list[str] = []

    @property
    def connection_string(self) -> str:
        if self.ports is None:
            raise RuntimeError("Azurite is not running")
        return connection_string(*self.ports)

    def start(self) -> str:
        """Start Azurite and return its connection string."""
        ensure_installed()
        blob, queue, table = self.requested_ports
        args = [
            shutil.which("node") or "node",
            str(ENTRY),
            "--blobPort", str(blob), "--queuePort", str(queue), "--tablePort", str(table),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]  # fmt: skip
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        self.process = subprocess.Popen(
            args,
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        found: dict[str, int] = {}
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip())
                match = _LISTENING.search(line)
                if match:
                    found[match.group(1)] = int(match.group(2))
                    if len(found) == 3:
                        ready.set()
            ready.set()

        threading.Thread(target=read, name="azurite-stdout", daemon=True).start()
        if not ready.wait(self.startup_timeout) or len(found) < 3:
            self.stop()
            raise AzuriteUnavailable("Azurite did not start:\n" + "\n".join(self.output[-30:]))
        self.ports = (found["Blob"], found["Queue"], found["Table"])
        return self.connection_string

    def stop(self, *, kill: bool = False) -> None:
        """Stop Azurite (SIGTERM, then SIGKILL after 10 s; ``kill=True``: SIGKILL at once)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--location", help="persist data in this directory (default: in memory)")
    options = parser.parse_args()
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    # SIGTERM (kill, a process manager) and SIGHUP (a closed terminal) stop node too, as
    # Ctrl+C does.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    with Azurite(options.location) as azurite:
        print(azurite.connection_string, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while azurite.process is not None and azurite.process.poll() is None:
                if stopping.wait(0.5):
                    break
    sys.exit(0)


if __name__ == "__main__":
    main()
