"""FormasiSelection continues-as-new during SKD replies and still ranks as domain.ranking does.

A dev server of this test's own suggests continue-as-new after 60 history events, so a formasi
of 70 applicants must carry its state over several runs while the SKD replies come in.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
import tomli_w
from temporalio.testing import WorkflowEnvironment

from apps.fleet import build_worker
from client.api import RecruitmentApi
from domain.codes import SkdCode, Stage
from domain.config import Category, RoundConfig
from domain.messages import AdminReport, CloseWindow, FormasiState, JourneyState, SkdReport
from domain.ranking import SkdEntry, rank_skd
from domain.skd import SkdScores
from runtime import attributes
from runtime.connection import data_converter
from runtime.db import open_pool
from tests.ports import OFFSET
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from workflows.ids import formasi_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAN_TEMPORAL_PORT = 29233 + OFFSET
SUGGEST_CONTINUE_AS_NEW_AT = 40


@pytest_asyncio.fixture(loop_scope="session")
async def can_env(keys):
    """A dev server of this test's own with a low continue-as-new suggestion."""
    env = await WorkflowEnvironment.start_local(
        port=CAN_TEMPORAL_PORT,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AT}",
        ],
        search_attributes=attributes.ALL,
        data_converter=data_converter(keys),
    )
    try:
        yield env
    finally:
        await env.shutdown()


# --- a round driven to SKD ranking (shared with test_worker_restart) --------------------------


async def start_round(
    api: RecruitmentApi, round_id: str, quota: int, tmp_path: Path
) -> RoundConfig:
    """A one-formasi round with long windows: the test closes each one early."""
    config = compressed_round(
        round_id,
        [formasi("F1", quota)],
        {
            "registration": (-60, 600),
            "administration": (600, 700),
            "skd": (700, 800),
            "skb": (800, 900),
            "filing": (900, 1000),
            "latsar": (1000, 1100),
        },
        t0=datetime.now(UTC),
        # Small pages: the formasi may continue-as-new between them; it folds every 3 references
        # it carries into an index page (patch folded-page-references).
        extra={"broadcast_page_size": 8, "fold_pages_at": 3},
    )
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    _, created = await api.create_round(path, OPERATOR)
    assert created
    return config


def skd_scores(count: int, quota: int, seed: int) -> dict[int, tuple[int, int, int] | None]:
    """Scores per serial: some below threshold, some absent (None), and ties at the 3 x quota cut."""
    rng = random.Random(seed)
    scores: dict[int, tuple[int, int, int] | None] = {}
    for serial in range(1, count + 1):
        if serial % 17 == 0:
            scores[serial] = None  # absent: TH
        else:
            scores[serial] = (
                5 * rng.randint(10, 26),
                5 * rng.randint(13, 30),
                rng.randint(150, 200),
            )
    ranking = rank_skd(_entries(scores), quota, _rules())
    passers = [line.applicant_id for line in ranking.lines if line.rank is not None]
    cut = scores[int(passers[3 * quota - 1])]
    assert cut is not None
    # Two applicants outside the cut get exactly the cut's scores (tied after every tie-break: both go
    # on), one gets the cut's total with a lower TKP (loses the tie-break: P).
    twk, tiu, tkp = cut
    scores[int(passers[3 * quota + 1])] = cut
    scores[int(passers[3 * quota + 3])] = cut
    scores[int(passers[3 * quota + 5])] = (twk + 5, tiu, tkp - 5)
    return scores


def expected_codes(scores: dict[int, tuple[int, int, int] | None], quota: int) -> dict[int, str]:
    """The SKD code of every serial, computed with domain.ranking.rank_skd alone."""
    ranking = rank_skd(_entries(scores), quota, _rules())
    codes = {int(line.applicant_id): line.code.value for line in ranking.lines}
    codes.update({serial: SkdCode.ABSENT.value for serial, s in scores.items() if s is None})
    return codes


def _entries(scores):
    return [
        SkdEntry(
            applicant_id=f"{serial:03d}",
            category=Category.UMUM,
            scores=SkdScores(twk=s[0], tiu=s[1], tkp=s[2]),
        )
        for serial, s in scores.items()
        if s is not None
    ]


def _rules():
    from domain.config import SkdRules

    return SkdRules()


async def register_all(api: RecruitmentApi, config: RoundConfig, count: int) -> dict[int, str]:
    ids: dict[int, str] = {}

    async def one(serial: int) -> None:
        result = await api.register(config, registration(serial, "F1"), "sscasn")
        assert result.status == "registered", result.refusals
        ids[serial] = result.applicant_id

    await _gather_limited([one(s) for s in range(1, count + 1)])
    return ids


async def close(api: RecruitmentApi, round_id: str, window: str) -> None:
    await api.command(
        round_id,
        CloseWindow(
            report_id=f"close-{window}",
            reported_by=OPERATOR,
            window=window,
            reason="test drives the round",
        ),
    )


async def journey(client, round_id: str, applicant_id: str) -> JourneyState:
    return await client.get_workflow_handle(journey_workflow_id(round_id, applicant_id)).query(
        "state", result_type=JourneyState
    )


