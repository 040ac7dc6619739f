"""The core's floors point one way, with no import cycles (docs/architecture.md).

model (errors, status, ids, converter, jsontext, retry, clock, frozen, history, provider
contract)
  -> orchestration/ (pure replay: no provider calls, no threads)
  -> runtime/ (processor, activity execution, worker)
  -> client, config, CLI, HTTP.

The providers inside the core (memory, the relational toolkit, SQLite) sit on the model floor
only, as a user's provider would. Every import counts, including those inside functions and
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core" / "src" / "ostinato"

MODEL = 0
PROVIDERS = 1
ORCHESTRATION = 2
RUNTIME = 3
TOP = 4

FLOOR_NAMES = {
    MODEL: "model",
    PROVIDERS: "providers in the core",
    ORCHESTRATION: "orchestration",
    RUNTIME: "runtime",
    TOP: "client/config/CLI/HTTP",
}

MODEL_MODULES = {
    "ostinato.errors",
    "ostinato.status",
    "ostinato.ids",
    "ostinato.converter",
    "ostinato.jsontext",
    "ostinato.retry",
    "ostinato.clock",
    "ostinato.frozen",
    "ostinato.history",
    "ostinato.provider",
    "ostinato.versioning",
}

#: What each floor may import besides its own floor and the model.
ALLOWED: Mapping[int, frozenset[int]] = {
    MODEL: frozenset({MODEL}),
    PROVIDERS: frozenset({MODEL, PROVIDERS}),
    ORCHESTRATION: frozenset({MODEL, ORCHESTRATION}),
    RUNTIME: frozenset({MODEL, ORCHESTRATION, RUNTIME}),
    TOP: frozenset({MODEL, PROVIDERS, ORCHESTRATION, RUNTIME, TOP}),
}


def floor_of(module: str) -> int:
    """The floor a core module belongs to."""
    if module in MODEL_MODULES:
        return MODEL
    parts = module.split(".")
    if module == "ostinato.memory" or parts[1:2] in (["relational"], ["sqlite"]):
        return PROVIDERS
    if parts[1:2] == ["orchestration"]:
        return ORCHESTRATION
    if parts[1:2] == ["runtime"]:
        return RUNTIME
    return TOP


def module_name(path: Path) -> str:
    relative = path.relative_to(CORE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: Iterable[str]) -> set[str]:
    """The core modules ``path`` imports (``from ostinato.x import y`` counts ``ostinato.x.y``
    when that is a module, else ``ostinato.x``)."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ostinato")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "ostinato":
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in CORE.rglob("*.py")}
    graph = {name: imports_of(path, paths) for name, path in paths.items()}
    # ``ostinato`` (the package's __init__) re-exports the public API: importing it from
    # inside the core would import every floor, so only the top floor may.
    return {name: {t for t in targets if t in paths} for name, targets in graph.items()}


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Imports that point up a floor, or into the package root from below the top."""
    found = []
    for module, targets in sorted(graph.items()):
        floor = floor_of(module)
        for target in sorted(targets):
            if target == "ostinato" and floor != TOP:
                found.append(f"{module} imports the package root 'ostinato'")
            elif target != "ostinato" and floor_of(target) not in ALLOWED[floor]:
                found.append(
                    f"{module} ({FLOOR_NAMES[floor]}) imports {target} "
                    f"({FLOOR_NAMES[floor_of(target)]})"
                )
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_floors_point_down() -> None:
    assert violations(import_graph()) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    # The package root re-exports everything, and submodules of a package import the
    # package when they are imported: edges into a package's own __init__ are not cycles.
    graph = {
        m: {t for t in ts if not m.startswith(t + ".") and t != "ostinato"}
        for m, ts in graph.items()
    }
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("ostinato.orchestration.engine", "ostinato.runtime.processor"),
        ("ostinato.history", "ostinato.orchestration.task"),
        ("ostinato.sqlite.provider", "ostinato.client"),
        ("ostinato.runtime.worker", "ostinato.cli.base"),
        ("ostinato.orchestration.context", "ostinato.sqlite"),
        ("ostinato.runtime.processor", "ostinato.memory"),
    ],
)
def test_a_forbidden_import_is_reported(module: str, target: str) -> None:
    graph = import_graph()
    graph[module] = graph[module] | {target}
    assert any(v.startswith(f"{module} ") and target in v for v in violations(graph))


def test_a_cycle_is_reported() -> None:
    graph = import_graph()
    graph["ostinato.orchestration.task"] = graph["ostinato.orchestration.task"] | {
        "ostinato.orchestration.engine"
    }
    assert any("ostinato.orchestration.task" in c for c in cycles(graph))
