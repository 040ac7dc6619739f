"""Built-in providers are written as a user's would be: against the core's public names only.

An AST scan of every module of every provider package (``providers/*/src``) and of the custom
providers of docs/custom-provider.md (``examples/custom_provider``):

* each name a provider takes from ``ostinato`` (``from ostinato.x import name``, or
  ``module.name`` on an imported core module) must not start with ``_`` and must be in that
  core module's ``__all__``; a core module without ``__all__`` offers nothing. Importing a
  public submodule (``from ostinato import history``) is allowed;
* a provider class that subclasses core classes never touches their private members: no
  ``self._name`` access and no ``def _name`` override of a name the core classes define
  (methods, class attributes, or attributes their methods assign on ``self``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVIDER_SOURCES = sorted((REPO / "providers").glob("*/src"))
if str(REPO) not in sys.path:  # for ``examples.custom_provider``
    sys.path.insert(0, str(REPO))


def _is_core(module: str) -> bool:
    return module == "ostinato" or module.startswith("ostinato.")


def _is_public_module(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split("."))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _exported(module: str) -> set[str] | None:
    exported = getattr(importlib.import_module(module), "__all__", None)
    return None if exported is None else set(exported)


def violations(source: str, filename: str) -> Iterator[str]:
    """What ``source`` takes from the core beyond its public names, one line each."""
    tree = ast.parse(source, filename)
    #: Local names bound to a core module (``import ostinato.x as m``, ``from ostinato import x``).
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_core(alias.name):
                    continue
                if not _is_public_module(alias.name):
                    yield f"{filename}:{node.lineno}: imports private module {alias.name}"
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules.setdefault("ostinato", "ostinato")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not _is_core(node.module):
                continue
            where = f"{filename}:{node.lineno}"
            if not _is_public_module(node.module):
                yield f"{where}: imports from private module {node.module}"
                continue
            exported = _exported(node.module)
            for alias in node.names:
                name = alias.name
                if name.startswith("_"):
                    yield f"{where}: imports private name {node.module}.{name}"
                elif exported is not None and name in exported:
                    pass
                elif _is_module(f"{node.module}.{name}"):
                    modules[alias.asname or name] = f"{node.module}.{name}"
                elif exported is None:
                    yield f"{where}: {node.module} has no __all__, so {name} is not public"
                else:
                    yield f"{where}: {node.module}.{name} is not in {node.module}.__all__"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain = [node.attr]
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in modules:
            continue
        # ``m.a.b``: follow submodules, then check the first name that is not one.
        module = modules[value.id]
        for name in reversed(chain):
            if name.startswith("_"):
                yield f"{filename}:{node.lineno}: uses private name {module}.{name}"
                break
            if _is_module(f"{module}.{name}"):
                module = f"{module}.{name}"
                continue
            exported = _exported(module)
            if exported is None or name not in exported:
                yield f"{filename}:{node.lineno}: {module}.{name} is not in {module}.__all__"
            break


@cache
def _private_members(cls: type) -> frozenset[str]:
    """The private names a core class defines: in its namespace or assigned on ``self``."""
    names = {n for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            names.add(node.attr)
    return frozenset(names)


def core_private_uses(source: str, filename: str, module: object) -> Iterator[str]:
    """Uses, in the classes of ``module`` (its source is ``source``), of private members of
    the core classes they derive from."""
    tree = ast.parse(source, filename)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(module, node.name, None)
        if not isinstance(cls, type):
            continue
        private: dict[str, str] = {}
        for base in cls.__mro__[1:]:
            if _is_core(base.__module__):
                for name in _private_members(base):
                    private.setdefault(name, f"{base.__module__}.{base.__qualname__}")
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                member, what, line = inner.name, "overrides", inner.lineno
            elif (
                isinstance(inner, ast.Attribute)
                and isinstance(inner.value, ast.Name)
                and inner.value.id in ("self", "cls")
            ):
                member, what, line = inner.attr, "uses", inner.lineno
            else:
                continue
            if member in private:
                yield (
                    f"{filename}:{line}: {node.name} {what} {private[member]}.{member}, "
                    "a private member of the core"
                )


def _module_name(path: Path) -> str:
    root = next((parent for parent in path.parents if parent.name == "src"), REPO)
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _provider_files() -> list[Path]:
    roots = [*PROVIDER_SOURCES, REPO / "examples" / "custom_provider"]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def test_there_are_providers_to_scan() -> None:
    packages = {path.relative_to(REPO).parts[1] for path in _provider_files()}
    assert {"azure", "mssql", "postgres", "custom_provider"} <= packages


@pytest.mark.parametrize("path", _provider_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_providers_use_only_public_core_names(path: Path) -> None:
    source, filename = path.read_text(encoding="utf-8"), str(path.relative_to(REPO))
    found = list(violations(source, filename))
    name = _module_name(path)
    if name.split(".")[-1] != "__main__":
        found += core_private_uses(source, filename, importlib.import_module(name))
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ostinato.relational.provider import _micros", "private name"),
        ("from ostinato.relational import Cursor, _nothing", "private name"),
        ("from ostinato.relational.provider import Item", "not in ostinato.relational.provider"),
        ("from ostinato.relational.migrations import ConfigurationError", "not in"),
        ("from ostinato.sqlite.provider import _file_mutex", "private name"),
        ("from ostinato import relational\nrelational.provider.Item", "not in"),
        ("import ostinato\nostinato.relational._hidden", "private name"),
        ("from ostinato.errors import ProviderError\nimport ostinato.x._y", "private module"),
    ],
)
def test_the_scan_catches_private_and_unexported_names(source: str, expected: str) -> None:
    found = list(violations(source, "example.py"))
    assert found and expected in found[0], found


def test_the_scan_accepts_public_names() -> None:
    source = (
        "from ostinato import history\n"
        "from ostinato.relational import RelationalProvider, migrate\n"
        "from ostinato.relational.dialect import RowLock\n"
        "import ostinato.relational as r\n"
        "history.dumps\nr.Statements\n"
    )
    assert list(violations(source, "example.py")) == []


class _Engine:
    """What a provider written against private hooks looks like (scanned, never run)."""

    SOURCE = textwrap.dedent(
        """
        class Engine(RelationalProvider):
            def _write(self, durable=True, **kw): ...
            def setup(self):
                migrate(self.cursor, self.dialect, self._now_micros())
            def transaction(self, durable):
                return self._largest
        """
    )


def test_the_scan_catches_uses_of_the_cores_private_members() -> None:
    from ostinato.relational import RelationalProvider

    class Engine(RelationalProvider):  # the class the scanned source defines
        pass

    module = type("module", (), {"Engine": Engine})
    found = list(core_private_uses(_Engine.SOURCE, "engine.py", module))
    assert sorted(line.split(": ", 1)[1].split(",")[0] for line in found) == [
        "Engine overrides ostinato.relational.provider.RelationalProvider._write",
        "Engine uses ostinato.relational.provider.RelationalProvider._largest",
        "Engine uses ostinato.relational.provider.RelationalProvider._now_micros",
    ]
