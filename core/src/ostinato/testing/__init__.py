"""Tools for testing orchestrations: time skipping, direct runs, and replay.

* :class:`TimeSkippingEnvironment`: a worker and a client on a virtual clock that jumps over
  idle time, so a 30-day orchestration runs in milliseconds; ``env.advance(timedelta)`` and
  ``env.sleep_until(datetime)`` move it by hand.
* :func:`run_activity` and :func:`run_entity_operation`: run one activity or one entity
  operation directly, through the data converter.
* :class:`Replayer`: checks current code against recorded histories (from a task hub or an
  export file) and raises :class:`~ostinato.errors.NonDeterminismError` at the first
  divergence.
* The pytest plugin (installed with ostinato) provides the ``ostinato_env`` fixture.

See docs/testing.md.
"""

from ostinato.testing.clock import VirtualClock
from ostinato.testing.direct import EntityOperationResult, run_activity, run_entity_operation
from ostinato.testing.environment import TimeSkippingClient, TimeSkippingEnvironment
from ostinato.testing.replayer import Replayer, ReplayOutcome, ReplayResult

__all__ = [
    "EntityOperationResult",
    "ReplayOutcome",
    "ReplayResult",
    "Replayer",
    "TimeSkippingClient",
    "TimeSkippingEnvironment",
    "VirtualClock",
    "run_activity",
    "run_entity_operation",
]
