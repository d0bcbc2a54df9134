"""Record the histories of a real round for the replay tests under tests/histories/.

    .venv/bin/python scripts/record_histories.py [--out tests/histories]
    .venv/bin/python scripts/record_histories.py --full --out tests/histories/v4-full
    .venv/bin/python scripts/record_histories.py --full --history-budget 1 --out tests/histories/v15-full-cut
    .venv/bin/python scripts/record_histories.py --full --history-budget 164 --continued --out tests/histories/v18-full-continued
    .venv/bin/python scripts/record_histories.py --full --history-budget 164 --continued --out tests/histories/v19-full-continued
    .venv/bin/python scripts/record_histories.py --panels --out tests/histories/v21-panels
    .venv/bin/python scripts/record_histories.py --national --out tests/histories/v22-national
    .venv/bin/python scripts/record_histories.py --sealed --out tests/histories/v24-sealed
    .venv/bin/python scripts/record_histories.py --claim-sweep --out tests/histories/v25-claim-sweep
    .venv/bin/python scripts/record_histories.py --claim-sweep --forged --out tests/histories/v28-claim-looks-again
    .venv/bin/python scripts/record_histories.py --zone Asia/Jayapura --out tests/histories/v27-round-zone
    .venv/bin/python scripts/record_histories.py --seat-given-back before-result --out tests/histories/v27-seat-before-result
    .venv/bin/python scripts/record_histories.py --seat-given-back at-filing --out tests/histories/v27-seat-at-filing
    .venv/bin/python scripts/record_histories.py --panel-after-close --out tests/histories/v28-panel-after-close
    .venv/bin/python scripts/record_histories.py --summary tests/histories/v4-full

Starts an embedded stack of its own (temporary data dir, free ports from the system), a worker,
and a compressed round, then writes every history of the round as JSON, plus the payload key that
decodes them. The data is synthetic and the key is used nowhere else: both are safe to commit.

The small round (default): one formasi (quota 1) with three applicants: one wins, one loses on
rank, one fails the SKD threshold. It stops once the final ranking is out.

The full round (--full): two formasi with the same jabatan and education (quota 1 and 2) and
fourteen applicants (FULL_ROLES), played to the round's close through the same API a real service
uses (as apps/demo.py does): TMS with a sanggah accepted, rejected, unanswered and not filed; TH,
T/L, P at SKD; a disqualification and a health-gate failure at SKB; a winner who withdraws in the
final-appeal window, whose seat optimalisasi offers to a candidate who declines and then to one
who accepts (P/L-2); a TMT move before the NIPs; a winner who never files (TMS-DRH); Latsar
passed (PNS) and failed (DIBERHENTIKAN); a window extended, every window closed early with a
reason. Its Temporal dev server suggests continue-as-new early, so the formasi runs continue-as-new
between broadcast pages. It waits until every workflow of the round has completed.

--history-budget N (with --full) gives the round that `optimalisasi_history_budget`. With a budget
below the round's history when optimalisasi begins (1, say), the allocation for the withdrawn
seat is cut to no offer and the round records `offers stopped` (patch optimalisasi-budget): the
two candidates the seat would have been offered to end TL, and nobody is dismissed after Latsar.
With --continued, the budget leaves room for the first offer of the withdrawn seat but not for
the second: the round continues as a new run (patch optimalisasi-continues) and the new run makes
it, so every outcome is the full round's. The script checks that the round ran twice or more.

--sealed plays the small round with one journey (C3's) that hears an announcement before its
round has admitted it (patch sealed-before-admission): it is registered through the API on a task
queue of its own that no worker polls yet, sent an unsealed administration result dated 30 days
back (as anyone who reaches Temporal could send it), and only then handed to a worker of that
queue, so the announcement is in its history before its first workflow task. The journey keeps it
until its round has answered, judges it then under the round's seal and ignores it; it goes on to
its SKD result as C3 does in the small round. The script checks that the journey's history holds
the signal before its first workflow task and the patch's marker, and that it was not TMS.

--zone TZ plays the small round with that `timezone` (Asia/Jayapura: WIT), C3 found TMS at the
administrative check (its sanggah not filed) instead of failing the SKD, C1 and C2 MS. Every
journey of a round outside WIB asks patch notice-in-round-zone when it records its administrative
result, MS or TMS; the script checks that each journey holds its marker.

--seat-given-back WHEN plays the small round whose winner C1 gives the seat back, C2 (who lost on
rank) then offered it by optimalisasi. `before-result`: the worker's broadcast holds F1's final
result (HeldBroadcasts, as tests/timeskip/test_ending_before_result.py holds it on the
time-skipping server) while C1 withdraws: ranked but not told, C1 waits for the result, gives the
seat back and ends APS (patch seat-given-back-before-result). `at-filing`: C1's filing is reported
incomplete while the window is open: it gives the seat back and ends TMS-DRH (patch
seat-given-back-at-filing). The script checks that C1 holds the patch's marker.

--panel-after-close plays the round of --panels with F1's word of the SKB close to its journeys
held (HeldBroadcasts) while the committee records a conflict of the first of B's panellists, who
had scored: accepted after the round closed the SKB, it strikes nothing (patch
panel-change-after-close). The script checks that B's journey holds the patch's marker.

--summary prints, for a recorded set, each journey's outcome (re-derived by replay) and the
`workflow.patched` markers each history holds.

Re-record only on purpose: the point of the committed files is that they were made by the
code as it was, so a change that alters past decisions fails the replay test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from auditing.bundle import history_file_name, load_histories  # noqa: E402
from auditing.history import RecordedHistory, replay, round_histories  # noqa: E402
from client.api import (  # noqa: E402
    RecruitmentApi,
    RefusedError,
    applicant_id_for,
    registration_digest,
)
from client.national import national_applicant_id  # noqa: E402
from domain.administration import DocumentFinding  # noqa: E402
from domain.codes import AdminDecision, Phase, Stage  # noqa: E402
from domain.config import MAX_OPTIMALISASI_HISTORY_BUDGET, RoundConfig  # noqa: E402
from domain.contracts import BroadcastRequest, BroadcastResult  # noqa: E402
from domain.messages import (  # noqa: E402
    AdminReport,
    Announcement,
    AppealAnswer,
    AppealFiling,
    CloseWindow,
    ConflictDeclaration,
    Disqualification,
    ExtendWindow,
    FilingReport,
    GateReport,
    JourneyState,
    LatsarReport,
    MoveTmt,
    OfferAnswer,
    PanelReview,
    RoundState,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.national import CLAIM_TAKEN, TAKE_CLAIM, ClaimTaken  # noqa: E402
from domain.protocol import ANNOUNCE, BROADCAST, JOURNEY_STATE  # noqa: E402
from runtime.connection import data_converter  # noqa: E402
from runtime.db import open_pool  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from runtime.process import run_and_end  # noqa: E402
from tests.roundkit import (  # noqa: E402
    OPERATOR,
    TEST_KEYRING,
    close_window,
    compressed_round,
    formasi,
    play_to_skb,
    registration,
)
from workflows.ids import claim_workflow_id, journey_workflow_id  # noqa: E402
from workflows.versions import CLAIM_LOOKS_AGAIN  # noqa: E402

SKD = {"C1": (120, 140, 190), "C2": (110, 130, 185), "C3": (60, 70, 150)}  # twk, tiu, tkp; C3 fails
SKB = {"C1": (450, 90), "C2": (400, 80)}  # cat /500, praktik /100
WINDOWS = {
    "registration": (-60, 3),
    "administration": (3, 6),
    "skd": (6, 13),
    "skb": (13, 20),
    "filing": (22, 90),
    "latsar": (90, 95),
}


async def journey_state(client: Client, round_id: str, applicant_id: str) -> JourneyState:
    """The journey's state by query (the driver needs a worker anyway)."""
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return await JOURNEY_STATE.ask(handle)


