"""The poison policy's isolation: a suspect is kept only when it is the one item its worker
holds, so a neighbour crashing the worker never finds it handed out (and charged again)."""

from __future__ import annotations

import threading

from ostinato.runtime import poison
from ostinato.runtime.poison import Isolation

STOPPING = threading.Event()


def _poll(isolation: Isolation, locked: int, fresh: bool) -> int:
    """One poll that locks ``locked`` items; how many it was allowed to lock."""
    wanted = isolation.before_poll(32, STOPPING)
    isolation.after_poll(locked, fresh)
    return wanted


def _poll_returns(isolation: Isolation) -> bool:
    """Whether a poll may start now (it is let go again at once if it may not)."""
    stopping = threading.Event()
    started = threading.Event()

    def poll() -> None:
        if isolation.before_poll(32, stopping):
            started.set()
            isolation.after_poll(0, False)

    thread = threading.Thread(target=poll)
    thread.start()
    started.wait(0.5)
    stopping.set()
    thread.join()
    return started.is_set()


def test_a_suspect_beside_other_work_is_given_back_and_comes_back_alone() -> None:
    isolation = Isolation()
    assert _poll(isolation, 1, fresh=True) == 1  # careful at start: one item
    assert _poll(isolation, 3, fresh=True) == 32  # a fresh item ended careful mode
    assert isolation.in_flight == 4
    # A suspect locked while four items run (say a poison one among them) is not kept:
    # waiting beside them, a crash of theirs would charge it a delivery it never ran.
    assert _poll(isolation, 1, fresh=False) == 32
    assert not isolation.claim_suspect()
    isolation.finished(1)  # the caller gives it back at once
    assert isolation.careful
    # Careful: no poll while anything is held, then one item at a time.
    assert not _poll_returns(isolation)
    isolation.finished(4)
    assert _poll(isolation, 1, fresh=False) == 1
    assert isolation.claim_suspect()  # alone now
    assert isolation.wait_alone(STOPPING)
    assert not _poll_returns(isolation)  # nothing is locked beside a running suspect
    isolation.finished(1)
    isolation.release_suspect()


def test_a_give_back_keeps_the_worker_careful_while_fresh_work_flows() -> None:
    clock = [100.0]
    isolation = Isolation(clock=lambda: clock[0])
    _poll(isolation, 1, fresh=True)
    _poll(isolation, 1, fresh=False)
    assert not isolation.claim_suspect()  # held beside the fresh item: given back
    isolation.finished(2)
    # Fresh items keep coming first; the worker stays careful, so the suspect, when its turn
    # comes, is alone.
    assert _poll(isolation, 1, fresh=True) == 1
    isolation.finished(1)
    assert _poll(isolation, 1, fresh=True) == 1
    isolation.finished(1)
    clock[0] += poison.CAREFUL_AFTER_GIVE_BACK
    assert _poll(isolation, 1, fresh=True) == 1
    isolation.finished(1)
    assert _poll(isolation, 1, fresh=True) == 32  # careful mode has ended


def test_another_suspect_held_means_give_back() -> None:
    isolation = Isolation()
    _poll(isolation, 1, fresh=False)
    assert isolation.claim_suspect()
    isolation.release_suspect()
    isolation.finished(1)
    _poll(isolation, 1, fresh=False)
    assert isolation.claim_suspect()
    assert not isolation.claim_suspect()  # a second one while the first is held
    isolation.release_suspect()
    isolation.finished(1)
