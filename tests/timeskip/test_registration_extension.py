"""A registration extension on the round's durable timer: 15 days, extended by 4 while open; and
registration closed early only once it has been open its 15 calendar days."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import tomli_w

from client.api import RefusedError
from domain.codes import Stage
from domain.messages import CloseWindow, ExtendWindow
from tests.roundkit import OPERATOR, compressed_round, formasi, registration
from tests.roundkit import SCHEDULE_IN_DAYS as SCHEDULE

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds


async def test_extension_moves_the_registration_close(kit):
    t0 = await kit.now()
    day = timedelta(days=1)
    round_id = f"ts-ext-{uuid.uuid4().hex[:6]}"
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
    original_close = t0 + 15 * day
    new_close = t0 + 19 * day
    await kit.create_round(config)
    first = await kit.register(config, registration(1, "F1"))

    # Day 14, the portal is down: the operator extends registration by 4 days (as in 2024).
    await kit.advance_to(t0 + 14 * day)
    extend = ExtendWindow(
        report_id="ext-1",
        reported_by=OPERATOR,
        window="registration",
        new_closes=new_close,
        reason="portal outage on the last days (surat BKN)",
    )
    ack = await kit.api.command(round_id, extend)
    assert ack.effect == "registration extended"
    assert await kit.api.command(round_id, extend) == ack  # a repeat: the first answer
    with pytest.raises(RefusedError, match="after the next window opens"):
        await kit.api.command(
            round_id, extend.model_copy(update={"report_id": "ext-2", "new_closes": t0 + 21 * day})
        )

    # Past the original close the round is still in registration, and people can still register.
    await kit.advance_to(original_close + day)
    state = await kit.round_state(round_id)
    assert state.phase == "registration" and "registration" not in state.closed
    assert state.schedule.registration.closes == new_close
    recorded = [d for d in state.decisions if d.outcome == "registration extended"]
    assert len(recorded) == 1 and recorded[0].actor == OPERATOR
    assert recorded[0].input["reason"].startswith("portal outage")
    late = await kit.register(config, registration(2, "F1"), schedule_closes=new_close)
    assert (await kit.journey(round_id, late)).stage == Stage.ADMIN_CHECK

    # An hour before the new close: still open. Just after it: closed, the round moves on.
    await kit.advance_to(new_close - timedelta(hours=1))
    assert (await kit.round_state(round_id)).phase == "registration"
    await kit.advance_to(new_close + timedelta(minutes=10))

    async def moved_on():
        s = await kit.round_state(round_id)
        return s if "registration" in s.closed else None

    state = await kit.until(moved_on, "the registration close")
    assert state.phase == "administration"
    closed = next(
        d for d in state.decisions if d.stage == "registration" and d.outcome == "window closed"
    )
    assert abs(closed.at - new_close) < timedelta(minutes=5), closed
    with pytest.raises(RefusedError, match="registration window is already closed"):
        await kit.api.command(
            round_id, extend.model_copy(update={"report_id": "ext-3", "new_closes": t0 + 20 * day})
        )
    # Both registrations are in the round: the one before and the one during the extension.
    for applicant in (first, late):
        assert (await kit.journey(round_id, applicant)).stage == Stage.ADMIN_CHECK


async def test_registration_closes_early_only_after_its_fifteenth_calendar_day(kit):
    t0 = await kit.now()
    day = timedelta(days=1)
    round_id = f"ts-min-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 2)],
        {
            "registration": (0, 20 * DAY),
            "administration": (20 * DAY, 25 * DAY),
            "skd": (30 * DAY, 50 * DAY),
            "skb": (51 * DAY, 65 * DAY),
            "filing": (75 * DAY, 90 * DAY),
            "latsar": (90 * DAY, 455 * DAY),
        },
        t0=t0,
        extra={"min_registration_days": 15},  # the rules' figure, not the test kit's 1
    )
    await kit.create_round(config)
    close = CloseWindow(
        report_id="close-1", reported_by=OPERATOR, window="registration", reason="kuota terpenuhi"
    )
    # Day 14 (same hour as the opening, so 14 calendar dates whatever the hour): refused.
    await kit.advance_to(t0 + 13 * day)
    with pytest.raises(RefusedError, match=r"open at least 15 calendar days .* this is day 14"):
        await kit.api.command(round_id, close)
    state = await kit.round_state(round_id)
    assert state.phase == "registration" and not state.closed
    assert not [d for d in state.decisions if d.outcome == "registration closed early"]

    # Day 15: the committee may close it early, and the round moves on.
    await kit.advance_to(t0 + 14 * day + timedelta(minutes=1))
    ack = await kit.api.command(round_id, close.model_copy(update={"report_id": "close-2"}))
    assert ack.effect == "registration closed early"

    async def moved_on():
        s = await kit.round_state(round_id)
        return s if "registration" in s.closed else None

    assert (await kit.until(moved_on, "the early close")).phase == "administration"


async def test_an_extension_that_moves_the_later_windows_keeps_each_of_them_whole(kit):
    """The example rounds close registration at 23:59:59 and open the administration at 08:00 the
    next morning: without moving the later windows no extension of days fits. With shift_later
    every later window moves by as much, the TMT stays, and the round keeps the moved closes."""
    t0 = await kit.now()
    day = timedelta(days=1)
    round_id = f"ts-shift-{uuid.uuid4().hex[:6]}"
    schedule = {
        "registration": (0, 15 * DAY),
        "administration": (15 * DAY + 8 * 3600, 25 * DAY),
        "skd": (30 * DAY, 50 * DAY),
        "skb": (51 * DAY, 65 * DAY),
        "filing": (75 * DAY, 90 * DAY),
        "latsar": (90 * DAY, 455 * DAY),
    }
    config = compressed_round(
        round_id,
        [formasi("F1", 2)],
        schedule,
        appeal_window=3 * DAY,
        answer_within=7 * DAY,
        t0=t0,
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + 14 * day)
    extend = ExtendWindow(
        report_id="ext-1",
        reported_by=OPERATOR,
        window="registration",
        new_closes=t0 + 19 * day,
        reason="gangguan portal pada hari terakhir (surat BKN)",
    )
    with pytest.raises(RefusedError, match="after the next window opens .* --shift-later"):
        await kit.api.command(round_id, extend)
    ack = await kit.api.command(round_id, extend.model_copy(update={"shift_later": True}))
    assert ack.effect == "registration extended, the later windows moved by 4 days, 0:00:00"

    state = await kit.round_state(round_id)
    moved = state.schedule
    assert moved.registration.closes == t0 + 19 * day
    for name in ("administration", "skd", "skb", "filing", "latsar"):
        opens, closes = schedule[name]
        window = getattr(moved, name)
        assert (window.opens, window.closes) == (
            t0 + timedelta(seconds=opens) + 4 * day,
            t0 + timedelta(seconds=closes) + 4 * day,
        ), name
    assert moved.tmt == config.schedule.tmt
    [recorded] = [d for d in state.decisions if d.outcome.startswith("registration extended")]
    assert recorded.input["shift_later"] is True and recorded.actor == OPERATOR

    # The administration runs to its moved close: past the old one it is still open.
    await kit.advance_to(t0 + 25 * day + timedelta(hours=1))
    state = await kit.round_state(round_id)
    assert state.phase == "administration" and "administration" not in state.closed
    await kit.advance_to(t0 + 29 * day + timedelta(minutes=10))

    async def administration_closed():
        s = await kit.round_state(round_id)
        return s if "administration" in s.closed else None

    state = await kit.until(administration_closed, "the moved administration close")
    closed = next(
        d for d in state.decisions if d.stage == "administration" and d.outcome == "window closed"
    )
    assert abs(closed.at - (t0 + 29 * day)) < timedelta(minutes=5), closed

    # A shift that would take the round past its span is refused, naming why (SKD is open now).
    late = ExtendWindow(
        report_id="ext-2",
        reported_by=OPERATOR,
        window="skd",
        new_closes=t0 + 54 * day + 1500 * day,
        reason="x",
        shift_later=True,
    )
    with pytest.raises(RefusedError, match="moving the later windows: .*at most"):
        await kit.api.command(round_id, late)


async def test_latsar_cannot_be_extended_past_what_a_round_file_allows(kit):
    """Latsar has no next window to bound its extension: a year's typo was taken and recorded as
    the round's schedule (review of 12-07). The schedule an extension gives is now checked as a
    round file's is (a window lasts at most 731 days); a sound extension still goes."""
    t0 = await kit.now()
    day = timedelta(days=1)
    round_id = f"ts-lat-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    await kit.advance_to(t0 + 96 * day)  # latsar opens at 95 days

    async def in_latsar():
        return (await kit.round_state(round_id)).phase == "latsar"

    await kit.until(in_latsar, "the round in latsar")
    typo = ExtendWindow(
        report_id="lat-typo",
        reported_by=OPERATOR,
        window="latsar",
        new_closes=t0 + 460 * day + timedelta(days=365 * 183),
        reason="a year typed 2209",
    )
    with pytest.raises(RefusedError, match="the schedule it gives: .*at most 731 days"):
        await kit.api.command(round_id, typo)
    assert (await kit.round_state(round_id)).schedule.latsar.closes == t0 + 460 * day
    sound = typo.model_copy(update={"report_id": "lat-ok", "new_closes": t0 + 500 * day})
    assert (await kit.api.command(round_id, sound)).effect == "latsar extended"
    assert (await kit.round_state(round_id)).schedule.latsar.closes == t0 + 500 * day