async def wait_stage(
    client: Client, round_id: str, applicant_id: str, stages: set[Stage], timeout: float = 40.0
) -> JourneyState:
    """Poll until the journey reaches one of `stages`."""
    deadline = time.monotonic() + timeout
    while True:
        state = await journey_state(client, round_id, applicant_id)
        if state.stage in stages:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{applicant_id} stuck at {state.stage} (wanted {stages})")
        await asyncio.sleep(0.3)


async def run_small_round(
    client: Client,
    task_queue: str,
    pseudonym_key: bytes,
    round_id: str | None = None,
    early: AnnouncedBeforeAdmission | None = None,
    zone: str | None = None,
    tms: frozenset[str] = frozenset(),
    answer_within: float = 5,
) -> tuple[str, dict[str, str]]:
    """Drive a compressed round until its final ranking is out; return the round id and applicant
    ids. With `early`, its applicant is registered by it (--sealed); with `zone`, the round keeps
    that `timezone`, and the applicants named in `tms` are found TMS at the administrative check
    (their sanggah not filed) instead of sitting the SKD (--zone). Nobody files a sanggah, so the
    final one's `answer_within` (seconds) is only waited out: a test may pass less."""
    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=TEST_KEYRING)
    round_id, ids = await play_small_round_to_skb(
        client,
        api,
        pseudonym_key,
        round_id,
        early=early,
        zone=zone,
        tms=tms,
        answer_within=answer_within,
    )
    after_ranking = {
        Stage.FILING,
        Stage.OPTIMALISASI,
        Stage.NIP,
        Stage.APPOINTMENT,
        Stage.LATSAR,
        Stage.ENDED,
    }
    for name in SKB:
        await wait_stage(client, round_id, ids[name], after_ranking)
    await wait_stage(client, round_id, ids["C3"], {Stage.ENDED})
    return round_id, ids


async def play_small_round_to_skb(
    client: Client,
    api: RecruitmentApi,
    pseudonym_key: bytes,
    round_id: str | None = None,
    early: AnnouncedBeforeAdmission | None = None,
    zone: str | None = None,
    tms: frozenset[str] = frozenset(),
    answer_within: float = 5,
) -> tuple[str, dict[str, str]]:
    """The small round until its SKB answers are reported (SKB not closed yet): its id and the
    applicants' ids. See run_small_round for `early`, `zone`, `tms` and `answer_within`."""
    import tomli_w

    round_id = round_id or f"audit-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    extra = {"timezone": zone} if zone else None
    config = compressed_round(
        round_id, [formasi("F1", 1)], WINDOWS, answer_within=answer_within, t0=t0, extra=extra
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.toml"
        path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        await api.create_round(path, OPERATOR)
    ids = {}
    for serial, name in enumerate(SKD, start=1):
        if early is not None and name == early.name:
            ids[name] = await early.register(client, pseudonym_key, config, serial)
            continue
        result = await api.register(config, registration(serial, "F1"), "sscasn")
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id
    for name in SKD:
        await wait_stage(client, round_id, ids[name], {Stage.ADMIN_CHECK})
        findings = (
            [DocumentFinding(document="ijazah", reason="not legalised")] if name in tms else []
        )
        await api.report(
            round_id,
            ids[name],
            AdminReport(
                report_id=f"adm-{name}", reported_by="bkpsdm-verifikator", findings=findings
            ),
        )
    for name, (twk, tiu, tkp) in SKD.items():
        if name in tms:
            continue
        await wait_stage(client, round_id, ids[name], {Stage.SKD})
        await api.report(
            round_id,
            ids[name],
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp),
        )
    for name, (cat, praktik) in SKB.items():
        await wait_stage(client, round_id, ids[name], {Stage.SKB})
        await api.report(
            round_id,
            ids[name],
            SkbScoreReport(
                report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
            ),
        )
        await api.report(
            round_id,
            ids[name],
            SkbScoreReport(
                report_id=f"pr-{name}",
                reported_by="panel-praktik",
                component="praktik",
                score=praktik,
            ),
        )
        await api.report(
            round_id,
            ids[name],
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        )
    return round_id, ids


# --- an announcement before admission (--sealed) ------------------------------------------------


@dataclass
class AnnouncedBeforeAdmission:
    """The small round's applicant `name`, whose journey hears an announcement before its round
    has admitted it: started through the API on a task queue no worker polls, signalled, then
    handed to a worker of that queue (`worker`, entered into `workers` and kept for the round)."""

    name: str
    worker: Callable[[str], Awaitable[Worker]]
    workers: contextlib.AsyncExitStack
    applicant_id: str = ""

    async def register(
        self, client: Client, pseudonym_key: bytes, config: RoundConfig, serial: int
    ) -> str:
        queue = f"{config.round_id}-queued"
        api = RecruitmentApi(
            client,
            queue,
            pseudonym_key,
            keyring=TEST_KEYRING,
            eager_start=False,
            confirm_registrations=False,  # answered once started: no worker polls the queue yet
        )
        result = await api.register(config, registration(serial, "F1"), PORTAL)
        assert result.status == "registered" and result.applicant_id, result.refusals
        self.applicant_id = result.applicant_id
        handle = client.get_workflow_handle(journey_workflow_id(config.round_id, self.applicant_id))
        # An administration result 30 days old, unsealed: taken before the patch, it made the
        # journey TMS with its appeal window long past.
        forged = Announcement(
            announcement_id=f"{config.round_id}/administration/9",
            phase=Phase.ADMINISTRATION,
            at=datetime.now(UTC) - timedelta(days=30),
        )
        await ANNOUNCE.send(handle, forged)
        events = [e async for e in handle.fetch_history_events()]
        assert any(e.HasField("workflow_execution_signaled_event_attributes") for e in events)
        assert not any(e.HasField("workflow_task_started_event_attributes") for e in events), (
            "the journey had a workflow task before its announcement"
        )
        await self.workers.enter_async_context(await self.worker(queue))
        return self.applicant_id


def check_sealed(
    histories: list[RecordedHistory], applicant_id: str, state: JourneyState
) -> list[str]:
    """What --sealed must have recorded: the journey's announcement before its first workflow
    task, the patch's marker, and the journey's end (`state`) at its SKD (T/L, as C3's in the
    small round), not TMS. Problems, as sentences."""
    [h] = [h for h in histories if h.workflow_id.endswith(f"/{applicant_id}")]
    kinds = [e.WhichOneof("attributes") or "" for e in h.history.events]
    signal = kinds.index("workflow_execution_signaled_event_attributes")
    first_task = kinds.index("workflow_task_started_event_attributes")
    problems = []
    if signal > first_task:
        problems.append("the announcement came after the journey's first workflow task")
    if "sealed-before-admission" not in patch_markers(h.history):
        problems.append("the journey holds no sealed-before-admission marker")
    if state.terminal is None or state.terminal.value != "T/L":
        problems.append(f"the journey ended {state.terminal}, not T/L at its SKD")
    return problems


# --- seats given back (--seat-given-back) --------------------------------------------------------


