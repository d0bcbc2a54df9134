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
    """A score as announced: the exact value rounded to three decimals, half up (as the IKM is
    rounded, domain/skm.py), so 88.0045 shows as 88.005. Never through a float: 88.0045 is the
    binary 88.00449999... and a float's 0.0625 is a tie it rounds to even, 0.062."""
    thousandths = (abs(value) * 1000 + Fraction(1, 2)).__floor__()
    sign = "-" if value < 0 and thousandths else ""
    return f"{sign}{thousandths // 1000}.{thousandths % 1000:03d}"
