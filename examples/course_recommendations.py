r"""Scenario 6, course recommendations: several parameters as one tuple or one dataclass.

An activity takes one input, so several values travel together as a tuple or a composite
object. The data converter writes both as JSON and rebuilds them from the annotations: the
activity's ``query: tuple[str, int]`` arrives as a real tuple, the orchestrator's
``student: Student`` as a ``Student``, and ``-> list[Course]`` comes back to the orchestrator
as ``Course`` objects (see docs/data-converter.md).

    ostinato worker examples.course_recommendations:app
    ostinato start recommend_courses --wait \
        --input '{"name": "Ada", "major": "ComputerScience", "year": 2}'
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import ostinato as ot

app = ot.App()


@dataclass(frozen=True)
class Student:
    name: str
    major: str
    year: int


@dataclass(frozen=True)
class Course:
    code: str
    title: str
    credits: int


CATALOG: dict[str, list[Course]] = {
    "ComputerScience": [
        Course("CS101", "Programming in Python", 5),
        Course("CS201", "Data Structures", 5),
        Course("CS230", "Distributed Systems", 6),
        Course("CS310", "Databases", 6),
        Course("CS420", "Durable Workflows", 3),
    ],
    "Mathematics": [
        Course("MA101", "Calculus", 6),
        Course("MA210", "Linear Algebra", 6),
        Course("MA330", "Probability", 5),
    ],
}


@app.activity
def course_recommendations(ctx: ot.ActivityContext, query: tuple[str, int]) -> list[Course]:
    """Courses of ``major`` at the level of study ``year`` (``query`` is ``(major, year)``)."""
    if not isinstance(query, tuple):  # the converter rebuilt the tuple from the annotation
        raise TypeError(f"expected a tuple, got {type(query).__name__}")
    major, year = query
    courses = CATALOG.get(major)
    if courses is None:
        raise ValueError(f"Unknown major {major!r}")
    return [c for c in courses if int(c.code[2]) in (year, year + 1)]


@app.orchestrator
def recommend_courses(
    ctx: ot.OrchestrationContext, student: Student
) -> Generator[Any, Any, dict[str, Any]]:
    if not isinstance(student, Student):
        raise TypeError(f"expected a Student, got {type(student).__name__}")
    courses: list[Course] = yield ctx.call_activity(
        course_recommendations, input=(student.major, student.year)
    )
    return {
        "student": student.name,
        "courses": [f"{c.code} {c.title}" for c in courses],
        "credits": sum(c.credits for c in courses),  # Course objects, not dicts
    }


def main(
    provider: ot.StorageProvider | None = None,
    *,
    student: Student | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Recommend courses for one student end to end; returns the orchestration's output."""
    provider = provider or ot.provider_from_config()
    student = student or Student("Ada", "ComputerScience", 2)
    client = ot.Client(provider)
    with ot.Worker(app, provider):
        instance_id = client.schedule_new_orchestration(recommend_courses, input=student)
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    output: dict[str, Any] = ot.raise_if_failed(state).output
    return output


if __name__ == "__main__":
    print(main())
