"""The sanggah against the final result and TMT moves on the real stack (issue 14).

The runner-up files a sanggah within the window of the final announcement; the instansi accepts
it and corrects the SKB CAT score, which puts the runner-up ahead. The formasi ranks again when
the round closes the sanggah, before anyone files or gets an NIP: the winner of the first ranking
goes to optimalisasi, the runner-up on to filing. Both rankings are recorded and `recompute`
finds the confirmed one again from the histories. A TMT move before the NIP gives the NIP its
month; a move after it changes the SK's TMT and the record, never the NIP.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from activities.pages import PageStore
from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi, RefusedError
from domain.codes import Stage
from domain.messages import (
    AppealAnswer,
    AppealFiling,
    FilingReport,
    MoveTmt,
)
from domain.pages import LINES, PageRef, ids_of
from runtime.connection import data_converter
from runtime.sealed import ColumnCipher
from tests.flows.test_round_end_to_end import _state, _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    OPERATOR,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    play_to_skb_close,
    registration,
)
from workflows.ids import formasi_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _move_tmt(api, round_id: str, new: date, n: int) -> None:
    await api.command(
        round_id,
        MoveTmt(
            report_id=f"tmt-{n}", reported_by=OPERATOR, new_tmt=new, reason="keputusan pemerintah"
        ),
    )


async def test_an_accepted_final_sanggah_ranks_again_and_tmt_moves_follow_the_rule(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"sanggah-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id, [formasi("F1", 1)], CLOSED_BY_COMMITTEE, appeal_window=4, answer_within=4, t0=t0
    )
    await create_round_file(api, config, tmp_path)
    base = uuid.uuid4().int % 8000 + 1000  # people of its own: a NIP holds its first TMT
    first, second = [
        (await api.register(config, registration(base + n, "F1"), "sscasn", now=t0)).applicant_id
        for n in (1, 2)
    ]
    assert config.schedule.tmt == date(2027, 3, 1)

    await play_to_skb_close(
        api, client, round_id, [first, second], cat=lambda i: (450, 400)[i], praktik=80
    )

    # The first ranking: `first` wins. Both wait in the final sanggah, nobody files yet.
    runner_up = await _wait_stage(client, round_id, second, {Stage.FINAL_APPEAL}, timeout=30)
    assert runner_up.final_code.value == "TL"
    assert (await _state(client, round_id, first)).final_code.value == "P/L"
    with pytest.raises(RefusedError, match="filing"):
        await api.report(
            round_id,
            first,
            FilingReport(report_id="early", reported_by="bkpsdm-verifikator", complete=True),
        )

    # A TMT move before any NIP.
    await _move_tmt(api, round_id, date(2027, 7, 1), 1)

    await api.report(
        round_id,
        second,
        AppealFiling(report_id="sanggah", reported_by="sscasn", reason="nilai CAT SKB keliru"),
    )
    with pytest.raises(RefusedError, match="once"):
        await api.report(
            round_id,
            second,
            AppealFiling(report_id="sanggah-2", reported_by="sscasn", reason="lagi"),
        )
    with pytest.raises(RefusedError, match="corrected_scores: 'health'"):
        await api.report(
            round_id,
            second,
            AppealAnswer(
                report_id="jawab-0",
                reported_by="bkpsdm-verifikator",
                accepted=True,
                corrected_scores={"health": 90},
            ),
        )
    await api.report(
        round_id,
        second,
        AppealAnswer(
            report_id="jawab",
            reported_by="bkpsdm-verifikator",
            accepted=True,
            note="nilai CAT dikoreksi",
            corrected_scores={"cat": 490},
        ),
    )

    # The confirmed ranking: `second` wins, `first` goes to optimalisasi.
    winner = await _wait_stage(client, round_id, second, {Stage.FILING}, timeout=40)
    assert (winner.final_code.value, winner.placed_formasi) == ("P/L", "F1")
    confirmed = [
        d for d in winner.decisions if d.stage == "final_appeal" and d.outcome != "TMT moved"
    ]
    assert [d.outcome for d in confirmed] == ["accepted", "P/L"]
    assert confirmed[0].input["corrected_scores"] == {"cat": 490.0}
    assert confirmed[0].input["old_final_score"] != confirmed[0].input["new_final_score"]
    assert confirmed[1].input["changed"] is True
    loser = await _wait_stage(client, round_id, first, {Stage.OPTIMALISASI}, timeout=30)
    assert loser.final_code.value == "TL" and loser.placed_formasi is None
    assert [d.input.get("changed") for d in loser.decisions if d.outcome == "TL"][-1] is True

    formasi_state = await client.get_workflow_handle(formasi_workflow_id(round_id, "F1")).query(
        "state"
    )
    rankings = {
        d["outcome"]: d["input"]
        for d in formasi_state["decisions"]
        if d["stage"] == "final_ranking"
    }
    # Both rankings are recorded by their pages (patch paged-ranking), read here from the store.
    store = PageStore(pool, ColumnCipher.from_keys(keys))

    async def winners(ranking: dict) -> list[str]:
        refs = ranking["winner_pages"]
        assert len(refs) == 1 and ranking["winners_count"] == 1
        row = await pool.fetchrow("SELECT items FROM pages WHERE digest = $1", refs[0])
        page = PageRef(digest=refs[0], count=row["items"])
        return ids_of(await store.get(LINES, page))

    assert await winners(rankings["ranked"]) == [first]
    assert await winners(rankings["confirmed"]) == [second]
    assert rankings["confirmed"]["changed"] is True
    assert [c[0] for c in rankings["confirmed"]["corrections"]] == [second]

    # NIP after filing: its month is the TMT in force (July), then a move after it.
    await api.report(
        round_id,
        second,
        FilingReport(report_id="drh", reported_by="bkpsdm-verifikator", complete=True),
    )
    cpns = await _wait_stage(client, round_id, second, {Stage.LATSAR}, timeout=30)
    assert cpns.nip is not None and cpns.nip[8:14] == "202707", cpns.nip
    assert cpns.tmt == date(2027, 7, 1)
    await _move_tmt(api, round_id, date(2027, 10, 1), 2)
    for _ in range(100):
        moved = await _state(client, round_id, second)
        row = await pool.fetchrow(
            "SELECT tmt FROM applicants WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            second,
        )
        if moved.tmt == date(2027, 10, 1) and row["tmt"] == date(2027, 10, 1):
            break
        await _sleep()
    assert moved.tmt == date(2027, 10, 1) and moved.nip == cpns.nip
    assert row["tmt"] == date(2027, 10, 1)
    tmt_decisions = [d.input for d in moved.decisions if d.outcome == "TMT moved"]
    assert [(d["from"], d["to"]) for d in tmt_decisions] == [
        ("2027-03-01", "2027-07-01"),
        ("2027-07-01", "2027-10-01"),
    ]

    await close_window(api, round_id, "filing")
    await _wait_stage(client, round_id, first, {Stage.ENDED}, timeout=30)
    await _wait_phase(api, round_id, "latsar")

    # The auditor's recompute ranks the corrected entries as the confirmed ranking did.
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert result.differences() == []
    announced, recomputed = {a.formasi_code: (a, r) for a, r in result.pairs}["F1"]
    # Recorded as pages (patch paged-ranking), which the recompute built again and found equal.
    assert announced.winner_pages and [w for w, _ in recomputed.winners] == [second]


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.2)
