"""Errors that users of hpt see: bad experiment files and invalid hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING = object()
PATH_SEPARATOR = "."
"""Joins the names of a nested hyperparameter (`optimizer.lr`) and the parts of a field's path."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an experiment file: where, what was given, what is allowed."""

    path: str
    message: str
    value: Any = _MISSING

    def __str__(self) -> str:
        where = self.path or "<file>"
        if self.value is _MISSING:
            return f"{where}: {self.message}"
        return f"{where}: {self.message} (got {_short_repr(self.value)})"


class ConfigError(ValueError):
    """An experiment file (or a part of one) is invalid; lists every problem found."""

    def __init__(self, problems: list[Problem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__(self._render())

    @property
    def paths(self) -> list[str]:
        return [problem.path for problem in self.problems]

    def _render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in {self.source or 'the experiment config'}:"
        return "\n".join([head, *(f"  - {problem}" for problem in self.problems)])


class InvalidHP(Exception):
    """Raised by trial code when its hyperparameters cannot be trained (the trial ends as invalid)."""


class SearcherError(RuntimeError):
    """A search method was fed an event it cannot accept (e.g. a missing searcher metric), broke the protocol, or
    no longer reproduces an experiment's record on resume (`replay.ReplayMismatch`)."""


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
