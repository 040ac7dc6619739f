"""Several worker processes on one task hub: one Python worker uses one core's worth of Python.

:class:`WorkerSupervisor` starts ``processes`` child processes, each building its own provider
with the same picklable factory (``ot.provider_from_config``, or
``functools.partial(ot.provider_from_config, "ostinato.toml")``) and running a :class:`Worker` on it
(live providers hold connections and locks, so they are never sent to a child). It:

* restarts a child that exits on its own (a crash, ``SIGKILL``, the OOM killer), waiting
  longer between restarts while children keep dying right after they start;
* stops gracefully: :meth:`~WorkerSupervisor.stop` sends each child ``SIGTERM``, and a child
  stops its worker the way :meth:`Worker.stop` does (no new work, ``grace_period`` for
  in-flight work, the rest handed back); children still running after that are killed;
* stops the children when the supervisor itself dies without stopping them (they watch
  their parent).

Children ignore ``SIGINT`` (a Ctrl-C in a terminal reaches the whole process group): the
supervisor decides when they stop. Work a killed child held is not lost: its locks expire
after ``lock_timeout`` and another worker takes it.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Unpack

from ostinato.errors import ConfigurationError
from ostinato.orchestration.app import App
from ostinato.provider import ProviderCapabilities, StorageProvider
from ostinato.runtime.worker import Worker, WorkerOptions

log = logging.getLogger("ostinato.runtime.supervisor")

#: Seconds a child gets to start (import the app, open its provider) before it counts as failed.
START_TIMEOUT = 60.0
#: Seconds beyond ``grace_period`` a stopping child gets before it is killed.
STOP_MARGIN = 10.0
#: A child that ran at least this long before exiting is restarted at once.
HEALTHY_RUN = 10.0
#: The longest wait before restarting a child that keeps dying right after it starts.
MAX_RESTART_DELAY = 30.0

#: What a child needs to get its app: the app itself (pickled: its functions must be
#: importable, e.g. defined at module level) or a picklable function returning it.
AppSource = App | Callable[[], App]
#: Builds a child's provider; picklable, e.g. ``ot.provider_from_config``.
ProviderFactory = Callable[[], StorageProvider]


def default_processes(capabilities: ProviderCapabilities | None = None) -> int:
    """How many worker processes to run by default: one per CPU this process may run on, at
    most the provider's ``worker_processes``, and 1 for a provider whose task hub several
    processes cannot share (``capabilities``: the provider's; ``None``: just the CPUs)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    if capabilities is None:
        return cpus
    if not capabilities.multi_process:
        return 1
    return min(cpus, capabilities.worker_processes or cpus)


class _Child:
    """One slot's current process."""

    def __init__(self, index: int, process: SpawnProcess, ready: ProcessEvent) -> None:
        self.index = index
        self.process = process
        self.ready = ready
        self.started_at = time.monotonic()


class WorkerSupervisor:
    """Runs ``processes`` worker processes for ``app``, each on a provider from ``provider``.

        Use ``with WorkerSupervisor(app, ot.provider_from_config, processes=4): ...`` or
        :meth:`start` / :meth:`stop`. ``provider`` is a picklable zero-argument callable that
        builds the provider (each child calls it; so does :meth:`start`, once, to set up the task
        hub). ``processes`` defaults to :func:`default_processes` for the provider (one per CPU,
    at most its ``ProviderCapabilities.worker_processes``). The keyword arguments are each child's
        :class:`Worker` options; a given ``worker_id`` gets the child's index appended.

        Raises :class:`~ostinato.errors.ConfigurationError` from :meth:`start` for a provider
        whose task hub several processes cannot share (``ProviderCapabilities.multi_process``),
        such as the in-memory one.
    """

    def __init__(
        self,
        app: AppSource,
        provider: ProviderFactory,
        *,
        processes: int | None = None,
        **options: Unpack[WorkerOptions],
    ) -> None:
        if processes is not None and processes < 1:
            raise ValueError("processes must be at least 1")
        self.app = app
        self.provider_factory = provider
        #: The number asked for (``None``: the provider's default, fixed by :meth:`start`).
        self.requested_processes = processes
        self.processes = processes or default_processes()
        self.options = options
        self._context = multiprocessing.get_context("spawn")
        self._children: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        #: How many times a child was restarted (for logs and tests).
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> WorkerSupervisor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Set up the task hub, start the children and wait until each one takes work."""
        if self._monitor is not None:
            raise RuntimeError("The supervisor is already running")
        provider = self.provider_factory()
        try:
            if self.requested_processes is None:
                self.processes = default_processes(provider.capabilities)
            if self.processes > 1 and not provider.capabilities.multi_process:
                raise ConfigurationError(
                    f"Provider {type(provider).__name__} cannot share a task hub between"
                    " processes; run one worker process (processes=1)"
                )
            provider.setup()
        finally:
            provider.close()
        self._stopping.clear()
        with self._lock:
            for index in range(self.processes):
                self._children[index] = self._spawn(index)
        try:
            for child in list(self._children.values()):
                self._wait_ready(child)
        except BaseException:
            self.kill()
            raise
        self._monitor = threading.Thread(
            target=self._watch, name="ostinato-supervisor", daemon=True
        )
        self._monitor.start()

    def stop(self) -> list[int]:
        """Stop every child gracefully (``SIGTERM``), killing those that outlast the grace.

        Returns the children's exit codes by slot (``0``: stopped gracefully).
        """
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join()
            self._monitor = None
        with self._lock:
            children = list(self._children.values())
            self._children.clear()
        for child in children:
            if child.process.is_alive() and child.process.pid is not None:
                os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.get("grace_period", 30.0) + STOP_MARGIN
        for child in children:
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.warning("Worker process %s did not stop in time; killing it", child.index)
                child.process.kill()
                child.process.join()
        return [
            -1 if child.process.exitcode is None else child.process.exitcode
            for child in sorted(children, key=lambda c: c.index)
        ]

    def kill(self) -> None:
        """Stop every child at once (``SIGKILL``); their work returns when locks expire."""
        self._stopping.set()
        with self._lock:
            children = list(self._children.values())
            self._children.clear()
        for child in children:
            child.process.kill()
        for child in children:
            child.process.join()

    @property
    def pids(self) -> list[int]:
        """The children's process ids, by slot."""
        with self._lock:
            return [
                c.process.pid
                for _, c in sorted(self._children.items())
                if c.process.pid is not None
            ]

    def wait_ready(self, timeout: float = START_TIMEOUT) -> bool:
        """Wait until every slot's current child takes work; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                children = list(self._children.values())
            if len(children) == self.processes and all(
                c.ready.is_set() and c.process.is_alive() for c in children
            ):
                return True
            time.sleep(0.05)
        return False

    # -- children -------------------------------------------------------------------------
    def _spawn(self, index: int) -> _Child:
        options = dict(self.options)
        if options.get("worker_id"):
            options["worker_id"] = f"{options['worker_id']}-{index}"
        ready = self._context.Event()
        process = self._context.Process(
            target=_run_child,
            args=(self.app, self.provider_factory, options, ready, os.getpid(), logging.root.level),
            name=f"ostinato-worker-{index}",
        )
        process.start()
        log.info("Started worker process %s (pid %s)", index, process.pid)
        return _Child(index, process, ready)

    def _wait_ready(self, child: _Child) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not child.ready.wait(0.05):
            if not child.process.is_alive():
                raise RuntimeError(
                    f"Worker process {child.index} exited with code {child.process.exitcode}"
                    " before it started (its log says why)"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"Worker process {child.index} did not start in time")

    def _watch(self) -> None:
        """Restart children that exit while the supervisor runs."""
        delays: dict[int, float] = {}
        while not self._stopping.is_set():
            with self._lock:
                children = list(self._children.values())
            sentinels = [c.process.sentinel for c in children]
            multiprocessing.connection.wait(sentinels, timeout=0.2)
            for child in children:
                if child.process.is_alive() or self._stopping.is_set():
                    continue
                ran = time.monotonic() - child.started_at
                delay = 0.0 if ran >= HEALTHY_RUN else delays.get(child.index, 0.5)
                delays[child.index] = min(max(delay, 0.5) * 2, MAX_RESTART_DELAY)
                log.warning(
                    "Worker process %s (pid %s) exited with code %s; restarting it%s",
                    child.index,
                    child.process.pid,
                    child.process.exitcode,
                    f" in {delay:.1f}s" if delay else "",
                )
                child.process.close()
                if self._stopping.wait(delay):
                    with self._lock:
                        self._children.pop(child.index, None)
                    return
                with self._lock:
                    self._children[child.index] = self._spawn(child.index)
                    self.restarts += 1


def _run_child(
    app: AppSource,
    provider_factory: ProviderFactory,
    options: WorkerOptions,
    ready: ProcessEvent,
    parent_pid: int,
    log_level: int,
) -> None:
    """A child's main: run a worker until ``SIGTERM`` or until the supervisor is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
    )
    resolved = app if isinstance(app, App) else app()
    provider = provider_factory()
    try:
        worker = Worker(resolved, provider, **options)
        worker.start()
        ready.set()
        while not stop.wait(0.5):
            if os.getppid() != parent_pid:
                log.warning("The supervisor is gone; stopping")
                break
        worker.stop()
    finally:
        provider.close()


__all__ = ["AppSource", "ProviderFactory", "WorkerSupervisor", "default_processes"]