class HeldBroadcasts:
    """The worker's broadcast activity, except that an announcement held here (its round, formasi
    and phase) waits until released: a formasi slow to tell its applicants its final result, as
    tests/timeskip/test_ending_before_result.py plays it on the time-skipping server."""

    def __init__(self) -> None:
        self.holds: dict[tuple[str, str, str], tuple[asyncio.Event, asyncio.Event]] = {}

    def hold(self, round_id: str, formasi_code: str, phase: str) -> tuple[asyncio.Event, ...]:
        """Hold that announcement: (reached, release), set when it is held and to let it go."""
        events = (asyncio.Event(), asyncio.Event())
        self.holds[(round_id, formasi_code, phase)] = events
        return events

    def wrap(self, activities: list) -> list:
        """The activities, with the broadcast replaced by one that waits for its release."""
        from temporalio import activity

        [original] = [a for a in activities if getattr(a, "__name__", "") == BROADCAST.name]

        @activity.defn(name=BROADCAST.name)
        async def broadcast(req: BroadcastRequest) -> BroadcastResult:
            held = self.holds.get((req.round_id, req.formasi_code, req.announcement.phase))
            if held is not None:
                reached, release = held
                reached.set()
                while not release.is_set():  # within the broadcast's heartbeat timeout
                    activity.heartbeat()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(release.wait(), 2.0)
            return await original(req)

        return [broadcast if a is original else a for a in activities]


async def worker_holding_broadcasts(client: Client, settings, pool, held: HeldBroadcasts) -> Worker:
    """apps.fleet's worker, whose broadcast is `held`'s."""
    from unittest import mock

    import apps.fleet

    fleet_activities = apps.fleet.fleet_activities
    with mock.patch.object(
        apps.fleet, "fleet_activities", lambda *args: held.wrap(fleet_activities(*args))
    ):
        return await apps.fleet.build_worker(client, settings, pool)


async def offered(client: Client, round_id: str, applicant_id: str, timeout: float = 60.0):
    """The journey's state once it holds an optimalisasi offer."""
    deadline = time.monotonic() + timeout
    while (state := await journey_state(client, round_id, applicant_id)).offer is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{applicant_id} was offered no seat (at {state.stage})")
        await asyncio.sleep(0.3)
    return state


SEATS_GIVEN_BACK = {
    "before-result": "seat-given-back-before-result",
    "at-filing": "seat-given-back-at-filing",
}


async def run_seat_given_back_round(
    client: Client, task_queue: str, pseudonym_key: bytes, held: HeldBroadcasts, when: str
) -> tuple[str, dict[str, str]]:
    """The small round whose winner (C1) gives the seat back and C2, who lost on rank, is offered
    it. `before-result`: C1 withdraws after F1 ranked the SKB answers and before its final result
    reached C1 (F1's broadcast of the result held meanwhile: patch seat-given-back-before-result).
    `at-filing`: C1's filing is reported incomplete while the filing window is open (patch
    seat-given-back-at-filing). The round's id and its applicants' ids."""
    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=TEST_KEYRING)
    round_id = "recorded"
    if when == "before-result":
        reached, release = held.hold(round_id, "F1", Phase.FINAL_RESULT)
        round_id, ids = await play_small_round_to_skb(client, api, pseudonym_key, round_id)
        await asyncio.wait_for(reached.wait(), 60.0)
        waiting = await wait_stage(client, round_id, ids["C1"], {Stage.FINAL_RANKING})
        assert waiting.final_code is None, "C1 heard its final result before it withdrew"
        await api.report(
            round_id,
            ids["C1"],
            Withdrawal(
                report_id="aps-before-result", reported_by=PORTAL, reason="another position"
            ),
        )
        release.set()
        c1 = await wait_stage(client, round_id, ids["C1"], {Stage.ENDED})
        assert [d.outcome for d in c1.decisions][-2:] == ["seat given back", "APS"], c1.decisions
    else:
        round_id, ids = await play_small_round_to_skb(client, api, pseudonym_key, round_id)
        await wait_stage(client, round_id, ids["C1"], {Stage.FILING}, timeout=60.0)
        await api.report(
            round_id,
            ids["C1"],
            FilingReport(
                report_id="drh-C1",
                reported_by="bkpsdm-verifikator",
                complete=False,
                missing=["DRH"],
            ),
        )
        c1 = await wait_stage(client, round_id, ids["C1"], {Stage.ENDED})
        assert c1.terminal is not None and c1.terminal.value == "TMS-DRH", c1.terminal
    await offered(client, round_id, ids["C2"])
    return round_id, ids


def check_markers(histories: list[RecordedHistory], expected: dict[str, str]) -> list[str]:
    """Each journey named in `expected` (workflow id: patch) holds that patch's marker: problems,
    as sentences."""
    have = {h.workflow_id: patch_markers(h.history) for h in histories}
    return [
        f"{workflow_id} holds no {patch} marker"
        for workflow_id, patch in expected.items()
        if patch not in have.get(workflow_id, [])
    ]


# --- the interview panels (--panels) -------------------------------------------------------------


async def run_panel_round(
    client: Client,
    task_queue: str,
    pseudonym_key: bytes,
    prefix: str,
    held: HeldBroadcasts | None = None,
) -> tuple[str, dict[str, str]]:
    """The round of tests/flows/test_panels.py (one formasi, an interview panel of 3 drawn from a
    pool of 5, the committee closing every window): two applicants reach SKB; on A's panel one
    panellist declares a conflict before scoring (the next of the draw takes the seat, patch
    panel-change-written), sends a score anyway (refused into the record), a score far from the
    rest is flagged and struck on review (the next scores again); B's panel scores without
    incident. With `held`, F1's word of the SKB close is held while the committee records a
    conflict of B's first panellist, after their score (--panel-after-close). Stops once the final
    ranking is out."""
    from tests.flows.test_panels import KEYRING, _last_panel, _panel_score, create_panel_round

    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=KEYRING)
    with tempfile.TemporaryDirectory() as tmp:
        config, t0 = await create_panel_round(api, Path(tmp), prefix)
    round_id = config.round_id
    ids = {
        name: (
            await api.register(config, registration(serial, "F1"), "sscasn", now=t0)
        ).applicant_id
        for serial, name in enumerate(("A", "B"), start=1)
    }
    await play_to_skb(api, client, round_id, list(ids.values()), twk=lambda _: 120)
    a, b = ids["A"], ids["B"]
    drawn = _last_panel(await journey_state(client, round_id, a))
    await api.report(
        round_id,
        a,
        ConflictDeclaration(
            report_id="coi-A",
            reported_by=drawn[0],
            component="wawancara",
            panellist=drawn[0],
            kind="family",
            note="sepupu",
        ),
    )
    try:
        await api.report(round_id, a, _panel_score(drawn[0], 95, 1))
    except RefusedError:
        pass  # refused into the record (PanelScoreRefused): what the set is to hold
    panel = _last_panel(await journey_state(client, round_id, a))
    for who, value in zip(panel, (83, 71, 20), strict=True):
        await api.report(round_id, a, _panel_score(who, value))
    await api.report(
        round_id,
        a,
        PanelReview(
            report_id="review-A",
            reported_by=OPERATOR,
            component="wawancara",
            panellist=panel[2],
            keep=False,
            note="jauh dari panel",
        ),
    )
    [replacement] = set(_last_panel(await journey_state(client, round_id, a))) - set(panel)
    await api.report(round_id, a, _panel_score(replacement, 75))
    for who, value in zip(
        _last_panel(await journey_state(client, round_id, b)), (70, 72, 74), strict=True
    ):
        await api.report(round_id, b, _panel_score(who, value, 2))
    for name, x in ids.items():
        for component, who, value in (("cat", "cat-bkn", 400), ("praktik", "panel-praktik", 80)):
            await api.report(
                round_id,
                x,
                SkbScoreReport(
                    report_id=f"{component}-{name}",
                    reported_by=who,
                    component=component,
                    score=value,
                ),
            )
        await api.report(
            round_id,
            x,
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        )
    if held is not None:
        reached, release = held.hold(round_id, "F1", Phase.SKB_CLOSED)
    await close_window(api, round_id, "skb")
    if held is not None:
        await asyncio.wait_for(reached.wait(), 60.0)
        await api.report(
            round_id,
            b,
            ConflictDeclaration(
                report_id="coi-B-after-close",
                reported_by=OPERATOR,
                component="wawancara",
                panellist=_last_panel(await journey_state(client, round_id, b))[0],
                kind="other",
                note="ditemukan setelah penutupan",
            ),
        )
        release.set()
    for x in (a, b):
        await wait_stage(
            client, round_id, x, {Stage.FINAL_APPEAL, Stage.FILING, Stage.OPTIMALISASI}
        )
    return round_id, ids


