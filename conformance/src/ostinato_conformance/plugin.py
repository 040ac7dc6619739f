"""pytest plugin of the ostinato conformance suite (registered through ``pytest11``).

Import-light on purpose: it adds the command-line options, the ``ostinato_requires`` marker,
the hypothesis profiles and the report header, and nothing is imported from the suite until
a test module imports it. Options:

* ``--ostinato-provider=module:factory`` — the provider factory for suite classes that do not
  override the ``provider_factory`` fixture (run the bundled suite with
  ``pytest --pyargs ostinato_conformance.cli --ostinato-provider=module:factory``);
* ``--ostinato-profile=quick|thorough`` — how hard to try (default: ``quick``, or the
  ``OSTINATO_CONFORMANCE_PROFILE`` environment variable).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite(
    "ostinato_conformance.contract",
    "ostinato_conformance.machine",
    "ostinato_conformance.programs",
    "ostinato_conformance.base",
    "ostinato_conformance.support",
)


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
        choices=["quick", "thorough"],
        help="conformance profile: quick (default; every CI run) or thorough "
        "(more examples, longer state machines); env: OSTINATO_CONFORMANCE_PROFILE",
    )


def pytest_configure(config: pytest.Config) -> None:
    from ostinato_conformance.profiles import select_profile

    config.addinivalue_line(
        "markers",
        "ostinato_requires(*capabilities): the test needs these provider capabilities; "
        "it is skipped, naming them, for providers that do not claim them",
    )
    try:
        select_profile(config.getoption("ostinato_profile", default=None))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    from ostinato_conformance.profiles import current_profile

    profile = current_profile()
    line = (
        f"ostinato conformance: profile={profile.name} "
        f"(state machines {profile.machine_examples}x{profile.machine_steps} steps, "
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
