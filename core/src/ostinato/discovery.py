"""Provider discovery: storage providers are found by entry point, by name.

A distribution registers a provider factory (usually the provider class) under the entry point
group ``ostinato.providers``::

    [project.entry-points."ostinato.providers"]
    mystore = "mystore_ostinato:MyStoreProvider"

and ``provider = "mystore"`` in the configuration then selects it, with no code change. The
factory is called with the provider's settings as keyword arguments (see :mod:`ostinato.config`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from ostinato.errors import ConfigurationError
from ostinato.provider import StorageProvider

#: The entry point group providers register under.
ENTRY_POINT_GROUP = "ostinato.providers"

ProviderFactory = Callable[..., StorageProvider]

#: The distributions that register this project's providers outside the core.
PROVIDER_PACKAGES = {
    "azure": "ostinato-azure",
    "mssql": "ostinato-mssql",
    "postgres": "ostinato-postgres",
}


def provider_entry_points() -> dict[str, EntryPoint]:
    """The installed providers' entry points, by provider name (first one wins on a clash)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def installed_providers() -> list[str]:
    """The names of the installed providers, sorted."""
    return list(provider_entry_points())


def load_provider_factory(name: str) -> ProviderFactory:
    """The factory registered as provider ``name``.

    Raises :class:`~ostinato.errors.ConfigurationError` if no such provider is installed
    (the message lists the installed ones) or if its module cannot be imported.
    """
    eps = provider_entry_points()
    ep = eps.get(name)
    if ep is None:
        installed = ", ".join(eps) or "none"
        package = PROVIDER_PACKAGES.get(name)
        if package is not None:
            raise ConfigurationError(
                f"Provider {name!r} is not installed: pip install {package}"
                f" (installed providers: {installed})"
            )
        raise ConfigurationError(
            f"Unknown provider {name!r}; installed providers: {installed}"
            " (a provider package registers itself under the entry point group"
            f" '{ENTRY_POINT_GROUP}')"
        )
    try:
        factory = ep.load()
    except Exception as exc:
        raise ConfigurationError(
            f"Provider {name!r} ({ep.value}) could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(factory):
        raise ConfigurationError(f"Provider {name!r} ({ep.value}) is not callable")
    return factory  # type: ignore[no-any-return]


__all__ = [
    "ENTRY_POINT_GROUP",
    "PROVIDER_PACKAGES",
    "ProviderFactory",
    "installed_providers",
    "load_provider_factory",
    "provider_entry_points",
]
