"""A panel change that reaches a journey after the round closed the SKB does not count (patch
panel-change-after-close): the round closes at one instant and its formasi tells each journey a
little later, and in between the committee could still record a conflict that struck a panellist's
score, and the SKB was composed without it. A score arriving then was already left out; now a
conflict or a review is too, and the auditor's recompute leaves it out as the journey did."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from domain.codes import Phase, Stage
from domain.messages import ConflictDeclaration, GateReport, SkbScoreReport
from runtime.connection import data_converter
from runtime.db import open_pool
from scripts.record_histories import HeldBroadcasts, patch_markers, worker_holding_broadcasts
from tests.flows.test_panels import KEYRING, _last_panel, _panel_score, create_panel_round
from tests.flows.test_round_end_to_end import _state, _wait_stage
from tests.roundkit import OPERATOR, close_window, play_to_skb, registration
from workflows.versions import PANEL_CHANGE_AFTER_CLOSE

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_conflict_recorded_after_the_skb_closed_strikes_no_score(
    client, keys, stack, stack_settings, tmp_path
):
    settings = stack_settings.model_copy(update={"task_queue": f"held-{uuid.uuid4().hex[:8]}"})
    pool = await open_pool(stack.database_url, max_size=4)
    held = HeldBroadcasts()
    try:
        async with await worker_holding_broadcasts(client, settings, pool, held):
            api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=KEYRING)
            config, t0 = await create_panel_round(api, tmp_path, "late-coi")
            round_id = config.round_id
            a = (await api.register(config, registration(71, "F1"), "sscasn", now=t0)).applicant_id
            await play_to_skb(api, client, round_id, [a])
            panel = _last_panel(await _state(client, round_id, a))
            for who, score in zip(panel, (80, 78, 76), strict=True):
                await api.report(round_id, a, _panel_score(who, score))
            for comp, who, score in (("cat", "cat-bkn", 400), ("praktik", "panel-praktik", 80)):
                await api.report(
                    round_id,
                    a,
                    SkbScoreReport(report_id=comp, reported_by=who, component=comp, score=score),
                )
            await api.report(
                round_id,
                a,
                GateReport(report_id="h", reported_by="rsud", component="health", decision="MS"),
            )
            # The round closes the SKB; F1's word of it to its journey is held meanwhile.
            reached, release = held.hold(round_id, "F1", Phase.SKB_CLOSED)
            await close_window(api, round_id, "skb")
            await asyncio.wait_for(reached.wait(), 60.0)
            # The committee, after the close, records a conflict of the panellist who gave 80.
            await api.report(
                round_id,
                a,
                ConflictDeclaration(
                    report_id="coi-late",
                    reported_by=OPERATOR,
                    component="wawancara",
                    panellist=panel[0],
                    kind="other",
                    note="ditemukan setelah penutupan",
                ),
            )
            release.set()
            done = await _wait_stage(
                client, round_id, a, {Stage.FINAL_APPEAL, Stage.FILING, Stage.OPTIMALISASI}
            )
            [completed] = [
                d for d in done.decisions if d.stage == "skb" and d.input.get("components")
            ]
            # The three scores given before the close stand: (80 + 78 + 76) / 3.
            assert completed.input["components"]["panel"]["wawancara"] == dict(
                zip(panel, (80.0, 78.0, 76.0), strict=True)
            ), completed.input
            late = [
                d.input["report_id"]
                for d in done.decisions
                if d.outcome == "arrived after the close"
            ]
            assert late == ["coi-late"], done.decisions
            histories = await round_histories(client, round_id)
            [journey] = [h for h in histories if h.workflow_id.endswith(a)]
            assert PANEL_CHANGE_AFTER_CLOSE in patch_markers(journey.history)
            result = await recompute(histories, data_converter(keys))
            assert result.differences() == [] and result.problems == []
    finally:
        await pool.close()
