"""A journey judges its registration again: one started around RecruitmentApi cannot carry an
ineligible registration forward (the API refuses those before any journey starts)."""

from __future__ import annotations

import uuid

import pytest

from domain.codes import Stage, Terminal
from domain.messages import JourneyStart, JourneyState
from tests.roundkit import TEST_KEYRING, compressed_round, formasi, registration
from workflows.applicant import ENGINE_VERSION, ApplicantJourney
from workflows.ids import journey_workflow_id
from workflows.round import journey_rules

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400


async def test_a_journey_started_directly_refuses_an_ineligible_registration(kit):
    t0 = await kit.now()
    round_id = f"ts-elig-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 2)],
        {
            "registration": (0, 15 * DAY),
            "administration": (20 * DAY, 25 * DAY),
            "skd": (30 * DAY, 50 * DAY),
            "skb": (51 * DAY, 65 * DAY),
            "filing": (75 * DAY, 90 * DAY),
            "latsar": (90 * DAY, 455 * DAY),
        },
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
            applied_on=t0.date(),
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
    assert first.input["applied_on"] == t0.date().isoformat()
    assert [r["field"] for r in first.input["refusals"]] == ["education_level"]
    assert not any(d.outcome == "registered" for d in refused.decisions)
