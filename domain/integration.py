"""Final integration of SKD and SKB into one score."""

from __future__ import annotations

from fractions import Fraction

from domain.config import IntegrationRules, SkdRules


def final_score(
    skd_total: int, skb_score: Fraction, integration: IntegrationRules, skd: SkdRules
) -> Fraction:
    """skd_weight% x (SKD total / SKD max x 100) + skb_weight% x SKB score, exactly."""
    skd_part = Fraction(skd_total, skd.total_max) * 100
    return (
        skd_part * Fraction(str(integration.skd_weight))
        + skb_score * Fraction(str(integration.skb_weight))
    ) / 100


def display_score(value: Fraction) -> str:
    """A score as announced: three decimals."""
    return f"{float(value):.3f}"
