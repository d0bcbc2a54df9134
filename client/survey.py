"""The satisfaction survey (SKM) on the read model: which stages an applicant may answer, storing
an answer anonymously, and the results (IKM) per stage and per instansi.

Anonymous (docs/ARCHITECTURE.md, "What the read model keeps, and for whom"): no report links an
answer to an applicant's result. An answer is stored in `skm_responses` with the round, its
instansi, the stage and the day only; `skm_taken` records that the applicant answered that stage,
nothing of what, in the same transaction (migration 009). Results are sums over every answer of
a stage (`survey_results`); no function here reads one answer's row.

Which stages are open follows the journey (`client/status.py` ApplicantView): after registration
once registered, after SKD once the SKD code is out, at the end once the journey has ended. Each
is answered once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import asyncpg
from pydantic import BaseModel

from client.status import WIB, ApplicantView
from domain.errors import RuleViolation
from domain.skm import ELEMENTS, STAGES, IkmResult, SurveyStage, ikm_of_totals, validate_answers

ALL = "all"  # the row of every stage together
# Below this many respondents a stage's figures come close to the answers themselves, and who
# answered a stage is recorded (skm_taken): such figures are marked, not for publication.
FEW_RESPONDENTS = 5


def open_stages(view: ApplicantView) -> tuple[SurveyStage, ...]:
    """The stages whose survey this applicant may answer now (answered or not), in order:
    registration (a view exists only for a registered applicant), skd once the SKD code is
    out, end once the journey has ended."""
    opened: list[SurveyStage] = ["registration"]
    if view.skd_code is not None:
        opened.append("skd")
    if view.terminal is not None:
        opened.append("end")
    return tuple(opened)


async def taken_stages(
    conn: asyncpg.Connection | asyncpg.Pool, round_id: str, applicant_id: str
) -> frozenset[str]:
    """The stages this applicant has answered."""
    rows = await conn.fetch(
        "SELECT stage FROM skm_taken WHERE round_id = $1 AND applicant_id = $2",
        round_id,
        applicant_id,
    )
    return frozenset(r["stage"] for r in rows)


async def offered_stages(
    conn: asyncpg.Connection | asyncpg.Pool, view: ApplicantView
) -> tuple[SurveyStage, ...]:
    """The stages the status page offers: open and not yet answered."""
    done = await taken_stages(conn, view.round_id, view.applicant_id)
    return tuple(s for s in open_stages(view) if s not in done)


async def record_answers(
    conn: asyncpg.Connection,
    *,
    round_id: str,
    instansi: str,
    applicant_id: str,
    stage: str,
    answers: Sequence[int],
    day: date | None = None,
) -> bool:
    """Store one response of `applicant_id` to the survey of `stage`, anonymously; False (and
    nothing stored) when they had answered it. RuleViolation for an unknown stage or invalid
    answers (domain.skm.validate_answers). `day` defaults to today in WIB."""
    if stage not in STAGES:
        raise RuleViolation("stage", stage, f"a survey stage is one of {', '.join(STAGES)}")
    checked = validate_answers(answers)
    day = day or datetime.now(WIB).date()
    async with conn.transaction():
        first = await conn.fetchval(
            "INSERT INTO skm_taken (round_id, applicant_id, stage) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            round_id,
            applicant_id,
            stage,
        )
        if not first:
            return False
        await conn.execute(
            "INSERT INTO skm_responses (round_id, instansi, stage, answers, submitted_on) "
            "VALUES ($1, $2, $3, $4, $5)",
            round_id,
            instansi,
            stage,
            list(checked),
            day,
        )
    return True


class SurveyRow(BaseModel, frozen=True):
    """The IKM of one instansi's answers to one stage of a round (stage "all": every stage)."""

    round_id: str
    instansi: str
    stage: str
    result: IkmResult

    @property
    def few(self) -> bool:
        """Fewer than FEW_RESPONDENTS respondents: not for publication (see FEW_RESPONDENTS)."""
        return self.result.respondents < FEW_RESPONDENTS


_SUMS = ", ".join(f"sum(answers[{i + 1}])::int AS u{i + 1}" for i in range(len(ELEMENTS)))


async def survey_rows(conn: asyncpg.Connection | asyncpg.Pool, round_id: str) -> list[SurveyRow]:
    """The IKM per instansi and stage of a round, then per instansi over every stage (stage
    "all"), computed from each element's sum (domain.skm.ikm_of_totals); stages nobody answered
    are left out. Sorted by instansi, then stage in the survey's order."""
    rows = await conn.fetch(
        f"""SELECT instansi, coalesce(stage, '{ALL}') AS stage, count(*)::int AS n, {_SUMS}
            FROM skm_responses WHERE round_id = $1
            GROUP BY GROUPING SETS ((instansi, stage), (instansi))""",
        round_id,
    )
    order = {s: i for i, s in enumerate((*STAGES, ALL))}
    found = [
        SurveyRow(
            round_id=round_id,
            instansi=r["instansi"],
            stage=r["stage"],
            result=ikm_of_totals([r[f"u{i + 1}"] for i in range(len(ELEMENTS))], r["n"]),
        )
        for r in rows
    ]
    return sorted(found, key=lambda row: (row.instansi, order[row.stage]))


async def survey_results(
    conn: asyncpg.Connection | asyncpg.Pool, round_id: str
) -> dict[SurveyStage, IkmResult]:
    """The round's IKM per stage (every instansi of the round together; a round has one), for
    the round's evaluation report; stages nobody answered are left out."""
    per_stage: dict[SurveyStage, IkmResult] = {}
    rows = await conn.fetch(
        f"""SELECT stage, count(*)::int AS n, {_SUMS}
            FROM skm_responses WHERE round_id = $1 GROUP BY stage""",
        round_id,
    )
    by_stage = {r["stage"]: r for r in rows}
    for stage in STAGES:
        if (r := by_stage.get(stage)) is not None:
            per_stage[stage] = ikm_of_totals([r[f"u{i + 1}"] for i in range(len(ELEMENTS))], r["n"])
    return per_stage


async def mix_answers(conn: asyncpg.Connection) -> int:
    """Rewrite every stored answer so that nothing inside the database ties one to the
    applicant who gave it; return how many were rewritten.

    An answer and the record that its applicant answered are written in one transaction, so
    until they are rewritten they share the database's hidden transaction id (`xmin`) and lie
    in the order they came in, as the applicants' records do: a reader of the raw tables could
    pair them. Every answer is updated in one transaction (one `xmin` for all), then the table
    is rewritten in the order of its random ids (CLUSTER), dropping the old row versions.
    `starter.py survey-mix` runs it; CLUSTER locks the table for the moment it takes."""
    async with conn.transaction():
        updated = await conn.execute("UPDATE skm_responses SET answers = answers")
    await conn.execute("CLUSTER skm_responses USING skm_responses_pkey")
    return int(updated.split()[-1])