async def test_an_skd_extension_stays_within_the_national_skd_window(kit):
    """An instansi round that joined a national round sits the national SKD on CAT: its SKD is
    not extended past the national SKD window's close, and the refusal names that close (review
    of 12-07: only the round's own next window bounded it, and an SKD extended past the national
    one was taken). An extension within the national window still goes."""
    t0 = await kit.now()
    day = timedelta(days=1)

    def window(opens: int, closes: int) -> dict:
        return {"opens": (t0 + opens * day).isoformat(), "closes": (t0 + closes * day).isoformat()}

    national_id = f"ts-nat-{uuid.uuid4().hex[:6]}"
    national_file = kit.tmp / f"{national_id}.toml"
    national_file.write_text(
        tomli_w.dumps(
            {
                "national_id": national_id,
                "name": "Seleksi CPNS Nasional Uji",
                "rule_version": "2024.1",
                "schedule": {"registration": window(0, 16), "skd": window(30, 52)},
            }
        )
    )
    _, created = await kit.api.national.create(national_file, OPERATOR)
    assert created
    round_id = f"ts-nsk-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        {
            "registration": (0, 15 * DAY),
            "administration": (20 * DAY, 25 * DAY),
            "skd": (30 * DAY, 50 * DAY),
            "skb": (60 * DAY, 65 * DAY),
            "filing": (75 * DAY, 90 * DAY),
            "latsar": (90 * DAY, 455 * DAY),
        },
        appeal_window=3 * DAY,
        answer_within=7 * DAY,
        offer_within=2 * DAY,
        t0=t0,
        extra={"national_round": national_id, "instansi": "Pemerintah Kota Uji Nasional"},
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + 31 * day)

    async def in_skd():
        return (await kit.round_state(round_id)).phase == "skd"

    await kit.until(in_skd, "the round in its SKD")
    national_close = re.escape((t0 + 52 * day).isoformat())
    past = ExtendWindow(
        report_id="skd-past-national",
        reported_by=OPERATOR,
        window="skd",
        new_closes=t0 + 55 * day,  # before the round's SKB opens: only the national close bounds it
        reason="gangguan CAT",
    )
    with pytest.raises(RefusedError, match=f"national skd window .*closes {national_close}"):
        await kit.api.command(round_id, past)
    within = ExtendWindow(
        report_id="skd-to-national",
        reported_by=OPERATOR,
        window="skd",
        new_closes=t0 + 52 * day,
        reason="gangguan CAT",
    )
    ack = await kit.api.command(round_id, within)
    assert ack.effect == "skd extended"
    assert (await kit.round_state(round_id)).schedule.skd.closes == t0 + 52 * day
