"""A faster ``__init__`` for the frozen dataclasses built on every step.

A frozen dataclass refuses ``setattr``, so the ``__init__`` that :func:`dataclasses.dataclass`
generates for it sets each field through ``object.__setattr__``: one more call per field, on
classes the worker builds dozens of times per orchestration (history events, instance
records, messages, activity tasks). :func:`fast_init` replaces that ``__init__`` with one of
the same signature that writes the fields straight into the instance's ``__dict__``, which
is what ``object.__setattr__`` ends up doing for a class without slots. Everything else stays
the dataclass's own: frozen attributes, equality, hashing, ``repr``,
:func:`dataclasses.replace` and pickling.

``tests/core/test_frozen.py`` checks that every class given a fast ``__init__`` keeps the signature
and the values of the one it replaced.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


class _Factory:
    """The default of a parameter whose field has a ``default_factory``: call the factory."""

    def __repr__(self) -> str:
        return "<factory>"  # as in the signature of a dataclass's own __init__


_FACTORY: Any = _Factory()


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` (no slots, no ``InitVar``, every field in
    ``__init__``) an ``__init__`` that fills its ``__dict__`` directly; returns ``cls``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" in cls.__dict__:
        raise TypeError(f"fast_init needs a frozen dataclass without slots: {cls.__qualname__}")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body = ["    values = self.__dict__"]
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init:
            raise TypeError(f"fast_init: {cls.__qualname__}.{field.name} is not in __init__")
        name, value = field.name, field.name
        if field.default is not dataclasses.MISSING:
            namespace[f"default_{name}"] = field.default
            parameter = f"{name}=default_{name}"
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"factory_{name}"] = field.default_factory
            parameter = f"{name}=_FACTORY"
            value = f"factory_{name}() if {name} is _FACTORY else {name}"
        else:
            parameter = name
        (keyword if field.kw_only else positional).append(parameter)
        body.append(f"    values[{name!r}] = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({signature}):\n" + "\n".join(body), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.dataclass_init = cls.__init__  # what it replaced, for the test comparing the two
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
