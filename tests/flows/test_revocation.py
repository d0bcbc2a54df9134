"""DIS or dismissal after the journey ended (issue 14 item 4), on the real dev server and PostgreSQL.

Two winners become PNS; one is then disqualified for cheating found later, the other dismissed by
decree. Each is recorded in the applicant's aftermath (`<journey id>/after`), written to the read
model, shown in the status view, the announcements' endings and `audit.py trail`. Refusals leave
nothing behind; a DIS while the journey runs still goes to the journey.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.readmodel import ReadModel
from auditing.bundle import load_histories
from auditing.history import decisions_of, replay, round_histories
from auditing.provenance import check_provenance
from auditing.readmodel import check as check_read_model
from auditing.readmodel import check_round, projected
from client.announcements import read_results
from client.api import RecruitmentApi, RefusedError
from client.publication import late_endings, revocations
from client.status import applicant_view
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    Dismissal,
    Disqualification,
    FilingReport,
    GateReport,
    LatsarReport,
    SkbScoreReport,
    SkdReport,
)
from domain.protocol import AFTERMATH_STATE
from runtime.connection import data_converter
from runtime.keys import Keys
from runtime.sealed import ColumnCipher
from tests.flows.test_round_end_to_end import _state, _wait_stage
from tests.forked import DRIVER
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    OPERATOR,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    keep_histories,
    registration,
)
from tests.roundkit import (
    test_signer as key_of,
)
from workflows.ids import aftermath_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "histories" / "aftermath-v1"
REVOCATIONS_OF = "SELECT * FROM revocations WHERE round_id = $1 ORDER BY applicant_id, seq"


def _env(settings) -> dict[str, str]:
    """The environment of a command run against the test session's stack."""
    return {
        **os.environ,
        "CASN_DATA_DIR": str(settings.data_dir),
        "CASN_TEMPORAL_PORT": str(settings.temporal_port),
        "CASN_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "CASN_POSTGRES_PORT": str(settings.postgres_port),
    }


async def _to_pns_and_tl(api, client, round_id, ids) -> None:
    """A and B win F1's two seats and pass Latsar (PNS); C loses on rank (TL); D is disqualified
    while its journey runs."""
    a, b, c, d = ids
    for i, x in enumerate(ids):
        await _wait_stage(client, round_id, x, {Stage.ADMIN_CHECK})
        await api.report(
            round_id, x, AdminReport(report_id=f"adm{i}", reported_by="bkpsdm-verifikator")
        )
    running = await api.report(
        round_id, d, Disqualification(report_id="dis-d", reported_by=OPERATOR, reason="joki")
    )
    assert (running.effect, running.stage) == ("disqualified", Stage.ADMIN_CHECK)
    await close_window(api, round_id, "administration")
    for i, x in enumerate((a, b, c)):
        await _wait_stage(client, round_id, x, {Stage.SKD})
        await api.report(
            round_id,
            x,
            SkdReport(
                report_id=f"skd{i}", reported_by="cat-bkn", twk=120 - 10 * i, tiu=140, tkp=190
            ),
        )
    await close_window(api, round_id, "skd")
    for i, x in enumerate((a, b, c)):
        await _wait_stage(client, round_id, x, {Stage.SKB})
        for comp, who, score in (
            ("cat", "cat-bkn", 450 - 40 * i),
            ("praktik", "panel-praktik", 90),
        ):
            await api.report(
                round_id,
                x,
                SkbScoreReport(
                    report_id=f"{comp}{i}", reported_by=who, component=comp, score=score
                ),
            )
        await api.report(
            round_id,
            x,
            GateReport(report_id=f"h{i}", reported_by="rsud", component="health", decision="MS"),
        )
    await close_window(api, round_id, "skb")
    for i, x in enumerate((a, b)):
        await _wait_stage(client, round_id, x, {Stage.FILING}, timeout=60)
        await api.report(
            round_id,
            x,
            FilingReport(report_id=f"drh{i}", reported_by="bkpsdm-verifikator", complete=True),
        )
        await _wait_stage(client, round_id, x, {Stage.LATSAR}, timeout=30)
        await api.report(
            round_id, x, LatsarReport(report_id=f"latsar{i}", reported_by="lan", passed=True)
        )
    await close_window(api, round_id, "filing")
    await close_window(api, round_id, "latsar")
    for x in ids:
        await _wait_stage(client, round_id, x, {Stage.ENDED}, timeout=60)


