"""A journey judges its registration again: one started around RecruitmentApi cannot carry an
ineligible registration forward (the API refuses those before any journey starts)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.codes import Stage, Terminal
from domain.messages import JourneyStart, JourneyState
from domain.optimalisasi import local_date
from tests.roundkit import TEST_KEYRING, compressed_round, formasi, registration
from workflows.applicant import ENGINE_VERSION, ApplicantJourney
from workflows.ids import journey_workflow_id
from workflows.round import journey_rules

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400
WIT = ZoneInfo("Asia/Jayapura")
# A round's windows over a year, in seconds from its start: registration open 15 days.
A_YEAR = {
    "registration": (0, 15 * DAY),
    "administration": (20 * DAY, 25 * DAY),
    "skd": (30 * DAY, 50 * DAY),
    "skb": (51 * DAY, 65 * DAY),
    "filing": (75 * DAY, 90 * DAY),
    "latsar": (90 * DAY, 455 * DAY),
}


async def test_a_journey_started_directly_refuses_an_ineligible_registration(kit):
    t0 = await kit.now()
    round_id = f"ts-elig-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 2)],
        A_YEAR,
        appeal_window=3 * DAY,
        answer_within=7 * DAY,
        offer_within=2 * DAY,
        t0=t0,
    )
    await kit.create_round(config)

    async def start_directly(applicant_id: str, reg) -> JourneyState:
        start = JourneyStart(
            round_id=round_id,
            applicant_id=applicant_id,
            registration=reg,
            formasi=config.formasi_by_code("F1"),
            rules=journey_rules(config),
            registered_by="sscasn",  # the portal's identity, signed with its key below
            tmt=config.schedule.tmt,
            engine_version=ENGINE_VERSION,
            applied_on=local_date(t0, config.timezone),
            sanction_key=f"key-of-{applicant_id}",
        )
        await kit.client.start_workflow(
            ApplicantJourney.run,
            TEST_KEYRING.sign(start, journey_workflow_id(round_id, applicant_id)),
            task_queue=kit.task_queue,
            id=journey_workflow_id(round_id, applicant_id),
        )
        return await kit.journey_at(round_id, applicant_id, Stage.ADMIN_CHECK, Stage.ENDED)

    eligible = await start_directly("DIRECT-OK", registration(1, "F1"))
    assert eligible.stage == Stage.ADMIN_CHECK and eligible.terminal is None

    wrong_level = registration(2, "F1").model_copy(update={"education_level": "D3"})
    refused = await start_directly("DIRECT-D3", wrong_level)
    assert refused.terminal == Terminal.TMS
    assert refused.terminal_reason.startswith("registration refused: education_level='D3'")
    first = refused.decisions[0]  # admitted by the round (no decision), then judged
    assert (first.stage, first.outcome, first.actor) == ("registered", "refused", "system")
    assert first.input["applied_on"] == local_date(t0, config.timezone).isoformat()
    assert [r["field"] for r in first.input["refusals"]] == ["education_level"]
    assert not any(d.outcome == "registered" for d in refused.decisions)


async def test_a_journey_judges_ages_on_the_date_it_started(kit):
    """A start that carries an application date years back is refused, not judged on that date
    (patch applied-on-its-start-date): a 36-year-old was 33 then. One without a date is judged on
    the journey's own date, and one a registrar dated a minute ago is taken as it is."""
    t0 = await kit.now()
    round_id = f"ts-date-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 3)],
        A_YEAR,
        t0=t0,
        extra={"timezone": "Asia/Jayapura"},
    )
    await kit.create_round(config)
    today = (await kit.now()).astimezone(WIT).date()
    over_age = date(today.year - 37, today.month, 1)  # 36 today: over 35

    async def start(applicant_id: str, born: date, applied_on: date | None) -> JourneyState:
        start = JourneyStart(
            round_id=round_id,
            applicant_id=applicant_id,
            registration=registration(len(applicant_id), "F1", birth=born),
            formasi=config.formasi_by_code("F1"),
            rules=journey_rules(config),
            registered_by="sscasn",
            tmt=config.schedule.tmt,
            engine_version=ENGINE_VERSION,
            applied_on=applied_on,
            sanction_key=f"key-of-{applicant_id}",
        )
        await kit.client.start_workflow(
            ApplicantJourney.run,
            TEST_KEYRING.sign(start, journey_workflow_id(round_id, applicant_id)),
            task_queue=kit.task_queue,
            id=journey_workflow_id(round_id, applicant_id),
        )
        return await kit.journey_at(round_id, applicant_id, Stage.ADMIN_CHECK, Stage.ENDED)

    backdated = await start("BACKDATED", over_age, today - timedelta(days=3 * 365))
    assert backdated.terminal == Terminal.TMS
    assert "registration refused: applied_on=" in backdated.terminal_reason
    assert "is not the date the registration was started on" in backdated.terminal_reason

    undated = await start("UNDATED", over_age, None)
    assert undated.terminal == Terminal.TMS
    assert undated.terminal_reason.startswith("registration refused: birth_date=")

    dated = await start("DATED", date(1998, 5, 17), today)
    assert dated.stage == Stage.ADMIN_CHECK and dated.terminal is None
