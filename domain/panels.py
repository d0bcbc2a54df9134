"""Interview panels without conflicts (issue 16): who sits on an applicant's panel, and the code
a panellist sees instead of the applicant.

A panel component may name a pool of panellists and how many of them each applicant gets
(`SkbComponent.panellists`, `assign`). When the applicant reaches SKB the journey draws a seed
from the workflow's deterministic random and records it; the pool's order for this applicant is
the pool shuffled by that seed, and the panel is the first `assign` of that order who have no
declared conflict and were not replaced after a review. A conflict or a replacement takes the
next in the same order, so anyone holding the pool and the recorded seed draws the same panel.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Collection, Sequence
from enum import StrEnum


class ConflictKind(StrEnum):
    """Why a panellist may not score an applicant (the Ombudsman's cases)."""

    FAMILY = "family"  # kinship or marriage
    SAME_UNIT = "same_unit"  # works in the unit the formasi is for, or with the applicant
    PRIOR_CONTACT = "prior_contact"  # taught, coached or dealt with the applicant before
    OTHER = "other"


def panel_order(pool: Sequence[str], seed: int) -> list[str]:
    """The pool in the order this applicant's seed gives (sorted first, so the configured order
    of the pool does not matter)."""
    order = sorted(pool)
    random.Random(seed).shuffle(order)
    return order


def assigned_panel(
    pool: Sequence[str], seed: int, size: int, excluded: Collection[str]
) -> list[str]:
    """The first `size` of the applicant's order who are not excluded (a declared conflict, or a
    panellist replaced after a review); fewer when the pool runs out."""
    return [p for p in panel_order(pool, seed) if p not in excluded][:size]


def candidate_code(key: bytes, round_id: str, applicant_id: str) -> str:
    """What a panellist sees instead of the applicant: not the registration number (announcements
    list that next to the name), but a keyed code only the committee's tools can resolve."""
    digest = hmac.new(key, f"panel-code|{round_id}|{applicant_id}".encode(), hashlib.sha256)
    return "K-" + digest.hexdigest()[:10].upper()


def candidate_audience(round_id: str, code: str) -> str:
    """What a panellist who knows the candidate by code only signs a report for: the code in its
    round. Never the journey, whose id carries the registration number (and so the name)."""
    return f"{round_id}/candidate/{code}"


def report_audiences(journey_id: str, round_id: str, code: str, blind: bool) -> tuple[str, ...]:
    """What a report to a journey may be signed for: the journey; and, for a report a panellist
    sends about a candidate known by code (`blind`), that code, when the journey's start carries
    it. A signature for another code, or for another journey, holds for neither."""
    if blind and code:
        return (journey_id, candidate_audience(round_id, code))
    return (journey_id,)
