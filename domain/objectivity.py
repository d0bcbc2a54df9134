"""Objectivity of the interview panels: how far panellists agree, who scores apart, which score
needs the committee's review.

The panel scores of one interview component are a table of applicants (the units) by
panellists (the raters); a cell is empty where a panellist did not score that applicant.

**Agreement: Krippendorff's alpha, interval metric.** Panels are drawn from a pool for each
applicant, so the panellists differ from applicant to applicant, panels of 2 and of 3 may sit
side by side, and a score can be missing (a conflict declared, a refused score, a replacement
panellist). ICC(2,1) and ICC(3,1) need every panellist to score every applicant (a fully
crossed table); ICC(1) fits raters that differ per applicant but needs the same number of
raters per applicant, or an approximation of it. Krippendorff's alpha takes any number of
raters per unit and missing cells as they are, without imputing anything, and on complete
tables it comes close to ICC(1). With the interval metric (squared differences) it reads as
1 - observed disagreement / disagreement expected by chance:

    D_o = 1/n * sum over units u of  1/(m_u - 1) * sum over ordered pairs i != j in u of (v_i - v_j)^2
    D_e = 1/(n(n-1)) * sum over ordered pairs i != j of all pairable values of (v_i - v_j)^2
    alpha = 1 - D_o / D_e

where only units with at least 2 scores count (m_u scores in unit u, n = the sum of the m_u).
alpha = 1 is perfect agreement, 0 is agreement no better than chance, below 0 systematic
disagreement. It is undefined (None) when fewer than 2 units have 2 scores, or when every
pairable score is the same (D_e = 0: nothing to disagree about). One unit is not enough: its
D_e is computed from the very scores D_o is, and the two are then equal whatever the scores, so
alpha would be 0 for 80, 80 and 79 as for 90 and 10.

**Bias.** A panellist's deviation on one applicant is their score minus the mean of the other
panellists' scores for that applicant; their bias is the mean of those deviations over the
applicants they scored with at least one co-panellist. The z-score places a bias among the
panellists' biases: (bias - mean of the biases) / their sample standard deviation (n - 1);
None with fewer than 3 panellists with a bias, or when every bias is the same. With k biases
no |z| can exceed (k - 1) / sqrt(k) (0.71 for 2, 1.15 for 3, 1.5 for 4, 1.79 for 5): two
panellists are always +-0.71 however far apart they score, which says nothing, and a |z| of 2
needs at least 6 panellists. The z-score ranks panellists against each other; it is not a test
of significance, and a bias over few applicants rests on few scores.

**Outliers.** `outlier` flags, among one applicant's panel, the scores that differ from the
mean of the other panellists' scores by more than the margin (a score exactly the margin away
is not flagged), one at a time: the score that
lies farthest from the mean of the others is flagged when beyond the margin, set aside, and
the rest are looked at again. So with 83, 71 and 20 and a margin of 25, the 20 (57 from the
mean 77 of the others) is flagged, and then 83 and 71 (12 apart) agree; the 83, which is also
37.5 from the mean 45.5 that the 20 drags down, is not flagged for the 20's sake. Scores
equally far (a panel of 2 always is) are flagged together: nothing tells them apart. The scores
and the margin are read as the decimals they were written as (32.2 is 161/5, not the binary
32.20000000000000284...) and the distances computed exactly, so "more than the margin" and
"equally far" are decided on the figures people see: 7.2 and 32.2 are 25 apart, not 25.000000000000004, and
with a margin of 25 neither is flagged. `outlier_flags` also gives, for each flagged score, the
mean of the others it was judged against (those not set aside before it).

Sums are `math.fsum` over values in sorted order, so the same table gives the same figures to
the last bit, whatever order it arrived in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from pydantic import BaseModel

from domain.errors import RuleViolation

# applicant (the unit) -> panellist -> score; a panellist absent from an applicant did not score.
PanelTable = Mapping[str, Mapping[str, float]]

# Deviations closer than this are the same distance (floating-point noise, not a difference).
_TIE = 1e-9


class Agreement(BaseModel, frozen=True):
    """Krippendorff's alpha (interval) of one panel table, with what it was computed from."""

    alpha: float | None  # None when undefined (no pairable unit, or no variation at all)
    units: int  # applicants with at least 2 scores
    values: int  # the scores of those applicants (n)
    observed: float  # D_o
    expected: float  # D_e


class PanellistBias(BaseModel, frozen=True):
    """How one panellist scores against their co-panellists on the same applicants."""

    panellist: str
    applicants: int  # applicants scored together with at least one co-panellist
    bias: float | None  # mean of (own score - mean of the others'); None when never co-scored
    z: float | None  # the bias's z-score across panellists; None when it cannot be told


def _checked(table: PanelTable) -> dict[str, dict[str, float]]:
    """The table with its keys sorted; RuleViolation for a score that is not a finite number."""
    out: dict[str, dict[str, float]] = {}
    for applicant in sorted(table):
        row = table[applicant]
        for panellist in sorted(row):
            score = row[panellist]
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise RuleViolation(
                    f"score of {applicant} by {panellist}", score, "is not a number"
                )
            if not math.isfinite(score):
                raise RuleViolation(
                    f"score of {applicant} by {panellist}", score, "is not a finite number"
                )
        out[applicant] = {p: float(row[p]) for p in sorted(row)}
    return out


