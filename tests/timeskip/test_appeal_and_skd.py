"""The administrative appeal (sanggah) deadlines and the SKD close, on a round scheduled in days.

Schedule (days after t0, a day at 16:00 WIT): registration 0-15, administration 15-18 (announced at
its close), appeal window 3 calendar days from the announcement, answer within 7 days of filing,
SKD 25-55. The round is an instansi in Papua (Asia/Jayapura): each period of days ends at 24:00 WIT
of its last day (docs/ARCHITECTURE.md, "Time and calendars"). Expectations are written from
DOMAIN.md, stage 4 and 5.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from client.api import RefusedError
from domain.administration import DocumentFinding
from domain.codes import AdminDecision, SkdCode, Stage, Terminal
from domain.messages import AdminReport, AppealAnswer, AppealFiling, SkdReport
from tests.roundkit import compressed_round, formasi, registration
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds
VERIFIER = "bkpsdm-verifikator"
TMS = [DocumentFinding(document="ijazah", reason="not legalised")]
CLOSE_ENOUGH = timedelta(minutes=5)  # timers fire at their time; tasks take real milliseconds


def near(moment, expected) -> bool:
    return abs(moment - expected) < CLOSE_ENOUGH


async def closed_at(kit, round_id: str, applicant_id: str):
    """When the journey's workflow ended (the trail's last decision may be the earlier TMS: see below)."""
    return (
        await kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id)).describe()
    ).close_time


WIT = ZoneInfo("Asia/Jayapura")


async def test_appeal_windows_and_absent_at_skd_close(kit):
    # t0 is a day at 16:00 WIT, after the test server's now: the announcement is at 16:00 WIT too.
    day = timedelta(days=1)
    tomorrow = (await kit.now()).astimezone(WIT).date() + day
    t0 = datetime.combine(tomorrow, time(16), WIT)
    round_id = f"ts-appeal-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        {
            "registration": (0, 15 * DAY),
            "administration": (15 * DAY, 18 * DAY),
            "skd": (25 * DAY, 55 * DAY),
            "skb": (56 * DAY, 70 * DAY),
            "filing": (80 * DAY, 95 * DAY),
            "latsar": (95 * DAY, 460 * DAY),
        },
        appeal_window=3 * DAY,
        answer_within=7 * DAY,
        offer_within=2 * DAY,
        t0=t0,
        extra={"timezone": "Asia/Jayapura"},
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + day)
    # heard: files on day 2 of the window, accepted; last: files at 23:50 WIT on day 3, 72 hours
    # after the announcement and more; late: tries after day 3 has ended; silent: appeal never
    # answered; rejected: appeal answered "no"; present: MS and sits SKD; absent: MS, never sits SKD.
    names = ["heard", "last", "late", "silent", "rejected", "present", "absent"]
    ids = {
        n: await kit.register(config, registration(i, "F1")) for i, n in enumerate(names, start=1)
    }

    async def report(name, message):
        return await kit.api.report(round_id, ids[name], message)

    for name in names:
        await kit.journey_at(round_id, ids[name], Stage.ADMIN_CHECK)
        findings = TMS if name in ("heard", "last", "late", "silent", "rejected") else []
        await report(
            name,
            AdminReport(report_id=f"adm-{name}", reported_by=VERIFIER, findings=findings),
        )
    # Before the announcement nobody can appeal: the result is not out.
    with pytest.raises(RefusedError, match="only a TMS result can be appealed|not been announced"):
        await report(
            "heard",
            AppealFiling(report_id="early", reported_by="sscasn", reason="x"),
        )

    announced = t0 + 18 * day
    await kit.advance_to(announced + timedelta(hours=1))
    for name in ("heard", "last", "late", "silent", "rejected"):
        s = await kit.journey_at(round_id, ids[name], Stage.ADMIN_APPEAL)
        assert s.admin == AdminDecision.TMS
    for name in ("present", "absent"):
        assert (await kit.journey_at(round_id, ids[name], Stage.SKD)).admin == AdminDecision.MS

    # Day 2 of the appeal window: heard, silent and rejected file.
    await kit.advance_to(announced + 2 * day)
    for name in ("heard", "silent", "rejected"):
        ack = await report(
            name,
            AppealFiling(
                report_id=f"appeal-{name}", reported_by="sscasn", reason="the ijazah was legalised"
            ),
        )
        assert ack.effect == "appeal filed"
    filed_at = await kit.now()

    # 23:50 WIT on the third day, 79 hours 50 minutes after the announcement: still in the window.
    closes = datetime.combine(announced.astimezone(WIT).date() + 4 * day, time(0), WIT)
    await kit.advance_to(closes - timedelta(minutes=10))
    ack = await report(
        "last",
        AppealFiling(report_id="appeal-last", reported_by="sscasn", reason="ijazah dilegalisir"),
    )
    assert ack.effect == "appeal filed"

    # After 24:00 WIT of the third day: the window is closed, the appeal is refused and "late"
    # ended TMS at the close.
    # (What the refusal says is checked in test_late_appeal_refusal_names_the_closed_window.)
    await kit.advance_to(closes + timedelta(minutes=10))
    with pytest.raises(RefusedError, match="appeal-late"):
        await report(
            "late",
            AppealFiling(
                report_id="appeal-late", reported_by="sscasn", reason="the ijazah was legalised"
            ),
        )
    late = await kit.journey_at(round_id, ids["late"], Stage.ENDED)
    assert (late.terminal, late.admin) == (Terminal.TMS, AdminDecision.TMS)
    assert "no appeal within the appeal window" in late.terminal_reason
    assert near(await closed_at(kit, round_id, ids["late"]), closes)
    assert not any(
        d.stage == Stage.ADMIN_APPEAL and d.outcome == "appeal filed" for d in late.decisions
    )

    # The instansi answers on day 4 (within its 7 days): heard accepted, rejected refused.
    await kit.advance_to(announced + 4 * day)
    await report(
        "heard",
        AppealAnswer(report_id="ans-heard", reported_by=VERIFIER, accepted=True),
    )
    await report(
        "rejected",
        AppealAnswer(
            report_id="ans-rej",
            reported_by=VERIFIER,
            accepted=False,
            note="ijazah still not legalised",
        ),
    )
    heard = await kit.journey_at(round_id, ids["heard"], Stage.SKD)
    assert heard.admin == AdminDecision.MS and heard.terminal is None
    rejected = await kit.journey_at(round_id, ids["rejected"], Stage.ENDED)
    assert rejected.terminal == Terminal.TMS
    assert rejected.terminal_reason == "TMS; appeal rejected: ijazah still not legalised"

    # Seven days after filing (16:00 WIT) the silent appeal is still pending: the instansi has until
    # 24:00 WIT of the seventh day. After it, it ends with its reason.
    due = datetime.combine(filed_at.astimezone(WIT).date() + 8 * day, time(0), WIT)
    await kit.advance_to(filed_at + 7 * day + timedelta(minutes=10))
    silent = await kit.journey(round_id, ids["silent"])
    assert (silent.stage, silent.terminal) == (Stage.ADMIN_APPEAL, None)
    await kit.advance_to(due + timedelta(minutes=10))
    silent = await kit.journey_at(round_id, ids["silent"], Stage.ENDED)
    assert silent.terminal == Terminal.TMS
    assert silent.terminal_reason == "TMS; the appeal was not answered within its time"
    assert near(await closed_at(kit, round_id, ids["silent"]), due)

    # SKD (days 25-55): heard and present sit it; absent does not.
    await kit.advance_to(t0 + 30 * day)
    for name in ("heard", "present"):
        await report(
            name,
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=100, tiu=120, tkp=180),
        )
    await kit.advance_to(t0 + 54 * day)
    absent = await kit.journey(round_id, ids["absent"])
    assert (absent.stage, absent.terminal) == (
        Stage.SKD,
        None,
    )  # still waiting while the window is open

    skd_closes = t0 + 55 * day
    await kit.advance_to(skd_closes + timedelta(hours=1))
    absent = await kit.journey_at(round_id, ids["absent"], Stage.ENDED)
    assert (absent.terminal, absent.skd_code) == (Terminal.ABSENT, SkdCode.ABSENT)
    assert absent.terminal_reason == "TH: did not sit the SKD"
    th = next(d for d in absent.decisions if d.outcome == "TH" and d.stage == Stage.SKD)
    assert near(th.at, skd_closes), th
    with pytest.raises(RefusedError, match="skd-late"):  # the journey has ended
        await report(
            "absent",
            SkdReport(report_id="skd-late", reported_by="cat-bkn", twk=100, tiu=120, tkp=180),
        )
    # The accepted appeal went all the way on: P/L to SKB (quota 1, cut 3, two passers).
    for name in ("heard", "present"):
        s = await kit.journey_at(round_id, ids[name], Stage.SKB)
        assert s.skd_code == SkdCode.PASSED_TO_SKB
