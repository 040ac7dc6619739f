"""CallGroup: concurrent calls run together, each caller gets its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from ostinato.relational.grouping import CallGroup


def test_waiting_calls_run_as_one_batch_led_by_one_of_them() -> None:
    batches: list[tuple[list[int], str]] = []
    first_running = threading.Event()

    def run(requests: Sequence[int]) -> list[BaseException | None]:
        batches.append((list(requests), threading.current_thread().name))
        if 0 in requests:
            first_running.set()
            time.sleep(0.2)  # meanwhile the others queue up
        return [ValueError(n) if n % 2 else None for n in requests]

    group: CallGroup[int] = CallGroup(run)
    outcomes: dict[int, BaseException | None] = {}

    def call(n: int) -> None:
        try:
            group(n)
            outcomes[n] = None
        except ValueError as exc:
            outcomes[n] = exc

    first = threading.Thread(target=call, args=(0,), name="caller-0")
    first.start()
    first_running.wait(5)
    others = [threading.Thread(target=call, args=(n,), name=f"caller-{n}") for n in range(1, 6)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(5)
    assert batches[0] == ([0], "caller-0")
    second, leader = batches[1]
    assert sorted(second) == [1, 2, 3, 4, 5]
    assert leader == f"caller-{second[0]}"  # the first to arrive leads, no one else
    assert {n: type(o) for n, o in outcomes.items()} == {
        0: type(None),
        1: ValueError,
        2: type(None),
        3: ValueError,
        4: type(None),
        5: ValueError,
    }


def test_a_failing_batch_fails_every_call_in_it() -> None:
    def run(requests: Sequence[int]) -> list[BaseException | None]:
        raise OSError("disk gone")

    group: CallGroup[int] = CallGroup(run)
    with pytest.raises(OSError, match="disk gone"):
        group(1)
    with pytest.raises(OSError, match="disk gone"):  # and the group is usable again
        group(2)
