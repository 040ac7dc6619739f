"""The app: a registry of orchestrators, activities and (later) entities, by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ostinato.converter import input_type_of, return_type_of
from ostinato.orchestration.call_http import HTTP_ACTIVITY, make_http_activity

F = TypeVar("F", bound=Callable[..., Any])

NAME_ATTRIBUTE = "__ostinato_name__"


@dataclass(frozen=True)
class Registration:
    """A registered function with what the runtime needs to know about it."""

    name: str
    fn: Callable[..., Any]
    input_type: Any
    output_type: Any
    is_async: bool


def name_of(fn_or_name: Callable[..., Any] | str) -> str:
    """The registered name of a function (or the name itself, if given a str)."""
    if isinstance(fn_or_name, str):
        return fn_or_name
    name = getattr(fn_or_name, NAME_ATTRIBUTE, None)
    if name is None:
        name = getattr(fn_or_name, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"Expected a function or a name, not {fn_or_name!r}")
    return name


class App:
    """Holds the orchestrators and activities a worker can run.

    Register with the decorators ``@app.orchestrator`` and ``@app.activity`` (optionally
    ``@app.activity(name="...")``); the decorated function is returned unchanged.
    """

    def __init__(self) -> None:
        self.orchestrators: dict[str, Registration] = {}
        self.activities: dict[str, Registration] = {}
        self.entities: dict[str, Registration] = {}
        self.token_providers: dict[str, Callable[[], str]] = {}
        self._register(
            self.activities, "activity", make_http_activity(self.token_providers), HTTP_ACTIVITY
        )

    def _register(
        self, table: dict[str, Registration], kind: str, fn: Callable[..., Any], name: str | None
    ) -> None:
        name = name or getattr(fn, "__name__", None)
        if not name:
            raise ValueError(f"Cannot tell the name of {fn!r}; pass name=...")
        existing = table.get(name)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"An {kind} named {name!r} is already registered")
        table[name] = Registration(
            name=name,
            fn=fn,
            input_type=input_type_of(fn),
            output_type=return_type_of(fn),
            is_async=inspect.iscoroutinefunction(fn),
        )
        try:
            setattr(fn, NAME_ATTRIBUTE, name)
        except (AttributeError, TypeError):
            pass

    @overload
    def orchestrator(self, fn: F, /) -> F: ...
    @overload
    def orchestrator(self, *, name: str | None = None) -> Callable[[F], F]: ...

    def orchestrator(  # type: ignore[misc]
        self, fn: F | None = None, /, *, name: str | None = None
    ) -> Any:
        """Register an orchestrator: ``(ctx, input) -> generator`` (or a plain value)."""

        def register(f: F) -> F:
            self._register(self.orchestrators, "orchestrator", f, name)
            return f

        return register(fn) if fn is not None else register

    @overload
    def activity(self, fn: F, /) -> F: ...
    @overload
    def activity(self, *, name: str | None = None) -> Callable[[F], F]: ...

    def activity(  # type: ignore[misc]
        self, fn: F | None = None, /, *, name: str | None = None
    ) -> Any:
        """Register an activity: ``(ctx, input) -> value``, sync or ``async def``."""

        def register(f: F) -> F:
            self._register(self.activities, "activity", f, name)
            return f

        return register(fn) if fn is not None else register

    @overload
    def entity(self, fn: F, /) -> F: ...
    @overload
    def entity(self, *, name: str | None = None) -> Callable[[F], F]: ...

    def entity(  # type: ignore[misc]
        self, fn: F | None = None, /, *, name: str | None = None
    ) -> Any:
        """Register an entity function: ``(ctx: EntityContext, input) -> result``.

        Entity names are case-insensitive (stored lower-case).
        """

        def register(f: F) -> F:
            entity_name = str(name or getattr(f, "__name__", "")).lower()
            self._register(self.entities, "entity", f, entity_name)
            return f

        return register(fn) if fn is not None else register

    def token_provider(self, name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
        """Register a function returning a bearer token, for ``ctx.call_http(token_source=name)``.

        It runs in the worker (inside the built-in HTTP activity), never in orchestrator code.
        """

        def register(fn: Callable[[], str]) -> Callable[[], str]:
            self.token_providers[name] = fn
            return fn

        return register

    def add_orchestrator(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register an orchestrator without the decorator."""
        self._register(self.orchestrators, "orchestrator", fn, name)

    def add_activity(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        """Register an activity without the decorator."""
        self._register(self.activities, "activity", fn, name)

    def output_type_of_activity(
        self, fn_or_name: Callable[..., Any] | str, name: str | None = None
    ) -> Any:
        """The declared return type of an activity (for decoding its result), if known
        (``name``: its :func:`name_of`, when the caller has it already)."""
        reg = self.activities.get(name or name_of(fn_or_name))
        if reg is not None:
            return reg.output_type
        return None if isinstance(fn_or_name, str) else return_type_of(fn_or_name)

    def output_type_of_orchestrator(
        self, fn_or_name: Callable[..., Any] | str, name: str | None = None
    ) -> Any:
        """The declared return type of an orchestrator, like :meth:`output_type_of_activity`."""
        reg = self.orchestrators.get(name or name_of(fn_or_name))
        if reg is not None:
            return reg.output_type
        return None if isinstance(fn_or_name, str) else return_type_of(fn_or_name)


__all__ = [
    "NAME_ATTRIBUTE",
    "App",
    "Registration",
    "name_of",
]
