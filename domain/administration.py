"""Administrative check (MS/TMS with a reason per document) and its appeal (sanggah)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from domain.codes import AdminDecision


class DocumentFinding(BaseModel, frozen=True):
    """One failing document and why it fails."""

    document: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


def admin_decision(findings: list[DocumentFinding]) -> AdminDecision:
    """MS when no document fails, TMS otherwise."""
    return AdminDecision.TMS if findings else AdminDecision.MS


def appeal_refusal(
    decision: AdminDecision | None,
    announced_at: datetime | None,
    now: datetime,
    window: timedelta,
    already_appealed: bool,
    closes: datetime | None = None,
) -> str | None:
    """Why an appeal cannot be filed now, or None when it can. The window closes at `closes`
    when given (calendar days, domain.config.days_after), else `window` after the announcement."""
    if decision != AdminDecision.TMS:
        return "only a TMS result can be appealed"
    if announced_at is None:
        return "the result has not been announced yet"
    if already_appealed:
        return "an appeal may be filed once"
    closes = closes or announced_at + window
    if now >= closes:
        return f"the appeal window closed at {closes.isoformat()}"
    return None


def appeal_outcome(accepted: bool) -> AdminDecision:
    """An accepted appeal turns TMS into MS; a rejected one leaves TMS."""
    return AdminDecision.MS if accepted else AdminDecision.TMS
