"""A compressed round on the real dev server and PostgreSQL: every stage, every deadline."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

import starter
from activities.pages import PageStore
from auditing.history import round_histories
from auditing.pagestore import check_pages, rebuild
from client.api import RecruitmentApi, RefusedError
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    AppealAnswer,
    AppealFiling,
    CloseWindow,
    Disqualification,
    FilingReport,
    FormasiState,
    GateReport,
    JourneyState,
    LatsarReport,
    OfferAnswer,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.pages import PageRef
from runtime.connection import data_converter
from runtime.sealed import ColumnCipher
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from workflows.ids import formasi_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Written from DOMAIN.md for the scenario below, not from the code's output.
EXPECTED = {
    "A1": ("PNS", "P/L"),  # best in F1: seat, NIP, Latsar passed
    "A2": ("TL", "TL"),  # second in F1: offered F2's empty seat, declines
    "A3": ("PNS", "P/L-2"),  # third in F1: gets the seat A2 declined
    "A4": ("T/L", None),  # TMS, appeal accepted, then below the SKD threshold
    "A5": ("TMS", None),  # TMS, no appeal
    "A6": ("TH", None),  # MS but never sat SKD
    "A7": ("T/L", None),  # F2, below threshold
    "A8": ("P", None),  # F1, passed the threshold but 4th: outside 3 x quota
    "A9": ("DIS", None),  # F2's only SKB participant, disqualified during SKB
    "A10": (
        "TH",
        "TH",
    ),  # F1, tied exactly with A3 at the cut: goes on too, then misses the SKB CAT
    "B1": ("TMS-SKB", "TMS-SKB"),  # F3 (disabilitas): passes its category's threshold, health TMS
    "B2": ("T/L", None),  # F3: below even the disabilitas threshold
    "C1": ("TMS-DRH", "P/L"),  # F4: wins its seat, files an incomplete DRH
}
FORMASI_OF = {"A7": "F2", "A9": "F2", "B1": "F3", "B2": "F3", "C1": "F4"}
CATEGORY_OF = {"B1": "disabilitas", "B2": "disabilitas"}
LATSAR_PASSES = {"A1": True, "A3": True}

SKD = {  # twk, tiu, tkp
    "A1": (120, 140, 190),
    "A2": (110, 130, 185),
    "A3": (100, 120, 180),
    "A4": (60, 90, 170),
    "A7": (70, 75, 170),
    "A8": (90, 100, 170),
    "A9": (100, 100, 180),
    "A10": (100, 120, 180),
    # B1 fails the general rules (TWK 60 < 65) but meets disabilitas: total 290 >= 286, TIU 65 >= 60.
    "B1": (60, 65, 165),
    "B2": (50, 55, 170),
    "C1": (100, 100, 180),
}
SKB = {
    "A1": (450, 90),
    "A2": (400, 80),
    "A3": (380, 80),
    "B1": (300, 70),
    "C1": (350, 75),
}  # cat, praktik
HEALTH_TMS = {"B1"}


async def _state(client, round_id: str, applicant_id: str) -> JourneyState:
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return await handle.query("state", result_type=JourneyState)


async def _wait_stage(client, round_id, applicant_id, stages, timeout=40.0) -> JourneyState:
    deadline = time.monotonic() + timeout
    while True:
        s = await _state(client, round_id, applicant_id)
        if s.stage in stages:
            return s
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{applicant_id} stuck at {s.stage} (wanted {stages}): {s.terminal_reason}"
            )
        await asyncio.sleep(0.3)


async def test_round_end_to_end(client, keys, running_worker, stack, tmp_path):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"e2e-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [
            formasi("F1", 1),
            formasi("F2", 1),
            formasi("F3", 1, jabatan="Arsiparis Terampil", category="disabilitas"),
            formasi("F4", 1, jabatan="Analis Kebijakan Ahli Pertama"),
        ],
        # Registration closes on its timer; the later windows are long and the committee closes
        # each early (with a reason) once its results are in, as the demo does.
        {
            "registration": (-60, 5),
            "administration": (5, 600),
            "skd": (600, 1200),
            "skb": (1200, 1800),
            "filing": (1800, 2400),
            "latsar": (2400, 3000),
        },
        t0=t0,
        # One journey per broadcast page and every 2 page references folded into an index page:
        # every expected code below also checks the rankings read through index pages.
        extra={"broadcast_page_size": 1, "fold_pages_at": 2},
    )
    path = tmp_path / "round.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    _, created = await api.create_round(path, OPERATOR)
    assert created
    _, created_again = await api.create_round(path, OPERATOR)
    assert not created_again

    # People of this test's own (a NIK's serial part drawn): a person appointed by another test
    # of the session keeps the NIP they hold, whose TMT is that round's.
    base = uuid.uuid4().int % 8000 + 1000
    people = {
        n: registration(base + i, FORMASI_OF.get(n, "F1"), category=CATEGORY_OF.get(n, "umum"))
        for i, n in enumerate(EXPECTED, start=1)
    }
    ids = {}
    for name, reg in people.items():
        result = await api.register(config, reg, "sscasn", now=t0 + timedelta(seconds=1))
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id
    repeat = await api.register(config, people["A1"], "sscasn", now=t0 + timedelta(seconds=1))
    assert repeat.status == "repeat"
    other = people["A2"].model_copy(update={"nik": people["A1"].nik, "name": "Orang Lain"})
    conflict = await api.register(config, other, "sscasn", now=t0 + timedelta(seconds=1))
    assert (
        conflict.status == "refused" and "one NIK may register once" in conflict.refusals[0].reason
    )

    async def report(name, message):
        return await api.report(round_id, ids[name], message)

    async def close(window):
        await _wait_phase(api, round_id, window)
        await api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{window}",
                reported_by=OPERATOR,
                window=window,
                reason="all results are in",
            ),
        )

    for name in EXPECTED:
        await _wait_stage(client, round_id, ids[name], {Stage.ADMIN_CHECK})
        findings = (
            [DocumentFinding(document="ijazah", reason="not legalised")]
            if name in ("A4", "A5")
            else []
        )
        await report(
            name,
            AdminReport(
                report_id=f"adm-{name}", reported_by="bkpsdm-verifikator", findings=findings
            ),
        )

    await close("administration")
    await _wait_stage(client, round_id, ids["A4"], {Stage.ADMIN_APPEAL})
    await report(
        "A4", AppealFiling(report_id="appeal-A4", reported_by="sscasn", reason="legalised")
    )
    await report(
        "A4", AppealAnswer(report_id="ans-A4", reported_by="bkpsdm-verifikator", accepted=True)
    )

    for name, (twk, tiu, tkp) in SKD.items():
        await _wait_stage(client, round_id, ids[name], {Stage.SKD})
        msg = SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp)
        first = await report(name, msg)
        assert await report(name, msg) == first  # a repeat: same answer, no second effect
    with pytest.raises(RefusedError, match="different content"):
        await report(
            "A1", SkdReport(report_id="skd-A1", reported_by="cat-bkn", twk=5, tiu=5, tkp=5)
        )
    with pytest.raises(RefusedError, match="tiu=182"):
        await report("A6", SkdReport(report_id="bad", reported_by="cat-bkn", twk=5, tiu=182, tkp=5))
    with pytest.raises(RefusedError, match="someone has no public key in this round"):
        await report("A6", SkdReport(report_id="x", reported_by="someone", twk=5, tiu=5, tkp=5))
    with pytest.raises(RefusedError, match="no such applicant in this round"):
        await api.report(
            round_id,
            "NOSUCHAPPLICANT1",
            SkdReport(report_id="ghost", reported_by="cat-bkn", twk=5, tiu=5, tkp=5),
        )
    with pytest.raises(RefusedError, match="not allowed to report portal"):
        await report("A6", Withdrawal(report_id="w-A6", reported_by="cat-bkn", reason="spoofed"))
    assert (
        await _state(client, round_id, ids["A6"])
    ).skd_total is None  # refused reports left no trace
    assert (await _state(client, round_id, ids["A6"])).terminal is None

    await close("skd")
    for name in ("A1", "A2", "A3", "A9", "A10", "B1", "C1"):
        await _wait_stage(client, round_id, ids[name], {Stage.SKB}, timeout=30)
    for name, (cat, praktik) in SKB.items():
        await report(
            name,
            SkbScoreReport(
                report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
            ),
        )
        await report(
            name,
            SkbScoreReport(
                report_id=f"pr-{name}",
                reported_by="panel-praktik",
                component="praktik",
                score=praktik,
            ),
        )
        await report(
            name,
            GateReport(
                report_id=f"h-{name}",
                reported_by="rsud",
                component="health",
                decision="TMS" if name in HEALTH_TMS else "MS",
            ),
        )
    await report(
        "A9",
        Disqualification(
            report_id="dis-A9",
            reported_by=OPERATOR,
            reason="remote-access cheating found in the CAT audit",
        ),
    )
    await close("skb")

    await _wait_stage(client, round_id, ids["A2"], {Stage.OPTIMALISASI}, timeout=30)
    s2 = await _wait_offer(client, round_id, ids["A2"])
    assert s2.stage == Stage.OPTIMALISASI
    await report("A2", OfferAnswer(report_id="offer-A2", reported_by="sscasn", accept=False))
    await _wait_offer(client, round_id, ids["A3"])
    await report("A3", OfferAnswer(report_id="offer-A3", reported_by="sscasn", accept=True))

    await _wait_stage(client, round_id, ids["C1"], {Stage.FILING}, timeout=30)
    await report(
        "C1",
        FilingReport(
            report_id="drh-C1",
            reported_by="bkpsdm-verifikator",
            complete=False,
            missing=["surat keterangan bebas narkoba"],
        ),
    )
    for name in ("A1", "A3"):
        await _wait_stage(client, round_id, ids[name], {Stage.FILING}, timeout=30)
        await report(
            name,
            FilingReport(report_id=f"drh-{name}", reported_by="bkpsdm-verifikator", complete=True),
        )
        await _wait_stage(client, round_id, ids[name], {Stage.LATSAR}, timeout=30)
    # The committee's view names both CPNS as lacking their Latsar result (the close ends nobody).
    ctx = starter.Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    deadline = time.monotonic() + 60
    while (shown := await starter.outstanding(ctx, round_id)) and (
        sum(f.at_stage["latsar"] for f in shown.formasi) < 2 and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.5)  # a journey writes its row as it enters the stage
    lacking = {
        a.applicant_id: (r.stage, r.component, r.ends_as)
        for f in shown.formasi
        for r in f.reports
        for a in r.applicants
    }
    assert lacking == {ids[n]: ("latsar", "latsar", "CPNS") for n in ("A1", "A3")}
    for name in ("A1", "A3"):
        await report(
            name,
            LatsarReport(report_id=f"latsar-{name}", reported_by="lan", passed=LATSAR_PASSES[name]),
        )
    await close("filing")
    await close("latsar")

    finals = {}
    for name in EXPECTED:
        s = await _wait_stage(client, round_id, ids[name], {Stage.ENDED}, timeout=40)
        finals[name] = (
            s.terminal.value if s.terminal else None,
            s.final_code.value if s.final_code else None,
        )
    assert finals == EXPECTED

    await _wait_phase(api, round_id, "closed")
    query = f"RoundId = '{round_id}' AND RecruitmentStage = 'closed'"
    for _ in range(20):  # visibility is eventually consistent
        closed_rounds = [wf.id async for wf in client.list_workflows(query)]
        if closed_rounds:
            break
        await asyncio.sleep(0.25)
    assert closed_rounds == [f"{round_id}/round"]  # operators can filter rounds by their phase

    a1 = await _state(client, round_id, ids["A1"])
    assert a1.nip and a1.nip.startswith("19980517" + "202703" + "1")
    a3 = await _state(client, round_id, ids["A3"])
    assert a3.placed_formasi == "F2" and a3.nip != a1.nip

    rows = {
        r["applicant_id"]: r
        for r in await pool.fetch("SELECT * FROM applicants WHERE round_id = $1", round_id)
    }
    for name in EXPECTED:
        s = await _state(client, round_id, ids[name])
        row = rows[ids[name]]
        assert (row["stage"], row["terminal"], row["final_code"], row["skd_total"]) == (
            s.stage.value,
            s.terminal.value,
            s.final_code.value if s.final_code else None,
            s.skd_total,
        )
        count = await pool.fetchval(
            "SELECT count(*) FROM decisions WHERE round_id=$1 AND applicant_id=$2",
            round_id,
            ids[name],
        )
        assert count == len(s.decisions)

    # The formasi's answers to the SKD close and to the SKB close were both read through index
    # pages (the expected codes above came out of rankings over them).
    f1 = await client.get_workflow_handle(formasi_workflow_id(round_id, "F1")).query(
        "state", result_type=FormasiState
    )
    (cut,) = [d for d in f1.decisions if d.outcome == "cut"]
    kinds = dict(
        await pool.fetch(
            "SELECT digest, kind FROM pages WHERE owner = $1", formasi_workflow_id(round_id, "F1")
        )
    )
    # The SKD ranking's decision records the one reference it carried: an index page.
    assert [kinds.get(d) for d in cut.input["pages"]] == ["page-index"]
    assert list(kinds.values()).count("page-index") >= 2
    assert f1.final_entries == 3  # A1, A2 and A3 completed SKB (the count kept beside the index)

    # A cheating finding after appointment (DOMAIN.md: DIS "even after appointment"): the journey
    # stays PNS and the applicant's aftermath records the DIS (tests/flows/test_revocation.py).
    late = await api.report(
        round_id,
        ids["A1"],
        Disqualification(report_id="dis-A1-late", reported_by=OPERATOR, reason="joki pada SKD"),
    )
    assert late.effect == "disqualified after the journey ended"
    assert (
        await pool.fetchval(
            "SELECT code FROM revocations WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            ids["A1"],
        )
        == "DIS"
    )

    # `audit.py check-pages`: the page store holds every page the round's histories reference,
    # the index pages read and their children checked too; a page lost is named with the first
    # history event that references it (tests/flows/test_page_check.py: a page reached only
    # through an index).
    histories = await round_histories(client, round_id, "formasi")
    histories += await round_histories(client, round_id, "round")
    cipher, converter = ColumnCipher.from_keys(keys), data_converter(keys)
    whole = await check_pages(pool, cipher, round_id, histories, converter)
    assert (whole.ok, whole.problems) == (True, [])
    assert whole.kinds.get("page-index", 0) >= 2
    assert whole.read == len(await pool.fetch(
        "SELECT 1 FROM pages WHERE owner = ANY($1::text[])", [h.workflow_id for h in histories]
    )) - whole.unreferenced  # fmt: skip
    owners = sorted({h.workflow_id for h in histories})
    store = PageStore(pool, cipher)  # each page's kind and body, as kept
    bodies = {
        r["digest"]: await store.fetch(PageRef(digest=r["digest"], count=0))
        for r in await pool.fetch("SELECT digest FROM pages WHERE owner = ANY($1::text[])", owners)
    }
    replies = next(d for d, kind in kinds.items() if kind == "close-replies")
    await pool.execute("DELETE FROM pages WHERE digest = $1", replies)
    [lost] = (await check_pages(pool, cipher, round_id, histories, converter)).problems
    assert (lost.digest, lost.problem) == (replies, "missing")
    assert lost.where.startswith(f"{round_id}/formasi/F1 event ")

    # Every page of the round lost: `check-pages --rebuild` makes each one again from the
    # histories, byte for byte: the answers from the journeys' histories, the index pages over
    # them and the rankings' pages by running again what kept them.
    await pool.execute("DELETE FROM pages WHERE owner = ANY($1::text[])", owners)
    lost = await check_pages(pool, cipher, round_id, histories, converter)
    assert lost.problems and lost.read == 0
    rebuilt = await rebuild(client, pool, cipher, round_id, histories, converter, lost)
    assert (rebuilt.check.ok, rebuilt.check.problems, rebuilt.replay_failures) == (True, [], [])
    # Each page the histories reach is made again (one no history references is not).
    assert rebuilt.made <= set(bodies) and len(rebuilt.made) == whole.read == rebuilt.check.read
    for digest in rebuilt.made:
        assert await store.fetch(PageRef(digest=digest, count=0)) == bodies[digest]


async def _wait_phase(api, round_id, phase, timeout=40.0) -> None:
    deadline = time.monotonic() + timeout
    while (await api.round_state(round_id)).phase != phase:
        if time.monotonic() > deadline:
            raise AssertionError(f"round {round_id} never reached phase {phase}")
        await asyncio.sleep(0.3)


async def _wait_offer(client, round_id, applicant_id, timeout=40.0) -> JourneyState:
    from workflows.applicant import ApplicantJourney  # noqa: F401 - the query name is "state"

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
        desc = await handle.describe()
        events = [e async for e in handle.fetch_history_events()]
        if any(
            e.HasField("workflow_execution_signaled_event_attributes")
            and e.workflow_execution_signaled_event_attributes.signal_name == "offer_seat"
            for e in events
        ):
            return await _state(client, round_id, applicant_id)
        del desc
        await asyncio.sleep(0.3)
    raise AssertionError(f"{applicant_id} got no optimalisasi offer")
