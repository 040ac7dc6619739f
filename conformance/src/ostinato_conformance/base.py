"""The base class of the suite's test classes: the provider fixtures and the override guard.

A provider author subclasses a suite class and overrides **one fixture**,
``provider_factory``: a callable that returns a new provider on a fresh, empty task hub each
time it is called (the suite calls it once per test, and once per hypothesis example)::

    class TestMyProvider(ProviderConformanceTests):
        @pytest.fixture
        def provider_factory(self, tmp_path):
            counter = itertools.count()
            return lambda: MyProvider(tmp_path / f"hub{next(counter)}")

Without an override, the factory named by ``--ostinato-provider=module:factory`` is used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, ClassVar

import pytest
from ostinato.provider import ProviderCapabilities, StorageProvider

from ostinato_conformance.profiles import Profile, current_profile
from ostinato_conformance.requirements import MARKER, skip_reason

ProviderFactory = Callable[[], StorageProvider]

#: The pytest option naming a provider factory (``module:attribute`` or a registered name).
PROVIDER_OPTION = "--ostinato-provider"


def load_factory(spec: str) -> ProviderFactory:
    """The provider factory named by ``spec``.

    ``spec`` is ``package.module:attribute`` (any callable returning a fresh provider, or a
    ``StorageProvider`` subclass), or the name of an entry point in the ``ostinato.providers``
    group (e.g. ``memory``).
    """
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    else:
        found = [ep for ep in metadata.entry_points(group="ostinato.providers") if ep.name == spec]
        if not found:
            raise pytest.UsageError(
                f"{PROVIDER_OPTION}={spec!r}: expected 'module:factory' or the name of an "
                "'ostinato.providers' entry point"
            )
        target = found[0].load()
    if not callable(target):
        raise pytest.UsageError(f"{PROVIDER_OPTION}={spec!r} does not name a callable")
    return target  # type: ignore[no-any-return]


class ConformanceTestBase:
    """Fixtures shared by every suite class, and the guard against silent overrides."""

    #: The share of the quick profile's state-machine runs and generated programs this
    #: provider runs (1.0: all of them). A store whose every call is a network round trip
    #: sets less, so CI's quick run stays within its time budget; the thorough and stress
    #: profiles always run their whole budgets, and every test still runs.
    quick_profile_scale: ClassVar[float] = 1.0

    @classmethod
    def profile(cls) -> Profile:
        """The active profile, as this provider runs it (see ``quick_profile_scale``)."""
        return current_profile().scaled(cls.quick_profile_scale)

    @pytest.fixture
    def provider_factory(self, request: pytest.FixtureRequest) -> ProviderFactory:
        """Override this: a callable returning a provider on a fresh, empty task hub.

        The default builds the factory named by ``--ostinato-provider``.
        """
        spec = request.config.getoption("ostinato_provider", default=None)
        if not spec:
            pytest.fail(
                "No provider under test: override the `provider_factory` fixture in your "
                f"subclass, or pass {PROVIDER_OPTION}=module:factory",
                pytrace=False,
            )
        return load_factory(spec)

    @pytest.fixture
    def new_provider(self, provider_factory: ProviderFactory) -> Iterator[ProviderFactory]:
        """``provider_factory`` wrapped: each provider is ``setup()`` and closed after the test."""
        made: list[StorageProvider] = []

        def make() -> StorageProvider:
            provider = provider_factory()
            if not isinstance(provider, StorageProvider):
                raise TypeError(f"provider_factory returned {provider!r}, not a StorageProvider")
            made.append(provider)
            provider.setup()
            return provider

        yield make
        for provider in reversed(made):
            provider.close()

    @pytest.fixture
    def provider(self, new_provider: ProviderFactory) -> StorageProvider:
        """The provider under test, on a fresh, empty task hub (set up; closed afterwards)."""
        return new_provider()

    @pytest.fixture
    def capabilities(self, provider: StorageProvider) -> ProviderCapabilities:
        """The capabilities the suite holds the provider to (default: ``provider.capabilities``)."""
        return provider.capabilities

    @pytest.fixture(autouse=True)
    def _ostinato_requirements(self, request: pytest.FixtureRequest) -> None:
        names = tuple(n for m in request.node.iter_markers(MARKER) for n in m.args)
        if names:
            reason = skip_reason(names, request.getfixturevalue("capabilities"))
            if reason is not None:
                pytest.skip(reason)

    def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:  # noqa: N802 - the name is the message
        """Standard tests may only be overridden to mark them ``xfail(reason=...)``."""
        problems = overridden_without_xfail(type(self))
        assert not problems, (
            "Standard conformance tests were overridden without "
            "@pytest.mark.xfail(reason=...): " + ", ".join(problems)
        )


def _is_standard(cls: type) -> bool:
    return cls.__module__.startswith("ostinato_conformance.")


def overridden_without_xfail(cls: type) -> list[str]:
    """Names of standard tests that ``cls`` (or a non-standard base) overrides without xfail."""
    problems: list[str] = []
    standard_names = {
        name
        for base in cls.__mro__
        if _is_standard(base)
        for name in vars(base)
        if name.startswith("test_")
    }
    for name in sorted(standard_names):
        owner = next(base for base in cls.__mro__ if name in vars(base))
        if _is_standard(owner):
            continue
        attribute = vars(owner)[name]
        marks = getattr(attribute, "pytestmark", []) if inspect.isfunction(attribute) else []
        if not any(m.name == "xfail" and m.kwargs.get("reason") for m in marks):
            problems.append(f"{owner.__name__}.{name}")
    return problems
