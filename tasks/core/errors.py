"""Errors that reach a researcher: each names the field or file and what is wrong."""

from __future__ import annotations

from pydantic import BaseModel


class Problem(BaseModel):
    """One thing wrong with a design or its resources."""

    field: str
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        return f"{self.field}: {self.message}{where}"


class SweepflowError(Exception):
    """Base class; its str() is the message shown to the user, never a traceback."""


class DesignError(SweepflowError):
    """The design (or the resources it names) cannot be planned. Lists every problem found."""

    def __init__(self, problems: list[Problem], heading: str = "The experiment design has problems"):
        self.problems = problems
        self.heading = heading
        super().__init__(self.render())

    def render(self) -> str:
        """The heading with the problem count, then one indented line per problem."""
        lines = [f"{self.heading} ({len(self.problems)}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
