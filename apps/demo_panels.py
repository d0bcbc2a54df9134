"""The demo's interview panels (issue 16): the panellists of a panel component score from their
blind sheets, one of them declares a family conflict before scoring, another's score is planted
far from the rest of its panel, and the selection committee reviews the flag.

Every panellist plays themselves: they read the sheet `starter.py panel-sheet` shows them
(client/panels.py: candidate codes, never a name or registration number) and send each score
signed with their own key; the codes are resolved with the committee's key, as `starter.py
report panel` does with a filled-in sheet. The sheets as sent are written beside the round's
other files, in the format `report panel` takes.
"""

from __future__ import annotations

import asyncio
import csv
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from client.api import RecruitmentApi, RefusedError
from client.panels import PanelSheetRow, candidate_codes, panel_sheet
from domain.config import ComponentKind, RoundConfig, SkbComponent
from domain.events import PanelScoreFlagged, recorded_panels
from domain.messages import (
    ConflictDeclaration,
    JourneyState,
    PanelReview,
    PanelScoreReport,
)
from domain.panels import ConflictKind
from domain.protocol import JOURNEY_STATE
from runtime.files import open_private
from workflows.ids import journey_workflow_id

PLANTED_SCORE = 25.0  # the outlier: the rest of a panel scores 57..91 (quality 60..88, noise 3)


def panel_components(config: RoundConfig) -> list[SkbComponent]:
    """The round's panel components that draw their panel from a pool."""
    return [c for c in config.skb.components if c.kind == ComponentKind.PANEL and c.assign]


def current_panel(state: JourneyState, component: str) -> list[str]:
    """The applicant's panel for `component` as the journey last recorded it."""
    return recorded_panels(state.decisions).get(component, [])


@dataclass
class PanelStory:
    """What the panels of one component went through, for the demo's summary and its test."""

    component: str
    applicants: int = 0
    scores: int = 0
    conflict: tuple[str, str, str] | None = None  # panellist, candidate code, who took the seat
    flagged: list[tuple[str, str, float]] = field(default_factory=list)  # panellist, code, score
    struck: tuple[str, str, str, float] | None = None  # panellist, code, replacement, their score
    refused: list[str] = field(default_factory=list)