# --- a national round (--national) -----------------------------------------------------------------


async def run_national_round(
    client: Client, task_queue: str, pseudonym_key: bytes
) -> tuple[str, list[str]]:
    """A national round with two instansi rounds joined to it (the live test's, from
    tests/flows/test_national.py): one NIK registers in the first and is refused in the second
    (one NIK, one formasi nationwide), two more register, one in each; then the first closes its
    registration early and a fourth NIK's journey there refuses its start and releases its claim.
    Stops once every journey admitted waits for its administrative check. The national id, and the ids of every round to record
    (the national round's own, with its claims, and each instansi round's)."""
    from tests.flows.test_national import _close_registration_early, _national_with_rounds

    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=TEST_KEYRING)
    with tempfile.TemporaryDirectory() as tmp:
        national_id, (a, b) = await _national_with_rounds(
            api, Path(tmp), "Kota", ("Alpha", "Beta"), readers=[OPERATOR]
        )
    registered = []
    for config, serial, code, expected in (
        (a, 1, "F1", "registered"),
        (b, 1, "F2", "refused"),  # the same NIK in another instansi
        (a, 2, "F2", "registered"),
        (b, 3, "F1", "registered"),
    ):
        result = await api.register(config, registration(serial, code), "sscasn")
        assert result.status == expected, (serial, config.round_id, result)
        if result.status == "registered":
            registered.append((config.round_id, result.applicant_id))
    for round_id, applicant_id in registered:
        await wait_stage(client, round_id, applicant_id, {Stage.ADMIN_CHECK})
    # The first instansi closes its registration early (its quota met); a registration started
    # after that is refused by its journey, which releases the NIK's national claim.
    await _close_registration_early(api, a)
    late = await api.register(a, registration(4, "F1"), "sscasn")
    assert late.status == "refused", late
    return national_id, [national_id, a.round_id, b.round_id]


# --- a national round whose claims sweep themselves (--claim-sweep) --------------------------------

SWEEP_GRACE = (
    "PT30S"  # the national file's claim_grace: its minimum, so the recording takes a minute
)


async def run_claim_sweep_round(
    client: Client, task_queue: str, pseudonym_key: bytes, forged: bool = False
) -> tuple[str, list[str]]:
    """A national round whose claims wait SWEEP_GRACE for their journey (patch claim-swept), with
    one instansi round: one NIK's registrar claims it and dies before the journey's start, and the
    claim releases itself once the grace has passed; another NIK registers, and its claim, told by
    its journey that it took it, holds on its timer. With `forged` (patch claim-looks-again), two
    more registrars die, and two of the three dead registrars' claims are told in the journey's
    words that their journey took them, one by the signal claim_taken and one by the update
    take_claim, as anyone holding the payload key can: all three look, find no journey and release
    themselves. Stops once every claim has decided. The national id, and the ids of the rounds to
    record (the national round's own and the instansi's)."""
    from tests.flows.test_national import _national_with_rounds

    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=TEST_KEYRING)
    with tempfile.TemporaryDirectory() as tmp:
        national_id, (a,) = await _national_with_rounds(
            api, Path(tmp), "Kota", ("Sweep",), claim_grace=SWEEP_GRACE
        )
    # The registrars that die: the claim is taken, the journey never started.
    dead = [registration(1, "F1")]
    words_sent = ["nothing"]
    if forged:
        dead += [registration(3, "F1"), registration(4, "F1")]
        words_sent = ["signal", "update", "nothing"]
    for reg, word in zip(dead, words_sent, strict=True):
        applicant = applicant_id_for(pseudonym_key, a.round_id, reg.nik)
        national_applicant = national_applicant_id(pseudonym_key, national_id, reg.nik)
        held = await api.national.claim(
            a, applicant, "F1", national_applicant, registration_digest(reg)
        )
        assert held is None, held
        claim = client.get_workflow_handle(claim_workflow_id(national_id, national_applicant))
        words = ClaimTaken(round_id=a.round_id, applicant_id=applicant)
        if word == "signal":
            await CLAIM_TAKEN.send(claim, words)
        elif word == "update":
            assert await TAKE_CLAIM.execute(claim, words) is True
    kept = await api.register(a, registration(2, "F1"), "sscasn")
    assert kept.status == "registered", kept
    claims = [
        claim_workflow_id(national_id, national_applicant_id(pseudonym_key, national_id, r.nik))
        for r in (*dead, registration(2, "F1"))
    ]
    deadline = time.monotonic() + 180
    for claim in claims:
        handle = client.get_workflow_handle(claim)
        while EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED not in [
            e.event_type async for e in handle.fetch_history_events()
        ]:
            if time.monotonic() > deadline:
                raise SystemExit(f"claim {claim} ran no workflow task in 180 s")
            await asyncio.sleep(1.0)
    for claim in claims[:-1]:
        swept = await client.get_workflow_handle(claim).describe()
        assert swept.status == WorkflowExecutionStatus.FAILED, (claim, swept.status)
    held_to_end = await client.get_workflow_handle(claims[-1]).describe()
    assert held_to_end.status == WorkflowExecutionStatus.RUNNING, held_to_end.status
    return national_id, [national_id, a.round_id]


# --- the full round (--full) ---------------------------------------------------------------------

# Two formasi with the same jabatan and education, so a seat left in one can go to a candidate of
# the other by optimalisasi. Windows are long; the driver closes each one early, with a reason,
# once its results are in, so the recording does not depend on the machine's speed.
FULL_WINDOWS = {
    "registration": (-60, 900),
    "administration": (900, 1800),
    "skd": (1800, 2600),
    "skb": (2700, 3600),
    "filing": (3600, 4500),
    "latsar": (4500, 5400),
}
FULL_APPEAL_WINDOW = 10  # s: the sanggah windows (administration and final result)
FULL_ANSWER_WITHIN = 5  # s: an appeal not answered by then leaves TMS
FULL_OFFER_WITHIN = 30  # s: how long an optimalisasi offer waits
FULL_PAGE_SIZE = 2  # journeys per broadcast page: several pages per announcement
FULL_FOLD_AT = 2  # page references a formasi carries before it folds them into an index page
# The full round's own Temporal dev server suggests continue-as-new at this history length, so the
# formasi runs continue-as-new between pages (carrying their barriers, paging and decisions).
# Not lower: a formasi run that continued before its first decision would re-derive none.
FULL_SUGGEST_CONTINUE_AS_NEW = 60
FULL_NEW_TMT = date(2027, 4, 1)
PORTAL = "sscasn"


