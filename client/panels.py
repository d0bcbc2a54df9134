"""The panellists' blind view (issue 16): the applicants a panellist is drawn for, by candidate
code, never by name or registration number; and the committee's resolution of codes when the
scores come back.

Codes are keyed with the pseudonym key (domain/panels.py `candidate_code`): the committee's
tools, which hold it, resolve them; a panellist cannot, and a code found on a score sheet says
nothing about who the applicant is. Sheets are read from the read model's panel_seats
(migration 016), which each journey writes with its row when it draws a panel or the panel
changes; the journeys' own checks of every score stay the authority.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from client.api import RecruitmentApi
from domain.panels import candidate_code
from workflows.ids import journey_workflow_id

CODE_PREFIX = "K-"


@dataclass(frozen=True)
class PanelSheetRow:
    """One applicant on a panellist's sheet."""

    candidate: str
    formasi_code: str
    component: str


async def _journeys(api: RecruitmentApi, round_id: str) -> list[str]:
    """The round's applicants, each once."""
    query = f"CasnKind = 'journey' AND RoundId = '{round_id}'"
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
        candidate_code(api.pseudonym_key, round_id, a): a for a in await _journeys(api, round_id)
    }


_SEATED_SQL = "SELECT DISTINCT applicant_id FROM panel_seats WHERE round_id = $1"


async def seated_codes(
    db: asyncpg.Pool | asyncpg.Connection, pseudonym_key: bytes, round_id: str
) -> dict[str, str]:
    """The candidate code of every applicant of the round that has a panel (the read model's
    panel_seats) -> the applicant's registration number: one read, whatever the round's size."""
    return {
        candidate_code(pseudonym_key, round_id, r["applicant_id"]): r["applicant_id"]
        for r in await db.fetch(_SEATED_SQL, round_id)
    }


@dataclass
class CandidateDirectory:
    """Which applicant each candidate code of a round stands for, for the gateway, which holds
    the pseudonym key and takes a panellist's blind reports by code. A panellist knows only the
    codes of their sheet, so only applicants with a panel are listed: the read model's
    panel_seats, one read per round, and again when a code is not among them, at most every
    `refresh_every` seconds (a code unknown now may be of a panel drawn since)."""

    db: asyncpg.Pool
    api: RecruitmentApi  # its pseudonym key makes the codes
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
                codes = await seated_codes(self.db, self.api.pseudonym_key, round_id)
                self._codes[round_id] = (time.monotonic(), codes)
        return codes.get(code)


# The panels as they stand (panel_seats, written with each journey's row from its draws and
# changes), of journeys that have not ended.
_SHEET_SQL = """
SELECT s.applicant_id, a.formasi_code, s.component
FROM panel_seats s
JOIN applicants a ON a.round_id = s.round_id AND a.applicant_id = s.applicant_id
WHERE s.round_id = $1 AND s.panellists @> ARRAY[$2::text] AND a.terminal IS NULL
  AND ($3::text IS NULL OR a.formasi_code = $3)
"""


async def panel_sheet(
    db: asyncpg.Pool | asyncpg.Connection,
    pseudonym_key: bytes,
    round_id: str,
    panellist: str,
    formasi: str | None = None,
) -> list[PanelSheetRow]:
    """The applicants whose panel `panellist` sits on now (the journeys' recorded draws, after
    every conflict and review, as the read model holds them), by candidate code, in code order:
    one indexed read, whatever the round's size."""
    rows = [
        PanelSheetRow(
            candidate=candidate_code(pseudonym_key, round_id, r["applicant_id"]),
            formasi_code=r["formasi_code"],
            component=r["component"],
        )
        for r in await db.fetch(_SHEET_SQL, round_id, panellist, formasi)
    ]
    return sorted(rows, key=lambda r: (r.component, r.candidate))
