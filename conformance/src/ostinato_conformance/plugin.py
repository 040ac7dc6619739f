"""pytest plugin of the ostinato conformance suite (registered through ``pytest11``).

Import-light on purpose: it adds the command-line options, the ``ostinato_requires`` marker,
the hypothesis profiles and the report header, and nothing is imported from the suite until
a test module imports it. Options:

* ``--ostinato-provider=module:factory`` — the provider factory for suite classes that do not
  override the ``provider_factory`` fixture (run the bundled suite with
  ``pytest --pyargs ostinato_conformance.cli --ostinato-provider=module:factory``);
* ``--ostinato-profile=quick|thorough|stress`` — how hard to try (default: ``quick``, or the
  ``OSTINATO_CONFORMANCE_PROFILE`` environment variable);
* ``--ostinato-stress`` — the ``stress`` profile: more interleavings, with CPU hogs beside the
  suite and frequent thread switches (see :mod:`ostinato_conformance.stress`);
* ``--ostinato-report=PATH`` — write the conformance report (``PATH.md`` and ``PATH.json``,
  see :mod:`ostinato_conformance.report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.register_assert_rewrite(
    "ostinato_conformance.contract",
    "ostinato_conformance.machine",
    "ostinato_conformance.programs",
    "ostinato_conformance.base",
    "ostinato_conformance.support",
)


if TYPE_CHECKING:
    from ostinato_conformance.stress import Stress

_STRESS: pytest.StashKey[Stress] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ostinato", "ostinato provider conformance suite")
    group.addoption(
        "--ostinato-provider",
        dest="ostinato_provider",
        default=None,
        metavar="MODULE:FACTORY",
        help="provider factory to run the conformance suite against (a callable returning a "
        "provider on a fresh, empty task hub, or an 'ostinato.providers' entry point name)",
    )
    group.addoption(
        "--ostinato-profile",
        dest="ostinato_profile",
        default=None,
        choices=["quick", "thorough", "stress"],
        help="conformance profile: quick (default; every CI run), thorough "
        "(more examples, longer state machines) or stress (thorough under CPU load); "
        "env: OSTINATO_CONFORMANCE_PROFILE",
    )
    group.addoption(
        "--ostinato-stress",
        dest="ostinato_stress",
        action="store_true",
        default=False,
        help="run under stress: the stress profile, CPU hogs beside the suite, and frequent "
        "thread switches",
    )
    group.addoption(
        "--ostinato-report",
        dest="ostinato_report",
        default=None,
        metavar="PATH",
        help="write the conformance report to PATH.md and PATH.json (each guarantee, the "
        "capabilities claimed, passed / skipped with reason / failed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from ostinato_conformance.profiles import select_profile

    config.addinivalue_line(
        "markers",
        "ostinato_requires(*capabilities): the test needs these provider capabilities; "
        "it is skipped, naming them, for providers that do not claim them",
    )
    name = config.getoption("ostinato_profile", default=None)
    if config.getoption("ostinato_stress", default=False):
        name = "stress"
    try:
        profile = select_profile(name)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    path = config.getoption("ostinato_report", default=None)
    if path:
        from ostinato_conformance.report import ConformanceReport

        config.pluginmanager.register(ConformanceReport(path), "ostinato-conformance-report")
    if profile.stress and not hasattr(config, "workerinput"):
        from ostinato_conformance.stress import Stress

        stress = Stress()
        stress.start()
        config.stash[_STRESS] = stress


def pytest_unconfigure(config: pytest.Config) -> None:
    stress = config.stash.get(_STRESS, None)
    if stress is not None:
        stress.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from ostinato_conformance.profiles import current_profile

    profile = current_profile()
    stress = config.stash.get(_STRESS, None)
    line = (
        f"ostinato conformance: profile={profile.name} "
        + (f"(stress: {stress.hogs} CPU hogs, switch interval 20 us) " if stress else "")
        + f"(state machines {profile.machine_examples}x{profile.machine_steps} steps, "
        f"programs {profile.program_examples}, fault runs {profile.fault_examples})"
    )
    spec = config.getoption("ostinato_provider", default=None)
    return [line + (f", provider={spec}" if spec else "")]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    """Give the suite's own modules a readable node id when they lie outside the rootdir.

    ``pytest --pyargs ostinato_conformance.cli`` from a user's project collects a file outside
    its rootdir; pytest would then name its tests ``::TestClass::test`` (an empty path). They
    are named ``ostinato_conformance/cli.py::TestClass::test`` instead.
    """
    package = Path(__file__).resolve().parent
    if module_path.resolve().parent != package:
        return None
    try:
        module_path.relative_to(parent.config.rootpath)
    except ValueError:
        return pytest.Module.from_parent(
            parent, path=module_path, nodeid=f"{package.name}/{module_path.name}"
        )
    return None