@dataclass(frozen=True)
class Role:
    """One applicant of the full round: the formasi, what happens to it, the outcome expected."""

    name: str
    formasi: str
    expected: str  # terminal outcome
    admin_tms: bool = False
    appeal: str | None = None  # accepted | rejected | unanswered (after a TMS)
    skd: tuple[int, int, int] | None = None  # twk, tiu, tkp; None: absent (TH)
    skb: tuple[int, int] | None = None  # cat /500, praktik /100
    health: str = "MS"


FULL_ROLES = [
    # F1, quota 1, SKD cut 3
    Role("pns", "F1", "PNS", skd=(120, 140, 200), skb=(450, 90)),
    Role("declines-offer", "F1", "TL", skd=(115, 135, 195), skb=(420, 85)),
    Role(
        "appeal-won-pl2-dismissed",
        "F1",
        "DIBERHENTIKAN",
        admin_tms=True,
        appeal="accepted",
        skd=(110, 130, 190),
        skb=(400, 80),
    ),
    Role("outside-cut", "F1", "P", skd=(100, 120, 180)),
    Role("below-threshold", "F1", "T/L", skd=(60, 70, 150)),
    Role("appeal-rejected", "F1", "TMS", admin_tms=True, appeal="rejected"),
    Role("no-appeal", "F1", "TMS", admin_tms=True),
    # F2, quota 2, SKD cut 6
    Role("filing-incomplete", "F2", "TMS-DRH", skd=(125, 145, 200), skb=(460, 92)),
    Role("withdraws-after-winning", "F2", "APS", skd=(120, 140, 195), skb=(440, 88)),
    Role("health-tms", "F2", "TMS-SKB", skd=(110, 130, 185), skb=(430, 85), health="TMS"),
    Role("disqualified", "F2", "DIS", skd=(105, 125, 180), skb=(410, 82)),
    Role("lost-on-rank", "F2", "TL", skd=(100, 120, 175), skb=(300, 60)),
    Role("skd-absent", "F2", "TH"),
    Role("appeal-unanswered", "F2", "TMS", admin_tms=True, appeal="unanswered"),
]


# With --history-budget below the round's history at optimalisasi, the withdrawn seat is offered
# to nobody: who would have taken it (P/L-2) ends TL instead.
STOPPED_OFFERS_EXPECTED = {"appeal-won-pl2-dismissed": "TL"}


def full_roles(offers_stopped: bool = False) -> list[Role]:
    """FULL_ROLES, with the outcomes expected when optimalisasi stops before its first offer."""
    if not offers_stopped:
        return list(FULL_ROLES)
    return [
        dataclasses.replace(r, expected=STOPPED_OFFERS_EXPECTED.get(r.name, r.expected))
        for r in FULL_ROLES
    ]


