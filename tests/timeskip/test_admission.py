"""A journey is admitted by its round, not by its own start input.

Each test is an attack that worked before journeys asked their round: a client that can reach
Temporal starts an ApplicantJourney itself, around RecruitmentApi. The journey must end refused,
with the reason recorded, before it can wait for anything or take a seat.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.codes import Stage, Terminal
from domain.messages import ExtendWindow, JourneyStart, JourneyState
from domain.optimalisasi import local_date
from domain.registration import mask_nik
from domain.signing import Keyring, Signer
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    formasi,
    journey_start,
    registration,
)
from workflows.applicant import ApplicantJourney
from workflows.ids import journey_workflow_id
from workflows.round import journey_rules

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400
SCHEDULE = {
    "registration": (0, 15 * DAY),
    "administration": (20 * DAY, 25 * DAY),
    "skd": (30 * DAY, 50 * DAY),
    "skb": (51 * DAY, 65 * DAY),
    "filing": (75 * DAY, 90 * DAY),
    "latsar": (90 * DAY, 455 * DAY),
}


async def _round(kit, **changes):
    t0 = await kit.now()
    round_id = f"ts-adm-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE, t0=t0, **changes)
    await kit.create_round(config)
    return t0, config


def _signed(keyring: Keyring, start: JourneyStart) -> JourneyStart:
    """Signed by its registering identity for the journey it starts."""
    return keyring.sign(start, journey_workflow_id(start.round_id, start.applicant_id))


async def _run(kit, start: JourneyStart) -> JourneyState:
    await kit.client.start_workflow(
        ApplicantJourney.run,
        start,
        task_queue=kit.task_queue,
        id=journey_workflow_id(start.round_id, start.applicant_id),
    )
    return await kit.journey_at(start.round_id, start.applicant_id, Stage.ADMIN_CHECK, Stage.ENDED)


def _refusal(state: JourneyState) -> str:
    assert state.terminal == Terminal.TMS, state
    first = state.decisions[0]
    assert (first.stage, first.outcome, first.actor) == ("registered", "not admitted", "system")
    return first.input["reason"]


async def test_a_signed_start_inside_the_window_is_admitted(kit):
    _, config = await _round(kit)

    state = await _run(kit, _signed(TEST_KEYRING, journey_start(config, "OK-1", 1)))

    assert state.stage == Stage.ADMIN_CHECK and state.terminal is None


async def test_a_journey_started_after_registration_closed_is_refused(kit):
    t0, config = await _round(kit)
    await kit.advance_to(t0 + timedelta(days=16))

    state = await _run(kit, _signed(TEST_KEYRING, journey_start(config, "LATE-1", 1)))

    assert "after registration closed at" in _refusal(state)


async def test_an_extension_recorded_by_the_round_admits_a_start_inside_it(kit):
    t0, config = await _round(kit)
    extend = ExtendWindow(
        report_id="ext-1",
        reported_by=OPERATOR,
        window="registration",
        new_closes=t0 + timedelta(days=18),
        reason="portal outage, letter B-1",
    )
    await kit.api.command(config.round_id, extend)
    await kit.advance_to(t0 + timedelta(days=16))
    today = local_date(await kit.now(), config.timezone)  # the day the registrar dates it

    state = await _run(
        kit, _signed(TEST_KEYRING, journey_start(config, "EXT-1", 1, applied_on=today))
    )

    assert state.stage == Stage.ADMIN_CHECK and state.terminal is None


async def test_an_unsigned_start_is_refused(kit):
    _, config = await _round(kit)

    state = await _run(kit, journey_start(config, "UNSIGNED-1", 1))

    assert _refusal(state).startswith("unsigned")


async def test_a_start_carrying_keys_of_its_own_is_refused(kit):
    _, config = await _round(kit)
    attacker = Keyring([Signer.generate("sscasn")])
    rules = journey_rules(config).model_copy(update={"identities": attacker.public_keys()})
    forged = _signed(attacker, journey_start(config, "OWNKEYS-1", 1, rules=rules))

    state = await _run(kit, forged)

    # The digest still claims the round's rules; the round's keys do not verify the signature.
    assert "does not verify under sscasn's key" in _refusal(state)


async def test_a_start_with_rules_other_than_the_rounds_is_refused(kit):
    _, config = await _round(kit)
    lax = journey_rules(config).model_copy(update={"rules_digest": "f" * 64})

    state = await _run(kit, _signed(TEST_KEYRING, journey_start(config, "RULES-1", 1, rules=lax)))

    assert "started with rules ffffffffffff, not round" in _refusal(state)


async def test_a_start_with_a_formasi_of_its_own_is_refused(kit):
    _, config = await _round(kit)
    lax = config.formasi_by_code("F1").model_copy(update={"min_gpa": 0.0, "max_age": 60})

    state = await _run(
        kit, _signed(TEST_KEYRING, journey_start(config, "FORMASI-1", 1, formasi=lax))
    )

    assert "is not round" in _refusal(state) and "formasi F1" in _refusal(state)


async def test_a_start_registered_by_an_identity_that_may_not_register_is_refused(kit):
    _, config = await _round(kit)

    state = await _run(
        kit, _signed(TEST_KEYRING, journey_start(config, "CAT-1", 1, registered_by="cat-bkn"))
    )

    assert _refusal(state) == "cat-bkn may not register applicants in this round"


async def test_a_start_without_the_nik_s_sanctions_key_is_refused(kit):
    _, config = await _round(kit)

    state = await _run(
        kit, _signed(TEST_KEYRING, journey_start(config, "NOKEY-1", 1, sanction_key=""))
    )

    assert _refusal(state) == (
        "the start carries no sanctions register key: the sanctions register cannot be asked"
    )
    assert not kit.acts.sanction_checks


async def test_a_barred_nik_is_refused_by_the_journey_though_its_registrar_let_it_through(kit):
    """A signed start from a registrar that never asked the register: the journey asks it."""
    _, config = await _round(kit)
    barred = "barred until 2099-12-31 by national list BKN-9 (pemalsuan ijazah)"
    kit.acts.sanctions["key-of-BARRED-1"] = [barred]

    state = await _run(kit, _signed(TEST_KEYRING, journey_start(config, "BARRED-1", 1)))
    passed = await _run(kit, _signed(TEST_KEYRING, journey_start(config, "CLEAR-1", 2)))

    assert state.terminal == Terminal.TMS
    first = state.decisions[0]
    assert (first.stage, first.outcome, first.actor) == ("registered", "refused", "system")
    [refusal] = first.input["refusals"]
    assert refusal == {
        "field": "nik",
        "value": mask_nik(registration(1, "F1").nik),
        "reason": barred,
    }
    assert not any(d.outcome == "registered" for d in state.decisions)
    assert passed.stage == Stage.ADMIN_CHECK and passed.terminal is None
    # Asked with the round's own registration opening (from the round, not the start).
    asked = {c.subject: c for c in kit.acts.sanction_checks}
    assert asked["key-of-BARRED-1"].registration_opens == config.schedule.registration.opens
    opened_on = local_date(config.schedule.registration.opens, config.timezone)
    assert asked["key-of-CLEAR-1"].applied_on == opened_on
