"""A worker stopped in the middle of SKD and a new one started: the round goes on, effects happen once."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from apps.fleet import build_worker
from client.api import RecruitmentApi
from domain.messages import FormasiState, SkdReport
from runtime.db import open_pool
from tests.flows.test_formasi_continue_as_new import (
    close,
    drive_to_skd,
    expected_codes,
    journey,
    register_all,
    report_skd,
    skd_scores,
    start_round,
    terminate_round,
    wait_skd_codes,
)
from tests.roundkit import TEST_KEYRING
from workflows.ids import formasi_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_worker_restart_mid_skd(client, keys, stack, stack_settings, tmp_path):
    started = time.monotonic()
    count, quota = 24, 2
    settings = stack_settings.model_copy(update={"task_queue": f"restart-{uuid.uuid4().hex[:8]}"})
    pool = await open_pool(stack.database_url, max_size=8)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"restart-{uuid.uuid4().hex[:6]}"
    scores = skd_scores(count, quota, seed=3)
    serials = sorted(ids_ for ids_ in scores)
    first_half, second_half = serials[: count // 2], serials[count // 2 :]
    try:
        async with await build_worker(client, settings, pool):
            config = await start_round(api, round_id, quota, tmp_path)
            ids = await register_all(api, config, count)
            await drive_to_skd(client, api, config, ids)
            await report_skd(api, round_id, ids, scores, first_half)
        # The first worker is gone (its context drained and exited); a new one takes the same queue
        # with an empty cache, so every workflow is replayed from its history.
        async with await build_worker(client, settings, pool):
            # the reports sent before the restart are answered from the record, not applied again
            for s in first_half:
                if scores[s] is None:
                    continue
                twk, tiu, tkp = scores[s]
                ack = await api.report(
                    round_id,
                    ids[s],
                    SkdReport(
                        report_id=f"skd-{s}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp
                    ),
                )
                assert ack.effect == "SKD scores recorded" and ack.applicant_id == ids[s]
            await report_skd(api, round_id, ids, scores, second_half)
            await close(api, round_id, "skd")
        # A second restart while the formasi collects the SKD replies and announces the cut.
        async with await build_worker(client, settings, pool):
            codes = await wait_skd_codes(client, round_id, ids)
            assert codes == expected_codes(scores, quota)

            formasi = await client.get_workflow_handle(formasi_workflow_id(round_id, "F1")).query(
                "state", result_type=FormasiState
            )
            cuts = [d for d in formasi.decisions if d.outcome == "cut"]
            assert len(cuts) == 1 and cuts[0].input["replies"] == count

            await _read_model_matches(client, pool, round_id, ids, scores)
            await terminate_round(client, round_id)
    finally:
        await pool.close()
    assert time.monotonic() - started < 60


async def _read_model_matches(
    client, pool, round_id: str, ids: dict[int, str], scores, timeout: float = 20.0
) -> None:
    """The read model's decisions equal each journey's own, and every report is there once."""
    deadline = time.monotonic() + timeout
    while True:
        problems = []
        for serial, applicant_id in ids.items():
            state = await journey(client, round_id, applicant_id)
            rows = await pool.fetch(
                "SELECT seq, stage, outcome, actor FROM decisions WHERE round_id=$1 AND applicant_id=$2 "
                "ORDER BY seq",
                round_id,
                applicant_id,
            )
            # The trail's skeleton: the inputs stay in the history only (migration 007).
            ours = [(d.stage, d.outcome, d.actor) for d in state.decisions]
            theirs = [(r["stage"], r["outcome"], r["actor"]) for r in rows]
            if [r["seq"] for r in rows] != list(range(len(rows))) or theirs != ours:
                problems.append((serial, [o[1] for o in ours], [t[1] for t in theirs]))
            outcomes = [d.outcome for d in state.decisions]
            assert outcomes.count("MS") == 1, outcomes
            assert sum(o in ("P/L", "P", "T/L", "TH") for o in outcomes) == 1, outcomes
            reports = await pool.fetch(
                "SELECT report_id, kind FROM stage_reports WHERE round_id=$1 AND applicant_id=$2 ORDER BY report_id",
                round_id,
                applicant_id,
            )
            expected_reports = [(f"adm-{serial}", "admin")]
            if scores[serial] is not None:
                expected_reports.append((f"skd-{serial}", "skd"))
            if [(r["report_id"], r["kind"]) for r in reports] != sorted(expected_reports):
                problems.append((serial, "reports", [tuple(r) for r in reports]))
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"read model differs from the journeys: {problems[:3]}")
        await asyncio.sleep(0.5)
