"""What a journey still awaits before its stage closes: the reports without which the close ends
it (TMS without an administration result, TH without an SKD result or an SKB CAT score, TMS-SKB
without another SKB component), and the Latsar result a CPNS still lacks (whose absence ends
nothing: the committee chases it).

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
# The kind of an awaited Latsar result (its component is "latsar" too): the Latsar window's close
# ends nobody, and a CPNS without it stays CPNS at the Latsar stage, its year of probation served or
# not, until the training agency reports (README, known limits): the committee chases it.
LATSAR_RESULT = "latsar"


# The stages that await one result: the sheet's field that holds it, its kind (and component),
# and what the close gives a journey without it (None: nothing, the journey stays where it is).
_SINGLE_RESULTS: dict[Stage, tuple[str, str, Terminal | None]] = {
    Stage.ADMIN_CHECK: ("admin_report", ADMIN_RESULT, Terminal.TMS),
    Stage.SKD: ("skd", SKD_RESULT, Terminal.ABSENT),
    Stage.LATSAR: ("latsar", LATSAR_RESULT, None),
}


class AwaitedReport(BaseModel, frozen=True):
    """One report a journey still awaits, and what its absence at the close ends the journey in."""

    stage: Stage
    component: str  # the SKB component, or "admin" / "skd" for that result
    kind: str  # "admin", "skd", or the component's kind: "score", "gate", "panel"
    # The code the close gives the journey if the report is still missing; None at Latsar, whose
    # close ends nobody (the CPNS stays CPNS).
    ends_as: Terminal | None
    scored: int = 0  # a panel: the distinct panellists whose scores stand
    needed: int = 0  # a panel: the scores it needs (min_panellists)


def awaited_reports(
    sheet: ApplicantSheet, rules: JourneyRules, stage: Stage
) -> list[AwaitedReport]:
    """The reports the journey of `sheet` still awaits at `stage` (the administrative check, SKD,
    SKB or Latsar; none at any other stage), in the order of the round's SKB components."""
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
