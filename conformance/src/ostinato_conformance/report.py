"""The conformance report: ``pytest ... --ostinato-report=PATH`` writes a certification sheet.

``PATH.md`` (Markdown) and ``PATH.json`` list, per provider under test (each suite class
run), the capability flags it claims, and each guarantee (a standard test, by its docstring)
with its outcome: passed, skipped (with the reason) or failed. A run with ``-k`` or ``-x``
reports what ran; the sheet says how many standard tests were left out.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ostinato.provider import ProviderCapabilities, StorageProvider

#: Which suite class each standard test comes from, named for the sheet.
SECTIONS = {
    "ProviderContractTests": "Contract",
    "ProviderStateMachineTests": "State machine",
    "OrchestrationProgramTests": "Generated programs",
    "ScenarioTests": "Scenarios (DESIGN §5)",
    "ProviderProcessTests": "Several processes",
    "ConformanceTestBase": "Suite",
}


@dataclass
class Outcome:
    """One standard test's result on one provider."""

    test: str
    section: str
    guarantee: str
    outcome: str = "passed"
    reason: str = ""
    seconds: float = 0.0


@dataclass
class ProviderSheet:
    """The results of one suite class (one provider under test)."""

    suite: str
    provider: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)
    #: The active profile's budgets as this suite class runs them (its quick-profile scale).
    budgets: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    collected: int = 0

    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "skipped": 0, "failed": 0}
        for outcome in self.outcomes.values():
            counts[outcome.outcome] += 1
        return counts


def _guarantee(function: Callable[..., Any] | None, name: str) -> str:
    doc = (getattr(function, "__doc__", None) or "").strip()
    if doc:
        return " ".join(doc.split("\n\n")[0].split())
    return name.removeprefix("test_").replace("_", " ").capitalize()


def _section(cls: type, name: str) -> str:
    owner = next((base for base in cls.__mro__ if name in vars(base)), cls)
    return SECTIONS.get(owner.__name__, owner.__name__)


class ConformanceReport:
    """The pytest plugin object that collects outcomes and writes the sheet at the end."""

    def __init__(self, path: str) -> None:
        base = Path(path)
        if base.suffix in (".md", ".json"):
            base = base.with_suffix("")
        self.markdown_path = base.with_suffix(".md")
        self.json_path = base.with_suffix(".json")
        self.sheets: dict[str, ProviderSheet] = {}

    def _sheet(self, item: pytest.Item) -> ProviderSheet | None:
        from ostinato_conformance.base import ConformanceTestBase

        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, ConformanceTestBase):
            return None
        suite = f"{cls.__module__}.{cls.__qualname__}"
        if suite not in self.sheets:
            budgets = dataclasses.asdict(cls.profile())
            budgets["quick_profile_scale"] = cls.quick_profile_scale
            self.sheets[suite] = ProviderSheet(suite, budgets=budgets)
        return self.sheets[suite]

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            sheet = self._sheet(item)
            if sheet is not None:
                sheet.collected += 1

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        sheet = self._sheet(item)
        if sheet is None:
            return
        funcargs = getattr(item, "funcargs", {})
        if not sheet.capabilities:
            capabilities = funcargs.get("capabilities")
            provider = funcargs.get("provider")
            if isinstance(provider, StorageProvider):
                sheet.provider = f"{type(provider).__module__}.{type(provider).__qualname__}"
                capabilities = capabilities or provider.capabilities
            if isinstance(capabilities, ProviderCapabilities):
                sheet.capabilities = dataclasses.asdict(capabilities)
        assert isinstance(item, pytest.Function)
        cls = item.cls
        assert cls is not None
        name = item.originalname
        entry = sheet.outcomes.get(item.name)
        if entry is None:
            entry = sheet.outcomes[item.name] = Outcome(
                test=item.name,
                section=_section(cls, name),
                guarantee=_guarantee(getattr(cls, name, None), name),
            )
        entry.seconds += report.duration
        if report.skipped:
            entry.outcome = "skipped"
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            entry.reason = reason.removeprefix("Skipped: ")
        elif report.failed:
            entry.outcome = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            message = getattr(crash, "message", None) or report.longreprtext.strip()
            entry.reason = (message.splitlines() or ["failed"])[0][:300]

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.write(session.config)

    def data(self, config: pytest.Config) -> dict[str, Any]:
        from ostinato_conformance.profiles import current_profile
        from ostinato_conformance.support import PROMPTLY

        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": current_profile().name,
            "python": platform.python_version(),
            "promptly_seconds": PROMPTLY,
            "selection": config.getoption("keyword", default="") or "",
            "providers": [
                {
                    "suite": sheet.suite,
                    "provider": sheet.provider,
                    "capabilities": sheet.capabilities,
                    "budgets": sheet.budgets,
                    "counts": sheet.counts(),
                    "collected": sheet.collected,
                    "guarantees": [dataclasses.asdict(o) for o in sheet.outcomes.values()],
                }
                for sheet in self.sheets.values()
            ],
        }

    def write(self, config: pytest.Config) -> None:
        data = self.data(config)
        self.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
        self.markdown_path.write_text(render_markdown(data), "utf-8")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    """The sheet as Markdown, from the JSON form."""
    lines = ["# ostinato conformance report", ""]
    lines.append(
        f"Profile `{data['profile']}`, Python {data['python']}, "
        f"`OSTINATO_CONFORMANCE_PROMPTLY={data['promptly_seconds']:g}`"
        + (f", selection `-k {data['selection']}`" if data["selection"] else "")
        + "."
    )
    for provider in data["providers"]:
        counts = provider["counts"]
        lines += ["", f"## {provider['provider'] or provider['suite']}", ""]
        lines.append(f"Suite class `{provider['suite']}`.")
        lines.append("")
        ran = sum(counts.values())
        lines.append(
            f"**{counts['passed']} passed, {counts['skipped']} skipped, "
            f"{counts['failed']} failed** ({ran} of {provider['collected']} standard tests ran)."
        )
        budgets = provider.get("budgets") or {}
        if budgets:
            lines += [
                "",
                f"Budgets: state machines {budgets['machine_examples']}x"
                f"{budgets['machine_steps']} steps, programs {budgets['program_examples']}, "
                f"fault runs {budgets['fault_examples']}, properties "
                f"{budgets['property_examples']} examples, {budgets['concurrency']} threads"
                + (
                    f" (the quick profile scaled by {budgets['quick_profile_scale']:g})"
                    if budgets["quick_profile_scale"] != 1 and data["profile"] == "quick"
                    else ""
                )
                + ".",
            ]
        lines += ["", "Capabilities claimed:", ""]
        for key, value in provider["capabilities"].items():
            lines.append(f"- `{key}`: `{value}`")
        by_section: dict[str, list[dict[str, Any]]] = {}
        for outcome in provider["guarantees"]:
            by_section.setdefault(outcome["section"], []).append(outcome)
        for section, outcomes in by_section.items():
            lines += ["", f"### {section}", "", "| guarantee | test | result |", "|---|---|---|"]
            for o in outcomes:
                result = o["outcome"]
                if o["reason"]:
                    result += f": {o['reason']}"
                lines.append(f"| {_cell(o['guarantee'])} | `{o['test']}` | {_cell(result)} |")
    return "\n".join(lines) + "\n"
