"""SKB: weighted components, knock-out gates and the interview panel."""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, Field

from domain.codes import AdminDecision
from domain.config import ComponentKind, SkbComponent, SkbRules
from domain.errors import RuleViolation


class PanelScore(BaseModel, frozen=True):
    """One panellist's interview score, kept for audit."""

    panellist: str = Field(min_length=1, max_length=100)
    score: float


class SkbOutcome(BaseModel, frozen=True):
    """The SKB score (0-100) and every gate the applicant failed."""

    score: Fraction
    gate_failures: list[str]

    @property
    def passed_gates(self) -> bool:
        """True when no gate eliminated the applicant."""
        return not self.gate_failures


def validate_component_score(component: SkbComponent, score: float) -> None:
    """Raise RuleViolation when a score is outside the component's range."""
    if not 0 <= score <= component.max_score:
        raise RuleViolation(component.name, score, f"outside 0..{component.max_score:g}")


def aggregate_panel(scores: list[PanelScore], component: SkbComponent) -> Fraction:
    """The interview score: the mean of at least `min_panellists` distinct panellists."""
    panellists = [s.panellist for s in scores]
    if len(set(panellists)) != len(panellists):
        raise RuleViolation(
            "panellist", sorted(panellists), "a panellist may score an applicant once"
        )
    if len(scores) < component.min_panellists:
        raise RuleViolation(
            component.name, len(scores), f"needs at least {component.min_panellists} panellists"
        )
    for s in scores:
        validate_component_score(component, s.score)
    return sum((Fraction(str(s.score)) for s in scores), Fraction(0)) / len(scores)


def skb_outcome(
    scores: dict[str, Fraction | float],
    gates: dict[str, AdminDecision],
    rules: SkbRules,
) -> SkbOutcome:
    """Compose the SKB score from each component's score (on its own scale) and apply the gates.

    `scores` holds every scored component (panel components already aggregated); `gates`
    holds every gate component's MS/TMS. A missing component is an error: the caller decides
    absence (TH) before composing.
    """
    total = Fraction(0)
    failures: list[str] = []
    for c in rules.components:
        if c.kind == ComponentKind.GATE:
            if c.name not in gates:
                raise RuleViolation(c.name, None, "no MS/TMS result reported")
            if gates[c.name] == AdminDecision.TMS:
                failures.append(f"{c.name}: TMS")
            continue
        if c.name not in scores:
            raise RuleViolation(c.name, None, "no score reported")
        raw = (
            Fraction(str(scores[c.name]))
            if isinstance(scores[c.name], float)
            else Fraction(scores[c.name])
        )
        if c.floor is not None and raw <= Fraction(str(c.floor)):
            failures.append(f"{c.name}: {float(raw):g} at or below the floor {c.floor:g}")
        normalised = raw / Fraction(str(c.max_score)) * 100
        total += normalised * Fraction(str(c.weight)) / 100
    return SkbOutcome(score=total, gate_failures=failures)
