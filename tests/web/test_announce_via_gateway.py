"""Announcements through the gateway, signed by the round's operator with a key the gateway never
holds: the gateway drafts the stage's announcement from the read model, the operator signs the
draft where its key is, and the gateway stores it only if it builds the very body that was signed
and the signature holds under the round's key. `starter.py announce --gateway` does the three
steps with no access to the cluster, corrections included."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import tomli_w
from prometheus_client import REGISTRY

from client.announcements import AnnouncementStage
from client.api import RecruitmentApi, RefusedError
from client.publication import (
    ZERO_SHA256,
    SignedDraft,
    anchor_of,
    audience,
    from_document,
    publish_signed,
    recorded_publications,
)
from domain.codes import Stage
from domain.messages import AdminReport, CloseWindow, RoundState
from domain.protocol import ROUND_STATE
from domain.signing import Keyring, Signer, verify
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from tests.web.conftest import api_key, auth, serving
from tests.web.test_public import _until
from tests.web.test_report_via_gateway import _private, _starter
from tests.web.test_service_api import VERIFIER
from workflows.ids import round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

WINDOWS = {
    "registration": (-60, 300),
    "administration": (300, 600),
    "skd": (600, 900),
    "skb": (900, 1200),
    "filing": (1200, 1500),
    "latsar": (1500, 1800),
}


async def _admin_ready(client, keys, running_worker, folder, prefix, serials, birth):
    """A round whose administrative results are all in the read model, ready to be announced:
    its id, and the applicants' registration numbers."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], WINDOWS, t0=datetime.now(UTC))
    round_file = folder / "round.toml"
    round_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(round_file, OPERATOR)
    ids = []
    for serial in serials:
        result = await api.register(config, registration(serial, "F1", birth=birth), "sscasn")
        assert result.status == "registered", result
        ids.append(result.applicant_id)

    async def close(window: str) -> None:
        await _wait_phase(api, round_id, window)
        await api.command(
            round_id,
            CloseWindow(report_id=f"close-{window}", reported_by=OPERATOR, window=window,
                        reason="all in"),
        )  # fmt: skip

    await close("registration")
    for applicant in ids:
        await _wait_stage(client, round_id, applicant, {Stage.ADMIN_CHECK})
        report = AdminReport(report_id=f"adm-{applicant}", reported_by="bkpsdm-verifikator")
        await api.report(round_id, applicant, report)
    await close("administration")

    async def admin_written():
        return not await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1 AND admin IS NULL", round_id
        )

    await _until("every administrative result in the read model", admin_written)
    return round_id, ids


def _announcements(stage: str, step: str) -> float:
    """casn_announcements_total{stage, step} in this process's registry (the gateway's)."""
    value = REGISTRY.get_sample_value("casn_announcements_total", {"stage": stage, "step": step})
    return value or 0.0


async def _on_record(client, round_id: str) -> dict[int, str]:
    """The publications the round's history has on record: seq -> body hash."""
    state = await client.get_workflow_handle(round_workflow_id(round_id)).query(
        ROUND_STATE.name, result_type=RoundState
    )
    return {seq: sha for seq, (sha, _, _) in recorded_publications(state.decisions).items()}


