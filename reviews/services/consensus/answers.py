"""A reader's (or adjudicator's) answers to the study-level questions of a project's label schema."""

from __future__ import annotations

from typing import Any

from reviews.errors import Invalid
from reviews.models import ReadingProject


def answers_check(*, project: ReadingProject, answers: Any, complete: bool) -> dict[str, str]:
    """The answers as the project's label schema allows them: {question code: one of its
    choices}. With `complete`, every question needs its answer. Invalid (field "answers")
    names the first question at fault."""
    if not isinstance(answers, dict):
        raise Invalid('answers is an object {"<question code>": "<choice>"}', field="answers")
    questions = {q["code"]: q for q in project.questions}
    for code, choice in answers.items():
        question = questions.get(code)
        if question is None:
            known = ", ".join(questions) or "none"
            raise Invalid(f"unknown question {str(code)[:32]!r}; this project's: {known}", field="answers")
        if choice not in question["choices"]:
            raise Invalid(
                f"{code}: {str(choice)[:64]!r} is not a choice; "
                f"choose one of {', '.join(question['choices'])}",
                field="answers",
            )
    if complete:
        missing = [f"{questions[code]['text']} ({code})" for code in questions if code not in answers]
        if missing:
            raise Invalid(f"answer every question; still open: {'; '.join(missing)}", field="answers")
    return {str(code): str(choice) for code, choice in answers.items()}


def answers_agree(first: dict[str, str], second: dict[str, str], *, project: ReadingProject) -> int:
    """How many of the project's questions the two sets of answers answer alike."""
    return sum(
        1 for q in project.questions if q["code"] in first and first[q["code"]] == second.get(q["code"])
    )
