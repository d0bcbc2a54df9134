"""A journey decodes each report once: its validator's decoding is the one its handler uses.

Issue 17 item 6 found every report decoded twice per acknowledgement (validator, then handler).
Decodings are counted on the report's class, which the workflow sandbox shares with this
process; a replay (no validator runs then) decodes in the handler, which the replay tests cover.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from client.api import RefusedError
from domain.codes import Stage
from domain.messages import AdminReport
from tests.roundkit import compressed_round, formasi, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400


async def test_a_report_is_decoded_once_per_acknowledgement(kit, monkeypatch):
    decoded: list[str] = []
    original = AdminReport.model_validate_json

    def counting(data, **kwargs):
        decoded.append("report_admin")
        return original(data, **kwargs)

    monkeypatch.setattr(AdminReport, "model_validate_json", counting)
    t0 = await kit.now()
    round_id = f"ts-decode-{uuid.uuid4().hex[:6]}"
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
        t0=t0,
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(days=1))
    applicant = await kit.register(config, registration(1, "F1"))
    await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)

    decoded.clear()
    report = AdminReport(report_id="adm-1", reported_by="bkpsdm-verifikator")
    first = await kit.api.report(round_id, applicant, report)
    assert decoded == ["report_admin"]  # validated and applied from one decoding
    assert await kit.api.report(round_id, applicant, report) == first  # a repeat: its first answer
    # The same update to the server (client.api.update_id): answered from the server's record of
    # the first, the journey does not see it again.
    assert decoded == ["report_admin"]
    with pytest.raises(RefusedError):
        await kit.api.report(
            round_id, applicant, report.model_copy(update={"reported_by": "stranger"})
        )
    assert len(decoded) == 2  # refused in the validator: nothing to apply
