"""Optimalisasi's pool on the real stack (issue 14): majors differing inside one jabatan, an age
limit, a chain of declines and a seat given up during filing. The seat's formasi accepts fewer
majors and younger applicants than the formasi they lost in; only those it would have accepted at
registration are offered it, best first, and each decline passes it to the next of them. A winner
who withdraws while filing is open gives the seat to the next in its own pool. `recompute`
allocates the same again from the histories, and names a planted difference."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute, recompute_optimalisasi
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import (
    OfferAnswer,
    Withdrawal,
)
from runtime.connection import data_converter
from tests.flows.test_round_end_to_end import _state, _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    play_to_skb_close,
    registration,
)
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

JABATAN = "Pranata Komputer Ahli Pertama"
# (name, major, birth date); best final score first. Everyone registers in SOURCE (quota 1).
PEOPLE = [
    # withdraws after passing (APS): a NIK no other test registers, as the register bars it
    ("winner", "Teknik Informatika", date(1997, 2, 11)),
    ("ilkom", "Ilmu Komputer", date(1998, 5, 17)),  # TARGET does not accept the major
    ("old", "Teknik Informatika", date(1988, 5, 17)),  # 38: over TARGET's 35
    ("ti", "Teknik Informatika", date(1998, 5, 17)),  # offered first, declines
    ("si", "Sistem Informasi", date(1998, 5, 17)),  # offered next, declines
    ("last", "Teknik Informatika", date(1999, 1, 2)),  # offered next, accepts
]


async def _offered(client, round_id: str, applicant_id: str) -> bool:
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return any(
        e.HasField("workflow_execution_signaled_event_attributes")
        and e.workflow_execution_signaled_event_attributes.signal_name == "offer_seat"
        for e in [e async for e in handle.fetch_history_events()]
    )


async def test_the_pool_skips_majors_and_ages_the_seat_does_not_take_and_passes_declines_on(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"pool-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    source = {
        **formasi("SOURCE", 1, jabatan=JABATAN),
        "majors": ["Teknik Informatika", "Sistem Informasi", "Ilmu Komputer"],
        "max_age": 40,
    }
    # Nobody applies to TARGET: its one seat goes to optimalisasi.
    target = {
        **formasi("TARGET", 1, jabatan=JABATAN),
        "majors": ["Teknik Informatika", "Sistem Informasi"],
    }
    config = compressed_round(
        round_id,
        [source, target],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=60,
        t0=t0,
        # One journey per broadcast page, folded every 2 references (patch
        # folded-page-references): SOURCE's 5 others and their candidates are kept as index
        # pages of index pages, which the results, the allocations and recompute read through.
        extra={"broadcast_page_size": 1, "fold_pages_at": 2},
    )
    await create_round_file(api, config, tmp_path)

    ids: dict[str, str] = {}
    for serial, (name, major, born) in enumerate(PEOPLE, start=1):
        reg = registration(serial, "SOURCE", birth=born).model_copy(update={"major": major})
        result = await api.register(config, reg, "sscasn", now=t0)
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id

    await play_to_skb_close(api, client, round_id, [ids[name] for name, _, _ in PEOPLE])

    # The chain: ti declines, si declines, last accepts; ilkom and old are not asked for TARGET.
    for name, accept in (("ti", False), ("si", False), ("last", True)):
        await _wait_offer(client, round_id, ids[name])
        await api.report(
            round_id,
            ids[name],
            OfferAnswer(report_id=f"answer-{name}", reported_by="sscasn", accept=accept),
        )
    await _wait_phase(api, round_id, "filing")
    placed = await _wait_stage(client, round_id, ids["last"], {Stage.FILING}, timeout=30)
    assert (placed.final_code.value, placed.placed_formasi) == ("P/L-2", "TARGET")

    # A seat given up during filing goes to the next in its pool: SOURCE accepts Ilmu Komputer.
    await _wait_stage(client, round_id, ids["winner"], {Stage.FILING}, timeout=30)
    await api.report(
        round_id,
        ids["winner"],
        Withdrawal(report_id="aps", reported_by="sscasn", reason="took another job"),
    )
    await _wait_offer(client, round_id, ids["ilkom"])
    await api.report(
        round_id,
        ids["ilkom"],
        OfferAnswer(report_id="answer-ilkom", reported_by="sscasn", accept=True),
    )
    moved = await _wait_stage(client, round_id, ids["ilkom"], {Stage.FILING}, timeout=30)
    assert (moved.final_code.value, moved.placed_formasi) == ("P/L-2", "SOURCE")
    await close_window(api, round_id, "filing")

    ended = await _wait_stage(client, round_id, ids["old"], {Stage.ENDED}, timeout=30)
    assert ended.terminal.value == "TL"
    assert not await _offered(client, round_id, ids["old"]), "old was offered a seat"
    for name in ("ti", "si"):
        assert (await _state(client, round_id, ids[name])).terminal.value == "TL"

    round_state = await api.round_state(round_id)
    allocations = [
        d.input
        for d in round_state.decisions
        if (d.stage, d.outcome) == ("optimalisasi", "allocated")
    ]
    assert [a["offers"] for a in allocations] == [
        [[ids["ti"], "TARGET"]],
        [[ids["si"], "TARGET"]],
        [[ids["last"], "TARGET"]],
        [[ids["ilkom"], "SOURCE"]],
    ]
    # Each allocation records the declines and seats given up since the one before (patch
    # optimalisasi-by-change); recompute adds them up.
    assert [a["declined_since"] for a in allocations] == [[], [ids["ti"]], [ids["si"]], []]
    assert [a["given_up_since"] for a in allocations] == [[], [], [], [ids["winner"]]]

    # recompute allocates the same from the histories, and names an allocation it would not make.
    histories = await round_histories(client, round_id)
    result = await recompute(histories, data_converter(keys))
    assert (result.allocations, result.differences()) == (4, [])
    # SOURCE's 5 others, a page each, folded at 2 twice: 2 references recorded, and recompute
    # built the same index pages from its own ranking (differences() compared them).
    source_announced = next(a for a, _ in result.pairs if a.formasi_code == "SOURCE")
    assert source_announced.fold_at == 2 and len(source_announced.other_pages or []) == 2
    recomputed = {r.formasi_code: r for _, r in result.pairs}
    planted = [
        d.model_copy(update={"input": {**d.input, "offers": [[ids["ilkom"], "TARGET"]]}})
        if d.input.get("offers") == [[ids["ti"], "TARGET"]]
        else d
        for d in round_state.decisions
    ]
    problems = recompute_optimalisasi(config, planted, recomputed, result.profiles)
    first = problems[0] if problems else ""
    assert first.startswith("optimalisasi allocation 1 ") and "offers recorded" in first
    assert first.endswith(
        f"offers recorded [['{ids['ilkom']}', 'TARGET']], recomputed [['{ids['ti']}', 'TARGET']]"
    )
