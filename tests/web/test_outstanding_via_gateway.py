"""What the journeys still await before a close, read through the gateway by the round's operators
(`GET /api/v1/rounds/{round}/outstanding`, `starter.py outstanding --gateway`), with no access to
Temporal or the database; nobody else reads it."""

from __future__ import annotations

import json

import pytest

from client.api import RecruitmentApi
from client.outstanding import Outstanding
from gateway.limits import RateLimiter
from tests.flows.test_outstanding import round_at_skd
from tests.flows.test_panels import KEYRING
from tests.roundkit import OPERATOR
from tests.web.conftest import api_key, auth, serving
from tests.web.test_report_via_gateway import _private, _starter
from tests.web.test_service_api import VERIFIER

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_round_s_operator_reads_what_is_outstanding_and_no_one_else_does(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=KEYRING)
    round_id, (a, b, c) = await round_at_skd(api, client, tmp_path, "outstanding-api")
    path = f"/api/v1/rounds/{round_id}/outstanding"

    r = await http.get(path, headers=auth(OPERATOR))
    assert r.status_code == 200, r.text
    shown = Outstanding.model_validate(r.json())
    [f1] = shown.formasi
    assert f1.at_stage == {"admin_check": 0, "skd": 3, "skb": 0, "latsar": 0}
    assert [(m.component, [x.applicant_id for x in m.applicants]) for m in f1.reports] == [
        ("skd", [c])
    ]
    assert r.headers["cache-control"] == "no-store"

    other = await http.get(path, headers=auth(VERIFIER))
    assert other.status_code == 403, other.text
    assert "not an operator of round" in other.json()["detail"]
    assert (await http.get(path)).status_code == 401
    unknown = await http.get(f"{path}?formasi=F9", headers=auth(OPERATOR))
    assert unknown.status_code == 404, unknown.text
    assert f"formasi F9 is not in round {round_id}" in unknown.json()["detail"]
    assert (await http.get(f"{path}?formasi=F%2F9", headers=auth(OPERATOR))).status_code == 422

    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    data_dir = tmp_path / "operator-data"
    async with serving(gateway_state) as url:
        through = ["--gateway", url, "--api-key-file", str(op_key)]
        code, out, err = await _starter(
            "outstanding", round_id, "--json", *through, data_dir=data_dir
        )
        assert code == 0, (out, err)
        printed = Outstanding.model_validate(json.loads(out))
        assert [x.applicant_id for x in printed.formasi[0].reports[0].applicants] == [c]
        code, out, err = await _starter("outstanding", round_id, *through, data_dir=data_dir)
        assert code == 0, (out, err)
        assert "SKD window: closes" in out and c in out and a not in out
        # A formasi the round does not have, and no such round: refused (exit 1).
        code, out, err = await _starter(
            "outstanding", round_id, "--formasi", "F9", *through, data_dir=data_dir
        )
        assert code == 1 and "formasi F9 is not in round" in err, (out, err)
        code, out, err = await _starter("outstanding", "no-such-round", *through, data_dir=data_dir)
        assert code == 1, (out, err)
    assert not data_dir.exists()

    # Each read is a history read per applicant at the stage: an operator's reads are counted
    # (OUTSTANDING_PER_MINUTE), here one a minute.
    gateway_state.outstanding_limit = RateLimiter(1)
    assert (await http.get(path, headers=auth(OPERATOR))).status_code == 200
    held = await http.get(path, headers=auth(OPERATOR))
    assert held.status_code == 429, held.text
    assert int(held.headers["retry-after"]) >= 1
    assert "reads of what is outstanding" in held.json()["detail"]