async def _stored(pool, round_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM publications WHERE round_id = $1", round_id)


def _signed(draft: dict, signer: Signer, **changed) -> dict:
    """What an operator sends back for `draft` (a draft answer's document), signed by `signer`
    after `changed` was made to its body."""
    publication = from_document(draft).model_copy(update=changed)
    return SignedDraft.of(signer.sign(publication, audience(publication.round_id))).model_dump(
        mode="json"
    )


async def test_the_gateway_stores_only_what_the_operator_signed_and_would_publish_now(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    _, pool = running_worker
    round_id, ids = await _admin_ready(
        client, keys, running_worker, tmp_path, "ann-gw", [131, 132], date(1996, 4, 1)
    )
    base = f"/api/v1/rounds/{round_id}/announcements/admin"
    operator = TEST_KEYRING.signers[OPERATOR]
    steps = ("drafted", "refused", "published", "unchanged")
    before = {step: _announcements("admin", step) for step in steps}

    # Only the round's operator drafts; a draft is stored nowhere.
    r = await http.post(f"{base}/drafts", json={}, headers=auth(VERIFIER))
    assert r.status_code == 403, r.text
    first = await http.post(f"{base}/drafts", json={}, headers=auth(OPERATOR))
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["new"], answer["stored"], answer["round_id"]) == (True, False, round_id)
    draft = answer["publication"]
    assert (draft["seq"], draft["prev_sha256"], draft["signature"]) == (1, ZERO_SHA256, "")
    assert draft["reported_by"] == OPERATOR
    assert sorted(r["applicant_id"] for f in draft["formasi"] for r in f["rows"]) == sorted(ids)
    assert await _stored(pool, round_id) == 0
    later = (await http.post(f"{base}/drafts", json={}, headers=auth(OPERATOR))).json()
    assert later["publication"]["published_at"] != draft["published_at"]

    # A draft changed before signing, a key that is not the round's, another caller's draft, a
    # draft older than 30 minutes: each refused, nothing stored.
    f1 = from_document(draft).formasi[0]
    renamed = [f1.model_copy(update={"rows": [f1.rows[0].model_copy(update={"name": "X"})]})]
    r = await http.post(
        base, json=_signed(draft, operator, formasi=renamed), headers=auth(OPERATOR)
    )
    assert r.status_code == 409 and "would not be what was signed" in r.text, r.text
    stranger = Signer.generate(OPERATOR)
    r = await http.post(base, json=_signed(draft, stranger), headers=auth(OPERATOR))
    assert r.status_code == 409 and "signature" in r.json()["detail"], r.text
    r = await http.post(base, json=_signed(draft, operator), headers=auth(VERIFIER))
    assert r.status_code == 403 and "signed by" in r.text, r.text
    stale = SignedDraft.model_validate(_signed(draft, operator))
    async with pool.acquire() as conn:
        with pytest.raises(RefusedError, match="not within 0:30:00 of now"):
            await publish_signed(
                gateway_state.api,
                conn,
                round_id,
                AnnouncementStage.ADMIN,
                stale,
                now=stale.published_at + timedelta(minutes=31),
            )
    assert await _stored(pool, round_id) == 0

    # The draft as drafted, signed: stored, and on the public pages; the same again is a repeat.
    good = _signed(draft, operator)
    r = await http.post(base, json=good, headers=auth(OPERATOR))
    assert r.status_code == 200, r.text
    stored = r.json()
    assert (stored["new"], stored["stored"]) == (True, True)
    published = from_document(stored["publication"])
    assert verify(published, {OPERATOR: operator.public}, audience(round_id)) is None
    assert published.body_sha256() == good["body_sha256"]
    assert await _stored(pool, round_id) == 1
    assert (await http.get(f"/pengumuman/{round_id}/1")).status_code == 200
    again = await http.post(base, json=good, headers=auth(OPERATOR))
    assert again.status_code == 200 and again.json()["stored"] is False, again.text
    # Sent without its record in the round (a client from before records): not on record. The
    # same signature sent again with the record's signature (as after a record that failed to
    # reach the round): on record now.
    assert await _on_record(client, round_id) == {}
    record = Keyring([operator]).sign(anchor_of(published), round_workflow_id(round_id))
    assert record.valid_until is not None
    with_record = {
        **good,
        "anchor_signature": record.signature,
        "anchor_valid_until": record.valid_until.isoformat(),
    }
    again = await http.post(base, json=with_record, headers=auth(OPERATOR))
    assert again.status_code == 200 and again.json()["stored"] is False, again.text
    assert await _on_record(client, round_id) == {1: published.body_sha256()}
    # The later draft, signed after the first was stored: these results are announced already.
    r = await http.post(base, json=_signed(later["publication"], operator), headers=auth(OPERATOR))
    assert r.status_code == 409 and "already announces" in r.text, r.text
    # And a draft now is that publication, signed.
    now = (await http.post(f"{base}/drafts", json={}, headers=auth(OPERATOR))).json()
    assert (now["new"], now["publication"]["signature"]) == (False, good["signature"])
    assert await _stored(pool, round_id) == 1
    # Each step counted: 2 drafts, 3 signatures refused (changed, another key, announced
    # already), 1 published, and the two repeats and the last draft unchanged. (The other
    # refusals were the door's, 403 and the stale draft called directly, not a signature judged.)
    counted = {step: _announcements("admin", step) - n for step, n in before.items()}
    assert counted == {"drafted": 2, "refused": 3, "published": 1, "unchanged": 3}


async def test_starter_announce_through_the_gateway_signs_where_the_key_is(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    _, pool = running_worker
    round_id, ids = await _admin_ready(
        client, keys, running_worker, tmp_path, "ann-cli", [141, 142], date(1996, 4, 2)
    )
    key = _private(tmp_path / "op.key.json", json.dumps(TEST_KEYRING.signers[OPERATOR].jwk()))
    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    data_dir, out = tmp_path / "operator-data", tmp_path / "out"
    async with serving(gateway_state) as url:
        announce = ["announce", round_id, "admin", "--key", str(key), "--out", str(out)]
        announce += ["--gateway", url, "--api-key-file", str(op_key)]
        code, printed, err = await _starter(*announce, data_dir=data_dir)
        assert code == 0, (printed, err)
        assert f"publication 1 of round {round_id} (admin, 2 rows) signed by {OPERATOR}" in printed
        # What the key signed was shown first: the draft's codes per formasi.
        assert f"Signing publication 1 of round {round_id} (admin)" in printed
        shown = next(line for line in printed.splitlines() if line.strip("│ ").startswith("F1"))
        assert [c.strip() for c in shown.strip().strip("│").split("│")] == ["F1", "2", "2"]
        document = json.loads((out / f"{round_id}-1.json").read_text(encoding="utf-8"))
        written = from_document(document)
        operator = TEST_KEYRING.signers[OPERATOR]
        assert verify(written, {OPERATOR: operator.public}, audience(round_id)) is None
        assert (out / f"{round_id}-admin.html").exists() and (
            out / f"{round_id}-admin.csv"
        ).exists()
        assert await _stored(pool, round_id) == 1

        code, printed, err = await _starter(*announce, data_dir=data_dir)
        assert code == 0, (printed, err)
        assert f"unchanged: publication 1 of round {round_id}" in printed
        code, printed, err = await _starter(
            "announce", round_id, "skd", "--key", str(key), "--out", str(out),
            "--gateway", url, "--api-key-file", str(op_key), data_dir=data_dir,
        )  # fmt: skip
        assert code == 1 and "has no skd result yet" in err, (printed, err)

        # A DIS after the announcement, through the gateway too: its results changed, so the
        # announcement is published again only as a correction of number 1.
        through = ["--as", OPERATOR, "--key", str(key), "--gateway", url]
        through += ["--api-key-file", str(op_key)]
        dis = ["disqualify", round_id, ids[0], "--reason", "ijazah palsu", *through]
        code, printed, err = await _starter(*dis, data_dir=data_dir)
        assert code == 0, (printed, err)

        async def dis_written():
            return await pool.fetchval(
                "SELECT terminal = 'DIS' FROM applicants WHERE round_id = $1 AND applicant_id = $2",
                round_id,
                ids[0],
            )

        await _until("the DIS in the read model", dis_written)
        code, printed, err = await _starter(*announce, data_dir=data_dir)
        assert code == 1 and "--corrects 1" in err, (printed, err)
        code, printed, err = await _starter(*announce, "--corrects", "1", data_dir=data_dir)
        assert code == 0, (printed, err)
        assert f"publication 2 of round {round_id} (admin, 2 rows)" in printed
        correction = from_document(json.loads((out / f"{round_id}-2.json").read_text()))
        assert (correction.corrects, correction.prev_sha256) == (1, written.body_sha256())
        assert {r.applicant_id: r.code for _, r in correction.rows()}[ids[0]] == "DIS"
        assert verify(correction, {OPERATOR: operator.public}, audience(round_id)) is None
    assert "dikoreksi oleh" in (await http.get(f"/pengumuman/{round_id}/1")).text
    assert not data_dir.exists()
    assert await _stored(pool, round_id) == 2
    # Both on record in the round's history, as the operator signed the records beside them.
    assert await _on_record(client, round_id) == {
        1: written.body_sha256(),
        2: correction.body_sha256(),
    }