class FullRound:
    """Plays every service of a small round to its end, through the API a real service uses."""

    def __init__(
        self, client: Client, api: RecruitmentApi, round_id: str, offers_stopped: bool = False
    ) -> None:
        self.client, self.api, self.round_id = client, api, round_id
        self.offers_stopped = offers_stopped
        self.ids: dict[str, str] = {}  # role name -> applicant id
        self.roles = {r.name: r for r in full_roles(offers_stopped)}

    async def send(self, role: str, message, attempts: int = 1) -> None:
        """One report; retried when the journey has not yet taken in what makes it acceptable."""
        for attempt in range(1, attempts + 1):
            try:
                await self.api.report(self.round_id, self.ids[role], message)
                return
            except RefusedError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.3)

    async def command(self, message) -> None:
        await self.api.command(self.round_id, message)

    async def close(self, window: str, reason: str) -> None:
        await self.command(
            CloseWindow(
                report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason=reason
            )
        )

    async def at(self, roles: list[str], stages: set[Stage], timeout: float = 60.0) -> None:
        for role in roles:
            await wait_stage(self.client, self.round_id, self.ids[role], stages, timeout)

    async def phase(self, phase: str, timeout: float = 60.0) -> RoundState:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.api.round_state(self.round_id)
            if state.phase == phase:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"the round is at {state.phase}, not {phase}")
            await asyncio.sleep(0.3)

    def named(self, predicate) -> list[str]:
        return [r.name for r in FULL_ROLES if predicate(r)]

    async def play(self, config) -> None:
        """Registration to the round's close; every journey ends."""
        for serial, role in enumerate(FULL_ROLES, start=1):
            result = await self.api.register(config, registration(serial, role.formasi), PORTAL)
            assert result.status == "registered", result.refusals
            self.ids[role.name] = result.applicant_id
        everyone = list(self.ids)
        await self.at(everyone, {Stage.ADMIN_CHECK})

        # Administrative check: TMS for four, one of whom does not appeal.
        for role in FULL_ROLES:
            findings = (
                [DocumentFinding(document="ijazah", reason="not legalised")]
                if role.admin_tms
                else []
            )
            await self.send(
                role.name,
                AdminReport(
                    report_id=f"adm-{role.name}",
                    reported_by="bkpsdm-verifikator",
                    findings=findings,
                ),
            )
        await self.close("registration", "record-histories: registration complete")
        await self.close("administration", "record-histories: every application verified")

        # Sanggah: accepted, rejected, never answered; one TMS files none.
        appellants = self.named(lambda r: r.appeal is not None)
        await self.at(self.named(lambda r: r.admin_tms), {Stage.ADMIN_APPEAL})
        for name in appellants:
            await self.send(
                name,
                AppealFiling(
                    report_id=f"sanggah-{name}", reported_by=PORTAL, reason="ijazah was legalised"
                ),
            )
            if self.roles[name].appeal != "unanswered":
                await self.send(
                    name,
                    AppealAnswer(
                        report_id=f"jawab-{name}",
                        reported_by="bkpsdm-verifikator",
                        accepted=self.roles[name].appeal == "accepted",
                        note="checked against the original",
                    ),
                )
        # The TMS that stay TMS end before SKD closes (the appeal and answer windows pass).
        await self.at(
            self.named(lambda r: r.admin_tms and r.appeal != "accepted"), {Stage.ENDED}, 60
        )

        # SKD: one absent (TH); the window is extended once, then closed early.
        sitting = self.named(lambda r: r.skd is not None)
        await self.at(sitting, {Stage.SKD})
        for name in sitting:
            twk, tiu, tkp = self.roles[name].skd  # type: ignore[misc]
            await self.send(
                name,
                SkdReport(
                    report_id=f"skd-{name}",
                    reported_by="cat-bkn",
                    session_id="S001",
                    twk=twk,
                    tiu=tiu,
                    tkp=tkp,
                ),
            )
        skd = config.schedule.skd
        await self.command(
            ExtendWindow(
                report_id="extend-skd",
                reported_by=OPERATOR,
                window="skd",
                new_closes=skd.closes + timedelta(seconds=60),
                reason="record-histories: a CAT site reported a power cut",
            )
        )
        await self.close("skd", "record-histories: every SKD session reported")

        # SKB: one fails the health gate, one is disqualified before the close.
        skb = self.named(lambda r: r.skb is not None)
        await self.at(skb, {Stage.SKB})
        for name in skb:
            cat, praktik = self.roles[name].skb  # type: ignore[misc]
            await self.send(
                name,
                SkbScoreReport(
                    report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
                ),
            )
            await self.send(
                name,
                SkbScoreReport(
                    report_id=f"praktik-{name}",
                    reported_by="panel-praktik",
                    component="praktik",
                    score=praktik,
                ),
            )
            await self.send(
                name,
                GateReport(
                    report_id=f"health-{name}",
                    reported_by="rsud",
                    component="health",
                    decision=AdminDecision(self.roles[name].health),
                ),
            )
        await self.send(
            "disqualified",
            Disqualification(
                report_id="dis-disqualified",
                reported_by=OPERATOR,
                reason="remote-access cheating found in the CAT activity log",
            ),
        )
        await self.at(["disqualified"], {Stage.ENDED})
        await self.close("skb", "record-histories: every SKB component reported")

        # Final result: everyone in the ranking waits out the sanggah against it; one who lost on
        # rank files one, which the instansi rejects. A winner of F2 withdraws in that window; the
        # seat goes to optimalisasi, where the best loser declines and the next accepts (P/L-2).
        await self.at(
            ["pns", "filing-incomplete", "withdraws-after-winning", "declines-offer"],
            {Stage.FINAL_APPEAL},
        )
        await self.send(
            "declines-offer",
            AppealFiling(
                report_id="sanggah-akhir", reported_by=PORTAL, reason="the interview score is wrong"
            ),
        )
        await self.send(
            "declines-offer",
            AppealAnswer(
                report_id="jawab-akhir",
                reported_by="bkpsdm-verifikator",
                accepted=False,
                note="the scores were checked against the panel's sheets",
            ),
        )
        await self.send(
            "withdraws-after-winning",
            Withdrawal(report_id="aps-withdraws", reported_by=PORTAL, reason="another position"),
        )
        await self.at(["withdraws-after-winning"], {Stage.ENDED})
        state = await self.api.round_state(self.round_id)
        assert state.phase == "final_appeal", f"the withdrawal came late: {state.phase}"
        answers = {"declines-offer": False, "appeal-won-pl2-dismissed": True}
        if self.offers_stopped:
            await self.stopped()
            answers = {}
        for name, accept in answers.items():
            offer_id = await self.offer_for(name)
            await self.send(
                name,
                OfferAnswer(report_id=f"jawab-{offer_id}", reported_by=PORTAL, accept=accept),
                attempts=20,
            )
        # Those who lost on rank wait in optimalisasi until filing closes (a seat given up
        # before then is offered again), then end TL: waited for after the filing close below.

        # Filing: the TMT moves first (before any NIP); one winner never files (TMS-DRH).
        await self.phase("filing")
        filers = ["pns", "appeal-won-pl2-dismissed", "filing-incomplete"]
        if self.offers_stopped:
            filers.remove("appeal-won-pl2-dismissed")
        await self.at(filers, {Stage.FILING})
        await self.command(
            MoveTmt(
                report_id="move-tmt",
                reported_by=OPERATOR,
                new_tmt=FULL_NEW_TMT,
                reason="record-histories: the SK CPNS is signed a month later",
            )
        )
        for name in filers:
            deadline = time.monotonic() + 30
            while (await journey_state(self.client, self.round_id, self.ids[name])).tmt != (
                FULL_NEW_TMT
            ):
                assert time.monotonic() < deadline, f"{name} never heard of the TMT move"
                await asyncio.sleep(0.3)
        for name in filers[:-1]:  # all but filing-incomplete
            await self.send(
                name,
                FilingReport(
                    report_id=f"drh-{name}", reported_by="bkpsdm-verifikator", complete=True
                ),
            )
        await self.at(filers[:-1], {Stage.LATSAR})
        await self.close("filing", "record-histories: the DRH of every filer verified")
        waiting_tl = ["lost-on-rank", "declines-offer"]
        if self.offers_stopped:
            waiting_tl.append("appeal-won-pl2-dismissed")
        await self.at(["filing-incomplete", *waiting_tl], {Stage.ENDED})

        # Latsar: one passes (PNS), one does not (DIBERHENTIKAN).
        await self.phase("latsar")
        for name, passed in (("pns", True), ("appeal-won-pl2-dismissed", False)):
            if name not in filers:
                continue
            await self.send(
                name,
                LatsarReport(report_id=f"latsar-{name}", reported_by="lan", passed=passed),
            )
        await self.close("latsar", "record-histories: the Latsar cohort is complete")
        await self.at(everyone, {Stage.ENDED})
        await self.phase("closed")

    async def stopped(self, timeout: float = 60.0) -> None:
        """Wait for the round to record that optimalisasi stopped at its history budget."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.api.round_state(self.round_id)
            if any(d.outcome == "offers stopped" for d in state.decisions):
                assert not state.offers, f"offers made past the budget: {state.offers}"
                return
            if time.monotonic() > deadline:
                last = [(d.stage, d.outcome) for d in state.decisions[-6:]]
                raise AssertionError(f"optimalisasi never stopped; last decisions {last}")
            await asyncio.sleep(0.3)

    async def offer_for(self, role: str, timeout: float = 60.0) -> str:
        """The pending optimalisasi offer made to `role` (waits for it)."""
        marker = f"/offer/{self.ids[role]}/"
        deadline = time.monotonic() + timeout
        while True:
            state = await self.api.round_state(self.round_id)
            for offer_id, status in state.offers.items():
                if marker in offer_id and status == "pending":
                    return offer_id
            if time.monotonic() > deadline:
                last = [(d.stage, d.outcome) for d in state.decisions[-6:]]
                raise AssertionError(
                    f"no offer to {role}; offers {state.offers}; round at {state.phase}, last "
                    f"decisions {last}"
                )
            await asyncio.sleep(0.3)

    async def outcomes(self) -> dict[str, JourneyState]:
        return {
            name: await journey_state(self.client, self.round_id, applicant_id)
            for name, applicant_id in self.ids.items()
        }


async def run_full_round(
    client: Client,
    task_queue: str,
    pseudonym_key: bytes,
    round_id: str,
    history_budget: int | None = None,
    continued: bool = False,
) -> FullRound:
    """Drive the full round to its close and wait until every workflow of it has completed."""
    import tomli_w

    api = RecruitmentApi(client, task_queue, pseudonym_key, keyring=TEST_KEYRING)
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 2)],
        FULL_WINDOWS,
        appeal_window=FULL_APPEAL_WINDOW,
        answer_within=FULL_ANSWER_WITHIN,
        offer_within=FULL_OFFER_WITHIN,
        t0=datetime.now(UTC),
        extra={
            "broadcast_page_size": FULL_PAGE_SIZE,
            "fold_pages_at": FULL_FOLD_AT,
            **({} if history_budget is None else {"optimalisasi_history_budget": history_budget}),
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.toml"
        path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        await api.create_round(path, OPERATOR)
    stopped = history_budget is not None and not continued
    driver = FullRound(client, api, round_id, offers_stopped=stopped)
    await driver.play(config)
    deadline = time.monotonic() + 60
    query = f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    while running := [wf.id async for wf in client.list_workflows(query)]:
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {running}")
        await asyncio.sleep(0.5)
    return driver


def write_histories(histories: list[RecordedHistory], out: Path) -> list[Path]:
    """One JSON file per run, named so that the workflow id can be read back from the name."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for h in histories:
        path = out / history_file_name(h.workflow_id, h.run_id)
        path.write_text(h.history.to_json())
        paths.append(path)
    return paths