def _squared_pairs(values: list[float]) -> float:
    """The sum of (v_i - v_j)^2 over ordered pairs i != j: twice the sum over unordered pairs."""
    return 2 * math.fsum(
        (values[i] - values[j]) ** 2 for i in range(len(values)) for j in range(i + 1, len(values))
    )


def agreement(table: PanelTable) -> Agreement:
    """Krippendorff's alpha with the interval metric over a panel table (see the module)."""
    units = [sorted(row.values()) for row in _checked(table).values() if len(row) >= 2]
    pairable = sorted(v for unit in units for v in unit)
    n = len(pairable)
    if not units:
        return Agreement(alpha=None, units=0, values=0, observed=0.0, expected=0.0)
    observed = math.fsum(_squared_pairs(unit) / (len(unit) - 1) for unit in units) / n
    # The sum over ordered pairs of all values is 2n * the sum of squared deviations from the mean.
    mean = math.fsum(pairable) / n
    expected = 2 * math.fsum((v - mean) ** 2 for v in pairable) / (n - 1)
    # One unit: D_o = D_e by construction (see the module), an alpha of 0 that says nothing.
    alpha = None if expected <= _TIE or len(units) < 2 else 1 - observed / expected
    return Agreement(alpha=alpha, units=len(units), values=n, observed=observed, expected=expected)


def panellist_bias(table: PanelTable) -> list[PanellistBias]:
    """Every panellist's bias and its z-score across panellists, by panellist name."""
    deviations: dict[str, list[float]] = {}
    for row in _checked(table).values():
        for panellist, score in row.items():
            others = [s for p, s in row.items() if p != panellist]
            deviations.setdefault(panellist, [])
            if others:
                deviations[panellist].append(score - math.fsum(others) / len(others))
    biases = {p: (math.fsum(d) / len(d) if d else None) for p, d in sorted(deviations.items())}
    known = sorted(b for b in biases.values() if b is not None)
    spread = None
    if len(known) >= 3:  # with 2, the z-scores are +-1/sqrt(2) whatever the biases
        mean = math.fsum(known) / len(known)
        spread = math.sqrt(math.fsum((b - mean) ** 2 for b in known) / (len(known) - 1))
    return [
        PanellistBias(
            panellist=p,
            applicants=len(deviations[p]),
            bias=b,
            z=(b - mean) / spread if b is not None and spread and spread > _TIE else None,
        )
        for p, b in biases.items()
    ]


class OutlierFlag(BaseModel, frozen=True):
    """One score flagged beyond the margin, with the mean of the rest of the panel it was judged
    against (the scores not set aside before it)."""

    panellist: str
    score: float
    others_mean: float
    distance: float  # |score - others_mean|, more than the margin


def _margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
        raise RuleViolation("margin", margin, "must be a number of 0 or more")
    if not math.isfinite(margin):
        raise RuleViolation("margin", margin, "must be finite")
    return float(margin)


def _decimal(value: float) -> Fraction:
    """A score or margin as the decimal it was written as (its shortest form): 32.2 is 161/5."""
    return Fraction(repr(float(value)))


def outlier_flags(scores: Mapping[str, float], margin: float) -> list[OutlierFlag]:
    """The scores of one applicant's panel that differ from the mean of the other panellists'
    scores by more than `margin`, flagged farthest first and set aside one at a time, computed
    exactly on the decimals (see the module); sorted by panellist."""
    limit = _decimal(_margin(margin))
    rest = {p: _decimal(s) for p, s in _checked({"panel": scores})["panel"].items()}
    flagged: list[OutlierFlag] = []
    while len(rest) >= 2:
        total = sum(rest.values(), Fraction(0))
        others = {p: (total - s) / (len(rest) - 1) for p, s in rest.items()}
        distance = {p: abs(s - others[p]) for p, s in rest.items()}
        farthest = max(distance.values())
        if farthest <= limit:
            break
        out = [p for p, d in distance.items() if d == farthest]
        flagged.extend(
            OutlierFlag(
                panellist=p,
                score=float(rest[p]),
                others_mean=float(others[p]),
                distance=float(farthest),
            )
            for p in out
        )
        rest = {p: s for p, s in rest.items() if p not in out}
    return sorted(flagged, key=lambda f: f.panellist)


def outlier(scores: Mapping[str, float], margin: float, *, exact: bool = True) -> list[str]:
    """The panellists of one applicant's panel whose score differs from the mean of the other
    panellists' scores by more than `margin` (`outlier_flags`); sorted by panellist. A panel of
    one has nothing to differ from.

    `exact=False` is the rule in binary floating point that journeys recorded before the patch
    panel-margin-decimal flagged by (workflows/versions.py): a score a decimal margin away could
    come out 25.000000000000004 away and be flagged."""
    if exact:
        return [f.panellist for f in outlier_flags(scores, margin)]
    margin = _margin(margin)
    rest = _checked({"panel": scores})["panel"]
    flagged: list[str] = []
    while len(rest) >= 2:
        distance = {
            p: abs(s - math.fsum(o for q, o in rest.items() if q != p) / (len(rest) - 1))
            for p, s in rest.items()
        }
        farthest = max(distance.values())
        if farthest <= margin:
            break
        out = [p for p, d in distance.items() if d >= farthest - _TIE]
        flagged.extend(out)
        rest = {p: s for p, s in rest.items() if p not in out}
    return sorted(flagged)
