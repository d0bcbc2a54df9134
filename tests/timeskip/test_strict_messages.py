"""Messages are read strictly where they are judged: inside the journey, naming the field.

Before, JSON `true` was taken as a score of 1, `"120 "` as 120, and a type error came back as
"Failed decoding arguments", naming no field.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from domain.messages import Ack
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPORT = {"report_id": "skd-1", "reported_by": "cat-bkn", "twk": 100, "tiu": 100, "tkp": 170}
CASES = [
    ("a bool as a score", {"twk": True}, "twk: Value error, true is not a score: send the number"),
    ("a padded number", {"tiu": "120 "}, "tiu: Input should be a valid integer (got '120 ')"),
    ("a missing field", {"tkp": None}, "tkp: Input should be a valid integer (got None)"),
    ("an unknown update", None, "update report_scores for applicant"),
]


@pytest.mark.parametrize(("case", "change", "said"), CASES, ids=[c[0] for c in CASES])
async def test_a_malformed_report_is_refused_naming_the_field(kit, case, change, said):
    t0, round_id, applicant = await kit.one_at_admin_check("ts-strict")
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    name = "report_scores" if change is None else "report_skd"

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(name, {**REPORT, **(change or {})}, result_type=Ack)

    assert said in str(refused.value.cause)
    assert (await kit.journey(round_id, applicant)).skd_total is None