async def record(
    out: Path,
    full: bool = False,
    history_budget: int | None = None,
    continued: bool = False,
    panels: bool = False,
    national: bool = False,
    sealed: bool = False,
    claim_sweep: bool = False,
    zone: str | None = None,
    seat_given_back: str | None = None,
    forged: bool = False,
    panel_after_close: bool = False,
) -> None:
    """Start a private stack, run the round, write the histories and the payload key."""
    from temporalio.testing import WorkflowEnvironment

    from apps.fleet import build_worker
    from runtime import attributes
    from runtime.connection import connect
    from runtime.embedded import ensure_stack, isolated_settings, stop_stack, temporal_executable
    from runtime.keys import load_or_create_keys

    payload_key = base64.b64encode(os.urandom(32)).decode()
    driver: FullRound | None = None
    with tempfile.TemporaryDirectory() as data_dir:
        server = None
        # Every key given: with a temporal_address (the full round's own server) nothing is
        # generated. The pseudonym and bundle keys are throwaway; only the payload key is kept.
        overrides: dict = {
            "payload_key": payload_key,
            "pseudonym_key": base64.b64encode(os.urandom(32)).decode(),
            "signing_key": base64.b64encode(os.urandom(32)).decode(),
            "task_queue": "record-histories",
        }
        if full:
            # A dev server of the script's own (the embedded one takes no dynamic configuration),
            # with the read model on the embedded PostgreSQL as usual.
            server = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(temporal_executable()),
                dev_server_extra_args=[
                    "--dynamic-config-value",
                    f"limit.historyCount.suggestContinueAsNew={FULL_SUGGEST_CONTINUE_AS_NEW}",
                ],
                search_attributes=attributes.ALL,
            )
            overrides["temporal_address"] = server.client.service_client.config.target_host
        settings = isolated_settings(Path(data_dir), **overrides)
        try:
            stack = await ensure_stack(settings)
            try:
                keys = load_or_create_keys(settings)
                client = await connect(settings, stack, keys)
                pool = await open_pool(stack.database_url, max_size=8)
                early = None
                expected: dict[str, str] = {}  # journey's workflow id: the marker it must hold
                held = HeldBroadcasts()
                try:
                    async with (
                        await worker_holding_broadcasts(client, settings, pool, held)
                        if seat_given_back or panel_after_close
                        else await build_worker(client, settings, pool),
                        contextlib.AsyncExitStack() as workers,
                    ):
                        if full:
                            driver = await run_full_round(
                                client,
                                settings.task_queue,
                                keys.pseudonym_key,
                                "recorded",
                                history_budget,
                                continued,
                            )
                            round_id = driver.round_id
                        elif national:
                            round_id, recorded_ids = await run_national_round(
                                client, settings.task_queue, keys.pseudonym_key
                            )
                        elif claim_sweep:
                            round_id, recorded_ids = await run_claim_sweep_round(
                                client, settings.task_queue, keys.pseudonym_key, forged
                            )
                        elif seat_given_back:
                            round_id, ids = await run_seat_given_back_round(
                                client,
                                settings.task_queue,
                                keys.pseudonym_key,
                                held,
                                seat_given_back,
                            )
                            expected = {
                                journey_workflow_id(round_id, ids["C1"]): SEATS_GIVEN_BACK[
                                    seat_given_back
                                ]
                            }
                        elif zone:
                            round_id, ids = await run_small_round(
                                client,
                                settings.task_queue,
                                keys.pseudonym_key,
                                round_id="recorded",
                                zone=zone,
                                tms=frozenset({"C3"}),
                            )
                            expected = {
                                journey_workflow_id(round_id, i): "notice-in-round-zone"
                                for i in ids.values()
                            }
                        elif panels:
                            round_id, _ = await run_panel_round(
                                client, settings.task_queue, keys.pseudonym_key, "recorded"
                            )
                        elif panel_after_close:
                            round_id, ids = await run_panel_round(
                                client, settings.task_queue, keys.pseudonym_key, "recorded", held
                            )
                            expected = {
                                journey_workflow_id(round_id, ids["B"]): "panel-change-after-close"
                            }
                        else:
                            if sealed:
                                early = AnnouncedBeforeAdmission(
                                    "C3",
                                    lambda queue: build_worker(
                                        client,
                                        settings.model_copy(update={"task_queue": queue}),
                                        pool,
                                    ),
                                    workers,
                                )
                            round_id, _ = await run_small_round(
                                client,
                                settings.task_queue,
                                keys.pseudonym_key,
                                round_id="recorded",
                                early=early,
                            )
                        await asyncio.sleep(1.0)  # visibility catches up
                        if national or claim_sweep:
                            histories = [
                                h for i in recorded_ids for h in await round_histories(client, i)
                            ]
                            if forged:  # every claim, held or released, looked for its journey
                                expected = {
                                    h.workflow_id: CLAIM_LOOKS_AGAIN
                                    for h in histories
                                    if h.kind == "NationalClaim"
                                }
                        else:
                            histories = await round_histories(client, round_id)
                        if driver is not None:
                            live = await driver.outcomes()
                        if early is not None:
                            early_state = await journey_state(client, round_id, early.applicant_id)
                finally:
                    await pool.close()
            finally:
                stop_stack(settings)
        finally:
            if server is not None:
                await server.shutdown()
    round_runs = sum(1 for h in histories if h.kind == "round")
    if continued and round_runs < 2:
        raise SystemExit(
            f"the round ran once: --history-budget {history_budget} left room for every offer "
            "(or none) in its first run; nothing written"
        )
    if early is not None and (problems := check_sealed(histories, early.applicant_id, early_state)):
        raise SystemExit("; ".join(problems) + "; nothing written")
    if problems := check_markers(histories, expected):
        raise SystemExit("; ".join(problems) + "; nothing written")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    paths = write_histories(histories, out)
    (out / "payload_key.b64").write_text(payload_key + "\n")
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} histories ({total / 1024:.0f} KiB) and payload_key.b64 to {out}")
    if driver is not None:
        wrong = []
        for role in full_roles(driver.offers_stopped):
            state = live[role.name]
            reached = state.terminal.value if state.terminal else state.stage.value
            if reached != role.expected:
                wrong.append(f"{role.name}: expected {role.expected}, reached {reached}")
        assert not wrong, "the full round did not play as designed: " + "; ".join(wrong)
        names = {driver.ids[r.name]: r.name for r in FULL_ROLES}
        if await summarise(out, names):
            raise SystemExit("the recorded set has problems (above)")
    elif early is not None and await summarise(
        out, {early.applicant_id: "announced-before-admission"}
    ):
        raise SystemExit("the recorded set has problems (above)")
    elif expected and await summarise(out):
        raise SystemExit("the recorded set has problems (above)")


# --- what a recorded set covers -----------------------------------------------------------------


def _markers(history: WorkflowHistory, name: str):
    """The attributes of the history's markers named `name`, in order."""
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == name:
                yield attrs


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The patch ids of the history's `workflow.patched` markers (core_patch), in order."""
    return [
        json.loads(payload.data)["id"]
        for attrs in _markers(history, "core_patch")
        for payload in attrs.details["patch-data"].payloads
    ]


