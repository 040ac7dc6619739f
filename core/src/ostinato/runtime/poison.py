"""The core's poison policy, the same for every provider.

Providers count deliveries per work item (``dequeue_count``); the worker reads the count:

* a **fresh** item (first delivery) runs as usual, in batches, beside other work;
* a **suspect** (delivered before: its last delivery may have crashed or hung its worker) runs
  **alone** in its worker: it is kept only when it is the one item the worker holds; locked
  beside other work it is given back at once (a hand-out counts as a delivery, and a
  neighbour crashing the worker while the suspect waited would charge it again), and the
  worker turns careful: it takes work one item at a time, each only when it holds nothing,
  so the suspect comes back alone. It stays careful until it meets a fresh item again (and
  for :data:`CAREFUL_AFTER_GIVE_BACK` after a give-back). So when a suspect crashes its
  worker, only the suspect's count grows, and a suspect never waits while others run:
  innocents locked beside a poison item are not charged again for it;
* a **poison** item (more deliveries than ``max_delivery_attempts``) does not run again: an
  activity fails its task with :class:`~ostinato.errors.PoisonMessageError` (the orchestration
  may catch it), an orchestration step fails the instance with that failure.

A step computed from an activity's result in the activity's process (eager steps) is charged
through the activity: the result of an activity delivered more than once counts as one
delivery of the step it brings (see ``AsyncWorker._commit_charging``).

A suspect activity whose instance has ended or moved on is not run at all, and a suspect
orchestration step that carries a terminate is applied without running the code: terminating
a poison instance never waits for its poison step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ostinato.errors import FailureDetails, PoisonMessageError

#: Deliveries of one work item before the core fails it instead of running it again.
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
#: After a suspect was given back, the worker stays careful at least this long (seconds), so
#: the suspect comes back to a worker that holds nothing else even while fresh work flows.
CAREFUL_AFTER_GIVE_BACK = 10.0


def poison_failure(what: str, deliveries: int, max_delivery_attempts: int) -> FailureDetails:
    """The failure recorded for a poison work item (``what``: e.g. "Activity 'x' of 'y'")."""
    return FailureDetails(
        PoisonMessageError.__name__,
        f"{what} was delivered {deliveries} times without finishing "
        f"(max_delivery_attempts={max_delivery_attempts}): each delivery crashed or hung its "
        "worker (os._exit, a crashing extension, the OOM killer, a lock that expired), so it "
        "is failed instead of run again",
    )


class Isolation:
    """Lets a worker run one suspect work item with nothing else held (see the module doc).

    Every work item the worker holds counts as in flight, from the poll that locks it to its
    end. Pollers call :meth:`before_poll` / :meth:`after_poll`; whoever ends an item calls
    :meth:`finished`. A suspect is claimed with :meth:`claim_suspect`, run after
    :meth:`wait_alone`, and let go with :meth:`release_suspect`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: Seconds, for :data:`CAREFUL_AFTER_GIVE_BACK` (tests pass their own).
        self._clock = clock
        #: Guards the counts; entered directly (a C call), not through the Condition (two
        #: Python calls).
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        #: Threads waiting on the condition (nobody to notify is the common case).
        self._waiting = 0
        self._in_flight = 0
        self._suspect = False
        #: Take one item at a time (at start, and after a suspect, until a fresh item).
        self.careful = True
        #: The clock's time before which a fresh item does not end careful mode.
        self._careful_until = 0.0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def before_poll(self, wanted: int, stopping: threading.Event) -> int:
        """Wait until a poll may lock work; how many items it may lock (0: stopping).

        While a suspect is held nothing new is locked; a careful worker polls only when it
        holds nothing. Every call that returns more than 0 must be followed by
        :meth:`after_poll`.
        """
        with self._lock:
            while not stopping.is_set() and (
                self._suspect or (self.careful and self._in_flight > 0)
            ):
                self._wait()
            if stopping.is_set():
                return 0
            self._in_flight += 1  # the poll itself, until it says what it locked
            return 1 if self.careful else wanted

    def after_poll(self, locked: int, fresh: bool) -> None:
        """The poll locked ``locked`` items; ``fresh``: one of them was a first delivery."""
        with self._lock:
            self._in_flight += locked - 1
            if fresh and not self._suspect and self._clock() >= self._careful_until:
                self.careful = False
            self._notify()

    def reserve(self, wanted: int) -> int:
        """Count up to ``wanted`` fresh items taken outside a poll (activity tasks a commit
        claims) as in flight; how many (0 while careful or while a suspect is held). Call
        :meth:`finished` for those that do not come, as for those that end."""
        with self._lock:
            if self._suspect or self.careful:
                return 0
            self._in_flight += wanted
            return wanted

    def finished(self, count: int = 1) -> None:
        """``count`` held items ended (committed, failed, abandoned or dropped)."""
        if count:
            with self._lock:
                self._in_flight -= count
                self._notify()

    def claim_suspect(self) -> bool:
        """Claim the right to run a suspect now: only when it is the one item held.

        False: another suspect is held, or other work is (the caller gives this one back at
        once, before that work runs on, so a crash of it does not charge the suspect); the
        worker turns careful so the suspect comes back alone.
        """
        with self._lock:
            self.careful = True
            if self._suspect or self._in_flight > 1:
                self._careful_until = self._clock() + CAREFUL_AFTER_GIVE_BACK
                return False
            self._suspect = True
            return True

    def wait_alone(self, stopping: threading.Event) -> bool:
        """Wait until the claimed suspect is the only item held (False: stopping)."""
        with self._lock:
            while self._in_flight > 1 and not stopping.is_set():
                self._wait()
            return not stopping.is_set()

    def release_suspect(self) -> None:
        with self._lock:
            self._suspect = False
            self._notify()

    def _wait(self) -> None:
        """Wait (holding the condition) for a change, or 0.1 s."""
        self._waiting += 1
        try:
            self._condition.wait(0.1)
        finally:
            self._waiting -= 1

    def _notify(self) -> None:
        if self._waiting:
            self._condition.notify_all()


__all__ = [
    "CAREFUL_AFTER_GIVE_BACK",
    "DEFAULT_MAX_DELIVERY_ATTEMPTS",
    "Isolation",
    "poison_failure",
]