class PanelPlay:
    """The panellists and the committee of one panel component of one round."""

    def __init__(
        self,
        api: RecruitmentApi,
        pool: asyncpg.Pool,
        config: RoundConfig,
        component: SkbComponent,
        operator: str,
        seed: int,
        sheets_dir: Path,
        say: Callable[[str], None],
    ) -> None:
        self.api, self.pool, self.config, self.component = api, pool, config, component
        self.round_id, self.operator, self.seed = config.round_id, operator, seed
        self.sheets_dir, self.say = sheets_dir, say
        self.story = PanelStory(component.name)
        self.sent: dict[str, list[tuple[str, str, float]]] = {}  # panellist -> (id, code, score)
        self.planted: tuple[str, str] | None = None  # (panellist, applicant) scoring far off
        self.involved: set[str] = set()  # the applicants of the conflict and the planted score
        self.sitting: set[str] = set()  # those who sit the interview (not absent)

    async def state(self, applicant: str) -> JourneyState:
        handle = self.api.client.get_workflow_handle(journey_workflow_id(self.round_id, applicant))
        return await JOURNEY_STATE.ask(handle)

    async def wait_for(
        self, applicant: str, ready: Callable[[JourneyState], bool], what: str, timeout: float = 60
    ) -> JourneyState:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state(applicant)
            if ready(state):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"demo: timed out waiting for {what}")
            await asyncio.sleep(0.3)

    def score_of(self, panellist: str, applicant: str) -> float:
        """A panellist's score: the candidate's own quality and a little of the panellist's taste
        (seeded per pair, so concurrent panellists give the same scores every run)."""
        if (panellist, applicant) == self.planted:
            return PLANTED_SCORE
        quality = random.Random(f"{self.seed}|{applicant}").uniform(60, 88)
        taste = random.Random(f"{self.seed}|{panellist}|{applicant}").gauss(0, 3)
        return float(round(min(self.component.max_score, max(0.0, quality + taste))))

    async def report(self, applicant: str, message) -> bool:
        try:
            await self.api.report(self.round_id, applicant, message)
        except RefusedError as exc:
            self.story.refused.append(str(exc))
            return False
        return True

    async def play(self, applicants: Sequence[str]) -> PanelStory:
        """Draws, a conflict, blind scoring, the flag and its review, for `applicants` (those
        sitting the SKB); returns what happened."""
        name = self.component.name
        applicants = sorted(applicants)
        self.sitting = set(applicants)
        panels = {}
        for a in applicants:
            state = await self.wait_for(a, lambda s: bool(current_panel(s, name)), "panel draws")
            panels[a] = current_panel(state, name)
        self.story.applicants = len(applicants)
        self.say(
            f"{name} panels drawn: {self.component.assign} of {len(self.component.panellists)} "
            f"panellists for each of {len(applicants)} applicants (each journey records its seed)"
        )
        if not applicants:
            return self.story
        codes = {a: c for c, a in (await candidate_codes(self.api, self.round_id)).items()}

        # A conflict declared before scoring: the panellist recognises the candidate.
        declared, declarer = applicants[0], panels[applicants[0]][0]
        if await self.report(
            declared,
            ConflictDeclaration(
                report_id=f"coi-{name}-{declarer}-{codes[declared]}",
                reported_by=declarer,
                component=name,
                panellist=declarer,
                kind=ConflictKind.FAMILY,
                note="the candidate is the panellist's nephew (keponakan)",
            ),
        ):
            state = await self.state(declared)
            seat = next(iter(set(current_panel(state, name)) - set(panels[declared])), "nobody")
            self.story.conflict = (declarer, codes[declared], seat)
            self.say(
                f"conflict of interest: {declarer} declared a family tie with candidate "
                f"{codes[declared]} before scoring; {seat}, next in its draw, takes the seat"
            )

        # The planted outlier: the last panellist of another applicant's panel scores far off.
        target = applicants[1] if len(applicants) > 1 else applicants[0]
        self.planted = ((await self.panel_of(target))[-1], target)
        self.involved = {declared, target}

        # The planted score goes in last: on a panel of two, both scores would be flagged.
        await self.score_sheets(self.component.panellists, codes)
        await self.score_sheets([self.planted[0]], codes, planted=True)
        flagged = await self.flags(applicants)
        for panellist, applicant in sorted(flagged):
            state = await self.state(applicant)
            [flag] = [
                d
                for d in state.decisions
                if PanelScoreFlagged.matches(d) and d.input["panellist"] == panellist
            ]
            score = next(s for _, c, s in self.sent[panellist] if c == codes[applicant])
            self.story.flagged.append((panellist, codes[applicant], score))
            self.say(
                f"score flagged: {panellist} for candidate {codes[applicant]}: {flag.input['reason']}"
            )
            keep = (panellist, applicant) != self.planted
            before = current_panel(state, name)
            await self.report(
                applicant,
                PanelReview(
                    report_id=f"review-{name}-{panellist}-{codes[applicant]}",
                    reported_by=self.operator,
                    component=name,
                    panellist=panellist,
                    keep=keep,
                    note="within the panel's reasons after hearing the panellist"
                    if keep
                    else "the panellist's notes do not support a score this far from the panel",
                ),
            )
            if keep:
                self.say(f"committee review: {panellist}'s score kept")
                continue
            state = await self.wait_for(
                applicant,
                lambda s, before=before: current_panel(s, name) != before,
                "the panel's change",
            )
            [replacement] = sorted(set(current_panel(state, name)) - set(before))
            await self.score_sheets([replacement], codes)
            again = next(s for _, c, s in self.sent[replacement] if c == codes[applicant])
            self.story.struck = (panellist, codes[applicant], replacement, again)
            self.say(
                f"committee review: {panellist}'s {score:g} struck; {replacement}, next in the "
                f"candidate's draw, scored {again:g} from their sheet"
            )
        self.write_sheets()
        self.say(
            f"{name}: {self.story.scores} scores sent by the panellists from their blind sheets "
            f"(sheets in {self.sheets_dir})"
        )
        return self.story

    async def sheet(self, panellist: str) -> list[PanelSheetRow]:
        """The panellist's blind sheet, read from the read model's panels."""
        return await panel_sheet(self.pool, self.api.pseudonym_key, self.round_id, panellist)

    async def panel_of(self, applicant: str) -> list[str]:
        return current_panel(await self.state(applicant), self.component.name)

    async def score_sheets(
        self, panellists: Sequence[str], codes: dict[str, str], planted: bool = False
    ) -> None:
        """Each panellist scores the candidates on their sheet they have not scored yet (the
        planted score only when `planted`)."""
        applicant_of = {c: a for a, c in codes.items()}

        async def one(panellist: str) -> None:
            done = {c for _, c, _ in self.sent.get(panellist, [])}
            sheet = await self.sheet(panellist)
            for row in sheet:
                if row.component != self.component.name or row.candidate in done:
                    continue
                applicant = applicant_of[row.candidate]
                if applicant not in self.sitting:
                    continue  # absent from the SKB: no interview, no score
                if ((panellist, applicant) == self.planted) != planted:
                    continue
                score = self.score_of(panellist, applicant)
                report_id = f"{row.component}-{panellist}-{row.candidate}"  # as panel-sheet's
                if await self.report(
                    applicant,
                    PanelScoreReport(
                        report_id=report_id,
                        reported_by=panellist,  # signed with the panellist's own key
                        component=row.component,
                        panellist=panellist,
                        score=score,
                    ),
                ):
                    self.sent.setdefault(panellist, []).append((report_id, row.candidate, score))
                    self.story.scores += 1

        await asyncio.gather(*(one(p) for p in panellists))

    async def flags(self, applicants: Sequence[str]) -> list[tuple[str, str]]:
        """(panellist, applicant) of every flagged score, once the planted one is flagged."""
        name = self.component.name
        panellist, target = self.planted or ("", "")
        await self.wait_for(
            target,
            lambda s: any(
                PanelScoreFlagged.matches(d) and d.input.get("panellist") == panellist
                for d in s.decisions
            ),
            "the planted score's flag",
        )
        out = []
        for a in applicants:
            state = await self.state(a)
            out += [
                (str(d.input["panellist"]), a)
                for d in state.decisions
                if PanelScoreFlagged.matches(d) and d.input.get("component") == name
            ]
        return out

    def write_sheets(self) -> None:
        """Each panellist's sheet as sent: the file `starter.py report panel` takes (mode 0600,
        as `starter.py panel-sheet --out` writes it: a panellist's scores are theirs to send)."""
        for panellist, rows in sorted(self.sent.items()):
            path = self.sheets_dir / f"{self.component.name}-{panellist}.csv"
            with open_private(path, encoding="utf-8", newline="") as f:  # as panel-sheet writes
                out = csv.writer(f)
                out.writerow(["report_id", "applicant_id", "component", "panellist", "score"])
                for report_id, code, score in rows:
                    out.writerow([report_id, code, self.component.name, panellist, f"{score:g}"])
