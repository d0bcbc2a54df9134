"""The panellists' blind view (issue 16): the applicants a panellist is drawn for, by candidate
code, never by name or registration number; and the committee's resolution of codes when the
scores come back.

Codes are keyed with the pseudonym key (domain/panels.py `candidate_code`): the committee's
tools, which hold it, resolve them; a panellist cannot, and a code found on a score sheet says
nothing about who the applicant is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from client.api import RecruitmentApi
from domain.events import PanelAssigned, PanelChanged
from domain.panels import candidate_code
from domain.protocol import JOURNEY_STATE
from workflows.ids import journey_workflow_id

CODE_PREFIX = "K-"


@dataclass(frozen=True)
class PanelSheetRow:
    """One applicant on a panellist's sheet."""

    candidate: str
    formasi_code: str
    component: str


async def _journeys(
    api: RecruitmentApi, round_id: str, formasi: str | None, running: bool = False
) -> list[str]:
    """The round's applicants (those whose journey runs, with `running`), each once."""
    query = f"CasnKind = 'journey' AND RoundId = '{round_id}'"
    if formasi:
        query += f" AND FormasiCode = '{formasi}'"
    if running:
        query += " AND ExecutionStatus = 'Running'"
    prefix = journey_workflow_id(round_id, "")
    found = {
        wf.id.removeprefix(prefix)
        async for wf in api.client.list_workflows(query)
        if wf.id.startswith(prefix)
    }
    return sorted(found)


def _quoted(value: str, name: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"{name}={value!r}: a quote or backslash cannot be part of it")
    return value


async def candidate_codes(api: RecruitmentApi, round_id: str) -> dict[str, str]:
    """Every candidate code of the round's applicants -> the applicant's registration number."""
    _quoted(round_id, "round_id")
    return {
        candidate_code(api.pseudonym_key, round_id, a): a
        for a in await _journeys(api, round_id, None)
    }


@dataclass
class CandidateDirectory:
    """Which applicant each candidate code of a round stands for, for the gateway, which holds
    the pseudonym key and takes a panellist's blind reports by code: each round's codes are
    listed once, and again when a code is not among them, at most every `refresh_every` seconds
    (a code unknown now may be an applicant registered since)."""

    api: RecruitmentApi
    refresh_every: float = 10.0
    _codes: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict, repr=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def applicant_of(self, round_id: str, code: str) -> str | None:
        """The registration number of `code` in the round, or None."""
        at, codes = self._codes.get(round_id, (None, {}))
        if code in codes:
            return codes[code]
        async with self._locks.setdefault(round_id, asyncio.Lock()):
            at, codes = self._codes.get(round_id, (at, codes))
            if code not in codes and (at is None or time.monotonic() - at >= self.refresh_every):
                codes = await candidate_codes(self.api, round_id)
                self._codes[round_id] = (time.monotonic(), codes)
        return codes.get(code)


async def panel_sheet(
    api: RecruitmentApi, round_id: str, panellist: str, formasi: str | None = None
) -> list[PanelSheetRow]:
    """The applicants whose panel `panellist` sits on now (the journeys' recorded draws, after
    every conflict and review), by candidate code, in code order."""
    _quoted(round_id, "round_id")
    if formasi:
        _quoted(formasi, "formasi")
    rows = []
    for applicant in await _journeys(api, round_id, formasi, running=True):
        handle = api.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
        state = await JOURNEY_STATE.ask(handle)
        panels: dict[str, list[str]] = {}
        for d in state.decisions:
            if PanelAssigned.matches(d):
                panels[str(d.input["component"])] = list(d.input["panellists"])
            elif PanelChanged.matches(d):
                panels[str(d.input["component"])] = list(d.input["panel"])
        for component, members in sorted(panels.items()):
            if panellist in members and state.terminal is None:
                rows.append(
                    PanelSheetRow(
                        candidate=candidate_code(api.pseudonym_key, round_id, applicant),
                        formasi_code=state.formasi_code,
                        component=component,
                    )
                )
    return sorted(rows, key=lambda r: (r.component, r.candidate))
