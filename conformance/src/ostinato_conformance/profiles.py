"""Run profiles of the conformance suite: ``quick`` (every CI run), ``thorough`` and ``stress``.

A profile sets how much hypothesis explores: examples per property, the length of state
machine runs, and how many generated orchestration programs run end to end. Select one with
``--ostinato-profile=thorough`` or the environment variable ``OSTINATO_CONFORMANCE_PROFILE``;
the default is ``quick``. The active profile is shown in pytest's report header.

``stress`` (also ``--ostinato-stress``) explores more than ``thorough``'s state machines with
more threads, and the plugin runs CPU hogs beside the suite and makes threads switch far more
often (see :mod:`ostinato_conformance.stress`), to flush out races that need load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, Phase, settings

#: The environment variable that selects a profile when the option is not given.
PROFILE_ENV_VAR = "OSTINATO_CONFORMANCE_PROFILE"
#: The name of the profile CI runs on every change (the only one a provider may scale down).
QUICK_NAME = "quick"
#: Set to skip shrinking (faster failures, e.g. when only *whether* a test fails matters).
NO_SHRINK_ENV_VAR = "OSTINATO_CONFORMANCE_NO_SHRINK"


@dataclass(frozen=True)
class Profile:
    """How hard the suite tries.

    * ``machine_examples`` / ``machine_steps``: state-machine runs and steps per run;
    * ``program_examples``: generated orchestration programs run end to end;
    * ``fault_examples``: generated programs rerun under fault injection;
    * ``property_examples``: examples of the smaller property tests (queries, ids);
    * ``concurrency``: threads used by the concurrency tests;
    * ``stress``: run CPU hogs beside the suite and switch threads often.
    """

    name: str
    machine_examples: int
    machine_steps: int
    program_examples: int
    fault_examples: int
    property_examples: int
    concurrency: int
    stress: bool = False

    def scaled(self, factor: float) -> Profile:
        """This profile with ``factor`` of its state-machine runs and generated programs (at
        least one each); only the quick profile is scaled, thorough and stress never are."""
        if not 0 < factor <= 1:
            raise ValueError(f"a profile scale must be in (0, 1], not {factor!r}")
        if self.name != QUICK_NAME or factor == 1:
            return self
        return replace(
            self,
            machine_examples=max(1, round(self.machine_examples * factor)),
            program_examples=max(1, round(self.program_examples * factor)),
            fault_examples=max(1, round(self.fault_examples * factor)),
        )

    def hypothesis_settings(self, max_examples: int, **overrides: object) -> settings:
        """Hypothesis settings for one test of this profile (no deadline, no database)."""
        options: dict[str, object] = {
            "max_examples": max_examples,
            "deadline": None,
            "database": None,
            "suppress_health_check": list(HealthCheck),
            "derandomize": self.name == QUICK_NAME,
        }
        if os.environ.get(NO_SHRINK_ENV_VAR):
            options["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
        options.update(overrides)
        return settings(**options)  # type: ignore[arg-type]


QUICK = Profile(
    name=QUICK_NAME,
    machine_examples=100,
    machine_steps=30,
    program_examples=12,
    fault_examples=12,
    property_examples=25,
    concurrency=8,
)
THOROUGH = Profile(
    name="thorough",
    machine_examples=300,
    machine_steps=80,
    program_examples=150,
    fault_examples=100,
    property_examples=300,
    concurrency=16,
)
STRESS = Profile(
    name="stress",
    machine_examples=400,
    machine_steps=60,
    program_examples=60,
    fault_examples=60,
    property_examples=100,
    concurrency=24,
    stress=True,
)
PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, THOROUGH, STRESS)}

_selected: str | None = None


def select_profile(name: str | None) -> Profile:
    """Make ``name`` (or the environment's choice, or ``quick``) the active profile."""
    global _selected
    chosen = name or os.environ.get(PROFILE_ENV_VAR) or QUICK.name
    if chosen not in PROFILES:
        raise ValueError(
            f"Unknown ostinato conformance profile {chosen!r}; choose one of {sorted(PROFILES)}"
        )
    _selected = chosen
    return PROFILES[chosen]


def current_profile() -> Profile:
    """The active profile (``quick`` unless one was selected)."""
    if _selected is None:
        return select_profile(None)
    return PROFILES[_selected]