def local_activities(history: WorkflowHistory) -> list[tuple[int, str]]:
    """Each local activity the history records (core_local_activity markers), in order: the
    workflow task that ran it (its completed event's id) and the activity's type."""
    return [
        (
            attrs.workflow_task_completed_event_id,
            json.loads(attrs.details["data"].payloads[0].data).get("activity_type", "?"),
        )
        for attrs in _markers(history, "core_local_activity")
    ]


def timers_started(history: WorkflowHistory, after_event: int = 0) -> list[timedelta]:
    """How long each timer the history started after event `after_event` was set for (durable
    sleeps, pauses, back-offs), in order."""
    return [
        timedelta(seconds=e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds())
        for e in history.events
        if e.event_id > after_event and e.HasField("timer_started_event_attributes")
    ]


async def summarise(directory: Path, names: dict[str, str] | None = None) -> int:
    """Print each journey's outcome (re-derived by replay) and each history's patch markers.

    Returns the number of problems: histories that do not replay cleanly with the current code, or
    that re-derive no decision (the replay test requires every run to re-derive some).
    """
    key = base64.b64decode((directory / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    histories = load_histories(directory)
    outcomes = {o.run_id: o for o in await replay([h.history for h in histories], converter)}
    names = names or {}
    failed = [o for o in outcomes.values() if not o.ok]
    print(f"\n{directory}: {len(histories)} histories, {len(failed)} not replaying cleanly")
    for o in failed:
        print(f"  NOT OK {o.workflow_id} {o.run_id}: {o.failure or o.drift}")
    print("\njourney outcomes (re-derived by replay):")
    tally: Counter[str] = Counter()
    for h in histories:
        if h.kind != "journey":
            continue
        state = outcomes[h.run_id].state
        applicant = h.workflow_id.rsplit("/", 1)[1]
        outcome = state.terminal.value if state.terminal else f"(running: {state.stage.value})"
        tally[outcome] += 1
        trail = " > ".join(
            f"{d.stage}:{d.outcome}" for d in state.decisions if d.stage != "registered"
        )
        print(
            f"  {state.formasi_code} {applicant} {names.get(applicant, ''):26} {outcome:14} "
            f"final={state.final_code.value if state.final_code else '-':6} "
            f"placed={state.placed_formasi or '-'} nip={'yes' if state.nip else 'no'} "
            f"tmt={state.tmt}"
        )
        print(f"      {trail}")
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
    for h in histories:
        if h.kind == "round" and outcomes[h.run_id].state is not None:
            print("\nround decisions (re-derived by replay):")
            for d in outcomes[h.run_id].state.decisions:
                detail = {k: v for k, v in d.input.items() if k in ("offers", "declined", "window")}
                print(f"  {d.stage}: {d.outcome} ({d.actor}) {detail or ''}")
    print("\npatch markers (core_patch) per history:")
    for h in histories:
        o = outcomes[h.run_id]
        last = h.history.events[-1].WhichOneof("attributes") or ""
        end = last.replace("workflow_execution_", "").replace("_event_attributes", "")
        end = end if end in ("completed", "continued_as_new", "failed", "terminated") else "open"
        decisions = len(getattr(o.state, "decisions", []) or [])
        print(
            f"  {h.kind:8} {h.workflow_id} run {h.run_id[-12:]} ({len(h.history.events)} events, "
            f"{decisions} decisions, {end}): {', '.join(patch_markers(h.history)) or 'none'}"
        )
    # A run that continued-as-new before its first decision (a formasi closing SKD over pages) has
    # none to re-derive; any other run must re-derive at least one.
    continued = {
        h.run_id
        for h in histories
        if h.history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    }
    silent = [
        o
        for o in outcomes.values()
        if o.ok and not getattr(o.state, "decisions", None) and o.run_id not in continued
    ]
    for o in silent:
        print(f"  PROBLEM {o.workflow_id} (run {o.run_id}) re-derives no decision")
    return len(failed) + len(silent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "histories"
    )
    parser.add_argument(
        "--full", action="store_true", help="play a whole round to its close (FULL_ROLES)"
    )
    parser.add_argument(
        "--panels",
        action="store_true",
        help="play interview panels drawn from a pool: a conflict, a refused score, a flag struck "
        "on review (run_panel_round)",
    )
    parser.add_argument(
        "--national",
        action="store_true",
        help="play a national round with two instansi rounds joined to it (run_national_round)",
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="the small round, one journey of which hears an unsealed announcement before its "
        "admission (AnnouncedBeforeAdmission)",
    )
    parser.add_argument(
        "--claim-sweep",
        action="store_true",
        help="play a national round whose claims sweep themselves: one released after its grace, "
        "one held by its journey (run_claim_sweep_round)",
    )
    parser.add_argument(
        "--forged",
        action="store_true",
        help="with --claim-sweep: two more claims whose registrar dies; two of the three told in "
        "the journey's words (claim_taken, take_claim) that their journey took them",
    )
    parser.add_argument(
        "--zone",
        metavar="TZ",
        help="the small round in that timezone (Asia/Jayapura: WIT), C3 found TMS at the "
        "administrative check",
    )
    parser.add_argument(
        "--seat-given-back",
        choices=sorted(SEATS_GIVEN_BACK),
        help="the small round whose winner gives the seat back: withdrawn before its final "
        "result reached it, or its filing reported incomplete (run_seat_given_back_round)",
    )
    parser.add_argument(
        "--panel-after-close",
        action="store_true",
        help="the round of --panels, a conflict recorded by the committee after the SKB closed "
        "and before the close reached B's journey (run_panel_round with held broadcasts)",
    )
    parser.add_argument(
        "--history-budget",
        type=int,
        metavar="N",
        help="with --full: the round's optimalisasi_history_budget (1 stops optimalisasi before "
        "its first offer)",
    )
    parser.add_argument(
        "--continued",
        action="store_true",
        help="with --history-budget: expect the round to continue as new in optimalisasi rather "
        "than stop offering (fails, writing nothing, when it ran once)",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        metavar="DIR",
        help="record nothing: print what the recorded set in DIR covers",
    )
    args = parser.parse_args()
    if args.history_budget is not None:
        if not args.full:
            parser.error("--history-budget needs --full")
        if not 1 <= args.history_budget <= MAX_OPTIMALISASI_HISTORY_BUDGET:
            parser.error(
                f"--history-budget {args.history_budget} is outside 1.."
                f"{MAX_OPTIMALISASI_HISTORY_BUDGET}"
            )
    if args.continued and args.history_budget is None:
        parser.error("--continued needs --history-budget")
    if args.forged and not args.claim_sweep:
        parser.error("--forged needs --claim-sweep")
    if args.summary:
        raise SystemExit(1 if asyncio.run(summarise(args.summary)) else 0)
    else:
        rounds = (
            args.panels,
            args.full,
            args.national,
            args.sealed,
            args.claim_sweep,
            args.panel_after_close,
        )
        if sum((*rounds, bool(args.zone), bool(args.seat_given_back))) > 1:
            parser.error(
                "--panels, --full, --national, --sealed, --claim-sweep, --panel-after-close, "
                "--zone and --seat-given-back are different rounds: give one"
            )
        asyncio.run(
            record(
                args.out,
                args.full,
                args.history_budget,
                args.continued,
                args.panels,
                args.national,
                args.sealed,
                args.claim_sweep,
                args.zone,
                args.seat_given_back,
                args.forged,
                args.panel_after_close,
            )
        )


if __name__ == "__main__":
    run_and_end(main)