async def wait_all(
    client, round_id: str, ids, done, what: str, timeout: float = 40.0
) -> dict[str, JourneyState]:
    """Poll every journey until `done(state)` holds for all of them."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    states: dict[str, JourneyState] = {}
    while pending:
        for applicant_id in list(pending):
            s = await journey(client, round_id, applicant_id)
            if done(s):
                states[applicant_id] = s
                pending.discard(applicant_id)
        if pending:
            if time.monotonic() > deadline:
                sample = await journey(client, round_id, next(iter(pending)))
                raise AssertionError(
                    f"{len(pending)} journeys not {what}; e.g. {sample.stage} {sample.terminal_reason}"
                )
            await asyncio.sleep(0.5)
    return states


async def drive_to_skd(
    client, api: RecruitmentApi, config: RoundConfig, ids: dict[int, str]
) -> None:
    """Close registration, MS for everybody, close administration, wait until every journey is in SKD."""
    round_id = config.round_id
    await close(api, round_id, "registration")
    await wait_all(
        client, round_id, ids.values(), lambda s: s.stage == Stage.ADMIN_CHECK, "in admin_check"
    )
    await _gather_limited(
        [
            api.report(
                round_id, a, AdminReport(report_id=f"adm-{s}", reported_by="bkpsdm-verifikator")
            )
            for s, a in ids.items()
        ]
    )
    await close(api, round_id, "administration")
    await wait_all(client, round_id, ids.values(), lambda s: s.stage == Stage.SKD, "in SKD")


async def report_skd(
    api: RecruitmentApi, round_id: str, ids: dict[int, str], scores, serials
) -> None:
    await _gather_limited(
        [
            api.report(
                round_id,
                ids[s],
                SkdReport(
                    report_id=f"skd-{s}",
                    reported_by="cat-bkn",
                    twk=scores[s][0],
                    tiu=scores[s][1],
                    tkp=scores[s][2],
                ),
            )
            for s in serials
            if scores[s] is not None
        ]
    )


async def wait_skd_codes(
    client, round_id: str, ids: dict[int, str], timeout: float = 40.0
) -> dict[int, str]:
    states = await wait_all(
        client, round_id, ids.values(), lambda s: s.skd_code is not None, "SKD-coded", timeout
    )
    by_id = {a: s for s, a in ids.items()}
    return {by_id[a]: s.skd_code.value for a, s in states.items()}


async def terminate_round(client, round_id: str) -> None:
    async for wf in client.list_workflows(
        f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    ):
        await client.get_workflow_handle(wf.id).terminate("test finished")


async def _gather_limited(coros, limit: int = 16) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(c):
        async with gate:
            await c

    await asyncio.gather(*(run(c) for c in coros))


# --- the test -------------------------------------------------------------------------------------


async def test_formasi_continues_as_new_and_ranks_correctly(
    can_env, keys, stack, stack_settings, tmp_path
):
    started = time.monotonic()
    client = can_env.client
    count, quota = 80, 3
    settings = stack_settings.model_copy(update={"task_queue": f"can-{uuid.uuid4().hex[:8]}"})
    pool = await open_pool(stack.database_url, max_size=8)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"can-{uuid.uuid4().hex[:6]}"
    try:
        async with await build_worker(client, settings, pool):
            try:
                config = await start_round(api, round_id, quota, tmp_path)
                ids = await register_all(api, config, count)
                await drive_to_skd(client, api, config, ids)
                scores = skd_scores(count, quota, seed=11)
                await report_skd(api, round_id, ids, scores, ids)
                fid = formasi_workflow_id(round_id, "F1")
                before = await client.get_workflow_handle(fid).query(
                    "state", result_type=FormasiState
                )
                await close(api, round_id, "skd")
                codes = await wait_skd_codes(client, round_id, ids)

                expected = expected_codes(scores, quota)
                assert codes == expected
                assert (
                    list(expected.values()).count(SkdCode.PASSED_TO_SKB.value) == 3 * quota + 2
                )  # the tie goes on

                state = await client.get_workflow_handle(fid).query(
                    "state", result_type=FormasiState
                )
                runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{fid}'")]
                assert state.runs == len(runs), (state.runs, len(runs))
                assert state.runs - before.runs >= 2, (
                    before.runs,
                    state.runs,
                )  # during the SKD replies
                longest = max(r.history_length for r in runs if r.close_time is not None)
                cuts = [d for d in state.decisions if d.outcome == "cut"]
                assert len(cuts) == 1  # ranked once, whatever the number of runs
                passers = [
                    s
                    for s, c in expected.items()
                    if c != SkdCode.FAILED.value and scores[s] is not None
                ]
                assert cuts[0].input["replies"] == count
                assert cuts[0].input["passers_seen"] == len(passers)
                cut_serial = min(
                    (s for s, c in expected.items() if c == SkdCode.PASSED_TO_SKB.value),
                    key=lambda s: (scores[s][0] + scores[s][1] + scores[s][2], scores[s][2]),
                )
                twk, tiu, tkp = scores[cut_serial]
                assert cuts[0].input["cut_key"] == [twk + tiu + tkp, tkp, tiu, twk]
                # 80 answers in pages of 8 (a page where nobody passed keeps nothing), folded
                # every 3 references: the decision records at most 2 (an index and what came after
                # it), and the store holds one index for the first 3 pages and one per 2 after.
                assert 1 <= len(cuts[0].input["pages"]) < 3, cuts[0].input["pages"]
                rows = await pool.fetch(
                    "SELECT kind, count(*) AS n FROM pages WHERE owner = $1 GROUP BY kind", fid
                )
                kinds = {r["kind"]: r["n"] for r in rows}
                assert kinds["close-replies"] >= 8, kinds
                assert kinds["page-index"] == (kinds["close-replies"] - 1) // 2, kinds
            finally:
                await terminate_round(client, round_id)
    finally:
        await pool.close()
    assert time.monotonic() - started < 90
    # Announcements go out a page at a time and the formasi may continue-as-new between pages, so
    # no run grows with the formasi's applicants (a page's replies are the most one run takes on).
    assert longest <= 2 * SUGGEST_CONTINUE_AS_NEW_AT, longest
