"""Errors the rules raise: each names the field, the value and what is wrong."""

from __future__ import annotations


class RuleViolation(ValueError):
    """Input that the selection rules refuse, with the field and value that caused it."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}={value!r}: {problem}")
