"""Retention: finished instances are purged once they are older than their status allows.

A :class:`RetentionPolicy` gives a maximum age per terminal status (``completed=7 days``,
``failed=30 days``, ...; a status without one is kept forever); an instance's age is the
time since it finished (its record's ``last_updated_at``). Workers given a policy apply it in
the background (:class:`RetentionSweeper`): one worker at a time per task hub, the holder of
the provider's ``retention`` lease, purges in small batches with pauses between them, so the
sweep never holds the store for long; then it asks the provider to give the freed space back
(:meth:`~ostinato.provider.StorageProvider.reclaim_space`). ``ostinato purge --older-than``
runs the same purge once, from the command line.

Dead letters are kept as long as failed instances: purging an instance deletes its dead
letters, and the sweep also deletes every dead letter older than the policy's ``failed`` age
(those of instances that live on: an entity's, or one whose instance was restarted), so a
dead letter outlives the failure it caused by at most that age. Without a ``failed`` age, dead
letters are kept until deleted (``ostinato dead-letters delete``).

Policies come from code (``Worker(..., retention=RetentionPolicy(...))``) or from the config
file's ``[retention]`` table (``completed = "7d"``) and ``OSTINATO_RETENTION_<STATUS>``
variables (:func:`ostinato.config.retention_from_config`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ostinato.clock import utcnow
from ostinato.provider import InstanceQuery, StorageProvider
from ostinato.status import TERMINAL_STATUSES, OrchestrationStatus

log = logging.getLogger("ostinato.retention")

#: The name of the lease that elects the one sweeping worker of a task hub.
LEASE_NAME = "retention"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
RETENTION_STATUS_KEYS = {s.value.lower(): s for s in TERMINAL_STATUSES}
RETENTION_OPTION_KEYS = ("interval", "batch_size")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: give a number and s, m, h, d or w (7d)")
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished instances are kept, per terminal status (``None``: forever).

    ``interval``: seconds between sweeps; ``batch_size``: instances purged per batch (the
    sweeper pauses ``pause`` seconds between batches).
    """

    completed: timedelta | None = None
    failed: timedelta | None = None
    terminated: timedelta | None = None
    interval: float = 60.0
    batch_size: int = 100
    pause: float = 0.05

    def __post_init__(self) -> None:
        for status, age in self.ages().items():
            if age < timedelta(0):
                raise ValueError(f"Retention for {status.value} must not be negative")
        if self.interval <= 0 or self.batch_size < 1:
            raise ValueError("Retention interval must be positive and batch_size at least 1")

    def ages(self) -> dict[OrchestrationStatus, timedelta]:
        """The maximum age of each status that has one."""
        ages = {
            OrchestrationStatus.COMPLETED: self.completed,
            OrchestrationStatus.FAILED: self.failed,
            OrchestrationStatus.TERMINATED: self.terminated,
        }
        return {status: age for status, age in ages.items() if age is not None}

    @classmethod
    def older_than(
        cls, age: timedelta, statuses: frozenset[OrchestrationStatus] = TERMINAL_STATUSES
    ) -> RetentionPolicy:
        """One age for ``statuses`` (``ostinato purge --older-than``)."""
        wanted = statuses & TERMINAL_STATUSES
        return cls(
            completed=age if OrchestrationStatus.COMPLETED in wanted else None,
            failed=age if OrchestrationStatus.FAILED in wanted else None,
            terminated=age if OrchestrationStatus.TERMINATED in wanted else None,
        )


def purge_expired(
    provider: StorageProvider,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Purge up to ``limit`` (default: the policy's batch size) instances older than the
    policy allows; returns how many were purged (fewer than ``limit``: nothing is left)."""
    now = now or utcnow()
    limit = policy.batch_size if limit is None else limit
    purged = 0
    for status, age in policy.ages().items():
        cutoff = now - age
        token: str | None = None
        while purged < limit and not should_stop():
            # An instance finishes after it was created: created after the cutoff, it
            # cannot have finished before it.
            page = provider.query_instances(
                InstanceQuery(
                    runtime_status=frozenset({status}),
                    created_to=cutoff,
                    page_size=max(limit, 100),
                    continuation_token=token,
                )
            )
            for record in page.items:
                if purged >= limit:
                    break
                if record.last_updated_at <= cutoff and provider.purge_instance(
                    record.instance_id, (status,)
                ):
                    purged += 1
            token = page.continuation_token
            if token is None:
                break
    return purged


class RetentionSweeper:
    """A worker's background thread applying a policy while it holds the hub's lease."""

    def __init__(self, provider: StorageProvider, policy: RetentionPolicy, owner: str) -> None:
        self.provider = provider
        self.policy = policy
        self.owner = owner
        self.purged = 0
        self.dead_letters_purged = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set after each sweep (for tests and monitoring).
        self.swept = threading.Event()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ostinato-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.provider.release_lease(LEASE_NAME, self.owner)
        except Exception:
            log.debug("Releasing the retention lease failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:
                log.exception("Retention sweep failed; trying again in %ss", self.policy.interval)
            self.swept.set()
            self._stop.wait(self.policy.interval)

    def sweep(self) -> int:
        """One sweep, if this worker holds (or takes) the lease; returns how many it purged."""
        lease = timedelta(seconds=max(self.policy.interval * 3, 30))
        total = 0
        while not self._stop.is_set():
            if not self.provider.acquire_lease(LEASE_NAME, self.owner, lease):
                return total
            count = purge_expired(self.provider, self.policy, should_stop=self._stop.is_set)
            total += count
            self.purged += count
            if count < self.policy.batch_size:
                break
            self._stop.wait(self.policy.pause)
        self._purge_dead_letters()
        if total:
            log.info("Retention purged %d finished instances", total)
            self.provider.reclaim_space()
        return total

    def _purge_dead_letters(self) -> None:
        """Delete the dead letters older than the policy's ``failed`` age, in batches."""
        age = self.policy.failed
        if age is None:
            return
        while not self._stop.is_set():
            count = self.provider.purge_dead_letters(utcnow() - age, self.policy.batch_size)
            self.dead_letters_purged += count
            if count < self.policy.batch_size:
                return
            self._stop.wait(self.policy.pause)


__all__ = ["LEASE_NAME", "RetentionPolicy", "RetentionSweeper", "parse_duration", "purge_expired"]