async def test_dis_and_dismissal_after_the_journey_are_recorded_in_its_aftermath(
    client, keys, running_worker, stack_settings, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"revoke-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [formasi("F1", 2)],
        CLOSED_BY_COMMITTEE,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        t0=t0,
    )
    await create_round_file(api, config, tmp_path)
    ids = [
        (await api.register(config, registration(n, "F1"), "sscasn", now=t0)).applicant_id
        for n in (1, 2, 3, 4)
    ]
    a, b, c, d = ids
    await _to_pns_and_tl(api, client, round_id, ids)
    ended = {x: await _state(client, round_id, x) for x in ids}
    assert [ended[x].terminal.value for x in ids] == ["PNS", "PNS", "TL", "DIS"]

    # Refused, each with its reason, before anything is recorded.
    with pytest.raises(RefusedError, match="only an appointed PNS can be dismissed.*TL"):
        await api.report(
            round_id,
            c,
            Dismissal(report_id="pb-c", reported_by=OPERATOR, decree_no="800/1", reason="x"),
        )
    with pytest.raises(RefusedError, match="already disqualified \\(DIS\\): the journey ended so"):
        await api.report(
            round_id, d, Disqualification(report_id="dis-d2", reported_by=OPERATOR, reason="again")
        )
    unsigned = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key)
    with pytest.raises(RefusedError, match="unsigned"):
        await unsigned.report(
            round_id, a, Disqualification(report_id="dis-a", reported_by=OPERATOR, reason="joki")
        )
    with pytest.raises(RefusedError, match="cat-bkn is not allowed to report operator"):
        await api.report(
            round_id, a, Disqualification(report_id="dis-a", reported_by="cat-bkn", reason="joki")
        )

    # DIS after PNS: accepted by the aftermath, a repeat gets the first answer.
    dis = Disqualification(report_id="dis-a", reported_by=OPERATOR, reason="joki pada SKD")
    ack = await api.report(round_id, a, dis)
    assert (ack.effect, ack.stage) == ("disqualified after the journey ended", Stage.ENDED)
    assert await api.report(round_id, a, dis) == ack
    with pytest.raises(RefusedError, match="already used with different content"):
        await api.report(round_id, a, dis.model_copy(update={"reason": "other"}))
    with pytest.raises(RefusedError, match="disqualified \\(DIS\\) since .*no PNS to dismiss"):
        await api.report(
            round_id,
            a,
            Dismissal(report_id="pb-a", reported_by=OPERATOR, decree_no="800/2", reason="x"),
        )
    # A dismissal of the other PNS, by decree, as an operator sends it (starter.py dismiss).
    key_file = tmp_path / "panitia.key.json"
    key_file.write_text(json.dumps(key_of(OPERATOR).jwk()))
    sacked = await asyncio.to_thread(
        DRIVER.run,
        "starter.py",
        ["dismiss", round_id, b, "--decree", "800/3/2028"]
        + ["--reason", "desersi", "--as", OPERATOR, "--key", str(key_file)],
        {**_env(stack_settings), "CASN_TASK_QUEUE": settings.task_queue, "COLUMNS": "200"},
        ROOT,
        120,
    )
    assert sacked.returncode == 0, sacked.stdout + sacked.stderr
    assert "dismissed after the journey ended" in sacked.stdout

    # The aftermath's history: what the journey ended as, then the decision.
    after = await AFTERMATH_STATE.ask(
        client.get_workflow_handle(aftermath_workflow_id(round_id, a))
    )
    assert (after.journey_terminal.value, after.standing, after.nip) == ("PNS", "DIS", ended[a].nip)
    [decision] = after.decisions
    assert (decision.stage, decision.outcome, decision.actor) == ("ended", "DIS", OPERATOR)
    assert decision.input["journey_terminal"] == "PNS" and decision.input["nip"] == ended[a].nip

    # The read model: the revocation, the decision after the journey's, the notification.
    rows = await pool.fetch(
        "SELECT applicant_id, code, journey_terminal, decree_no FROM revocations "
        "WHERE round_id = $1 ORDER BY applicant_id",
        round_id,
    )
    assert sorted(tuple(r) for r in rows) == sorted(
        [(a, "DIS", "PNS", None), (b, "DIBERHENTIKAN", "PNS", "800/3/2028")]
    )
    last = await pool.fetchrow(
        "SELECT seq, stage, outcome FROM decisions WHERE round_id = $1 AND applicant_id = $2 "
        "ORDER BY seq DESC LIMIT 1",
        round_id,
        a,
    )
    assert tuple(last) == (len(ended[a].decisions), "ended", "DIS")
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1 AND applicant_id = $2 "
            "AND key = 'after-DIS'",
            round_id,
            a,
        )
        == 1
    )

    # The status view, the announcements' endings.
    view = await applicant_view(api, round_id, a)
    assert (view.terminal.value, view.standing, view.revocations[0].code) == ("PNS", "DIS", "DIS")
    assert "setelah seleksi berakhir" in view.decisions[-1].reason
    assert (await applicant_view(api, round_id, b)).standing == "DIBERHENTIKAN"
    looked_up = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "starter.py", "lookup", round_id, "--applicant", b],
        env={**_env(stack_settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert looked_up.returncode == 0, looked_up.stdout + looked_up.stderr
    assert "Diberhentikan since" in looked_up.stdout and "decree 800/3/2028" in looked_up.stdout
    endings = await late_endings(pool, round_id)
    assert (endings[a], endings[b], endings[d]) == ("DIS", "DIBERHENTIKAN", "DIS")
    assert set(await revocations(pool, round_id)) == {a, b}
    async with pool.acquire() as conn:
        listed = {r.applicant_id: r.terminal for r in await read_results(conn, round_id)}
    assert (listed[a], listed[b]) == ("DIS", "PNS")  # a DIS annuls the result; a dismissal not

    # The auditor: the trail shows the aftermath's decision after the journey's; signatures hold.
    trail = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "audit.py", "trail", round_id, a, "--json"],
        env=_env(stack_settings),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert trail.returncode == 0, trail.stdout + trail.stderr
    out = json.loads(trail.stdout)
    outcomes = [(x["stage"], x["outcome"]) for x in out["decisions"]]
    assert outcomes[-2:] == [("latsar", "PNS"), ("ended", "DIS")]
    assert len(out["runs"]) == 2 and out["divergences"] == []
    histories = await round_histories(client, round_id)
    assert {h.kind for h in histories} >= {"journey", "round", "aftermath"}
    check = await check_provenance(histories, data_converter(keys))
    assert check.problems == []
    # The read model holds what the journeys and the aftermaths wrote, derived from their
    # histories alone (audit.py check-read-model): the aftermaths' decisions after the journeys'.
    derived = await projected(round_id, histories, data_converter(keys))
    assert sorted(derived.projections) == sorted(ids)
    assert len(derived.projections[a]) > len(derived.projections[c])  # a's aftermath wrote too
    read_model = await check_read_model(pool, derived)
    assert read_model.ok and read_model.applicants == 4, read_model.differences
    # A journey at a time: its aftermath replayed with it, after it.
    streamed = await check_round(client, pool, round_id, data_converter(keys), chunk=1)
    assert streamed.ok and streamed.applicants == 4, streamed.differences
    # The revocations, which the announcements and the portal read, are checked and made good too.
    assert sorted(derived.revocations) == sorted([a, b])
    before = [dict(r) for r in await pool.fetch(REVOCATIONS_OF, round_id)]
    await pool.execute("DELETE FROM revocations WHERE round_id = $1 AND applicant_id = $2", round_id, a)  # fmt: skip
    await pool.execute("UPDATE revocations SET decree_no = 'KEP/0/FORGED' WHERE round_id = $1 AND applicant_id = $2", round_id, b)  # fmt: skip
    await pool.execute("INSERT INTO revocations SELECT round_id, $2, seq, code, at, journey_terminal, decree_no, reported_by, report_id FROM revocations WHERE round_id = $1 AND applicant_id = $3", round_id, "R-NOBODY", b)  # fmt: skip
    damaged = await check_read_model(pool, derived)
    assert sorted((d.kind, d.applicant_id, d.detail) for d in damaged.differences) == sorted(
        [
            ("revocation missing", a, "seq 0"),
            ("revocation altered", b, "seq 0: decree_no"),
            ("revocation without history", "R-NOBODY", "seq 0"),
        ]
    )
    fixed = await check_round(
        client, pool, round_id, data_converter(keys), ReadModel(pool, ColumnCipher.from_keys(keys))
    )
    assert [(d.kind, d.applicant_id) for d in fixed.differences] == [
        ("revocation without history", "R-NOBODY")
    ]
    assert fixed.repaired == 2
    await pool.execute("DELETE FROM revocations WHERE round_id = $1 AND applicant_id = 'R-NOBODY'", round_id)  # fmt: skip
    assert [dict(r) for r in await pool.fetch(REVOCATIONS_OF, round_id)] == before
    if os.environ.get("CASN_RECORD_AFTERMATH"):  # re-record tests/histories/aftermath-v1
        keep_histories(RECORDED, [h for h in histories if h.kind == "aftermath"], keys.payload_key)


async def test_recorded_aftermath_histories_replay_with_the_current_code():
    """Histories of ApplicantAftermath recorded by the test above (a DIS after PNS, a dismissal,
    a refused dismissal of a TL) replay with no non-determinism and re-derive their decisions."""
    histories = load_histories(RECORDED)
    assert {h.kind for h in histories} == {"aftermath"}
    key = base64.b64decode((RECORDED / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    outcomes = await replay([h.history for h in histories], converter)
    assert [(o.workflow_id, o.failure) for o in outcomes if not o.ok] == []
    derived = sorted(d.outcome for d in decisions_of(outcomes))
    assert derived == ["DIBERHENTIKAN", "DIS"]
