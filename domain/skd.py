"""SKD on CAT: score validation and the pass threshold of each needs category."""

from __future__ import annotations

from pydantic import BaseModel

from domain.config import Category, SkdRules
from domain.errors import RuleViolation

SkdKey = tuple[int, int, int, int]


class SkdScores(BaseModel, frozen=True):
    """The recorded scores of one SKD sitting (the single source of truth for the result)."""

    twk: int
    tiu: int
    tkp: int

    @property
    def total(self) -> int:
        """TWK + TIU + TKP."""
        return self.twk + self.tiu + self.tkp


def validate_skd_scores(scores: SkdScores, rules: SkdRules) -> None:
    """Raise RuleViolation for a score out of range or a TWK/TIU not a multiple of the step."""
    limits = {"twk": rules.twk_max, "tiu": rules.tiu_max, "tkp": rules.tkp_max}
    for part, top in limits.items():
        value = getattr(scores, part)
        if value < 0 or value > top:
            raise RuleViolation(part, value, f"outside 0..{top}")
        if part in ("twk", "tiu") and value % rules.step:
            raise RuleViolation(part, value, f"not a multiple of {rules.step}")


def passes_threshold(scores: SkdScores, category: Category, rules: SkdRules) -> bool:
    """True when the scores meet every minimum of the category."""
    t = rules.thresholds[category]
    checks = [
        (t.twk, scores.twk),
        (t.tiu, scores.tiu),
        (t.tkp, scores.tkp),
        (t.total, scores.total),
    ]
    return all(minimum is None or value >= minimum for minimum, value in checks)


def skd_rank_key(scores: SkdScores) -> SkdKey:
    """Higher ranks first: total, then TKP, then TIU, then TWK."""
    return (scores.total, scores.tkp, scores.tiu, scores.twk)
