"""What a journey still awaits before its stage closes: the reports without which the close ends
it (TMS without an administration result, TH without an SKD result or an SKB CAT score, TMS-SKB
without another SKB component).

The same rule as the close itself (`domain.sheet.skb_result`): a score or gate component is
awaited until its report is accepted; a panel component until at least `min_panellists` distinct
panellists' scores stand (a score struck by a conflict or a review, or refused for a conflict,
does not count). Pure, so the committee's view and a test fold the same reports the same way.
"""

from __future__ import annotations

from pydantic import BaseModel

from domain.codes import Stage, Terminal
from domain.config import ComponentKind
from domain.messages import JourneyRules
from domain.sheet import ApplicantSheet

# The kind of an awaited SKD result (its component is "skd" too).
SKD_RESULT = "skd"
# The kind of an awaited administration result (its component is "admin" too): without it the
# administration's close ends the journey TMS, naming no document ("no decision before the window
# closed"), and only a sanggah brings the applicant back.
ADMIN_RESULT = "admin"


# The stages that await one result: the sheet's field that holds it, its kind (and component),
# and what the close gives a journey without it.
_SINGLE_RESULTS = {
    Stage.ADMIN_CHECK: ("admin_report", ADMIN_RESULT, Terminal.TMS),
    Stage.SKD: ("skd", SKD_RESULT, Terminal.ABSENT),
}


class AwaitedReport(BaseModel, frozen=True):
    """One report a journey still awaits, and what its absence at the close ends the journey in."""

    stage: Stage
    component: str  # the SKB component, or "admin" / "skd" for that result
    kind: str  # "admin", "skd", or the component's kind: "score", "gate", "panel"
    ends_as: Terminal  # the code the close gives the journey if the report is still missing
    scored: int = 0  # a panel: the distinct panellists whose scores stand
    needed: int = 0  # a panel: the scores it needs (min_panellists)


def awaited_reports(
    sheet: ApplicantSheet, rules: JourneyRules, stage: Stage
) -> list[AwaitedReport]:
    """The reports the journey of `sheet` still awaits at `stage` (the administrative check, SKD
    or SKB; none at any other stage), in the order of the round's SKB components."""
    single = _SINGLE_RESULTS.get(stage)
    if single is not None:
        field, kind, ends_as = single
        if getattr(sheet, field) is not None:
            return []
        return [AwaitedReport(stage=stage, component=kind, kind=kind, ends_as=ends_as)]
    if stage != Stage.SKB:
        return []
    awaited: list[AwaitedReport] = []
    for c in rules.skb.components:
        # Without a CAT score the close ends the journey TH (absent); without any other, TMS-SKB.
        ends_as = Terminal.ABSENT if c.name == "cat" else Terminal.SKB_GATE_FAILED
        if c.kind == ComponentKind.PANEL:
            scored = len(sheet.panel.get(c.name, {}))
            if scored < c.min_panellists:
                awaited.append(
                    AwaitedReport(
                        stage=stage,
                        component=c.name,
                        kind=c.kind.value,
                        ends_as=ends_as,
                        scored=scored,
                        needed=c.min_panellists,
                    )
                )
            continue
        reported = sheet.gates if c.kind == ComponentKind.GATE else sheet.skb_scores
        if c.name not in reported:
            awaited.append(
                AwaitedReport(stage=stage, component=c.name, kind=c.kind.value, ends_as=ends_as)
            )
    return awaited
