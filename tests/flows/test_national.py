"""A national round on the real stack: instansi rounds join its schedule, one NIK registers once
nationwide, and the national funnel counts each instansi apart."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from rich.console import Console
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import client.api as client_api
from activities.claims import ClaimReader
from auditing.history import replay, round_histories
from client.api import RecruitmentApi, RefusedError, registration_digest
from client.national import funnel_document, funnel_from_document, national_applicant_id
from client.status import funnel_counts
from domain.codes import Terminal
from domain.config import RoundConfig
from domain.messages import CloseWindow, ExtendWindow
from domain.national import (
    CLAIM_RELEASED,
    FIND_CLAIMED_JOURNEY,
    ClaimCheck,
    ClaimedJourney,
    ClaimStart,
    ClaimVerdict,
    JourneyOfClaim,
)
from domain.protocol import JOURNEY_STATE
from runtime.connection import data_converter
from runtime.sandbox import worker_runner
from starter import Context, show_national_funnel
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    formasi,
    plain_start_api,
    registration,
)
from workflows.ids import claim_workflow_id, journey_workflow_id
from workflows.national import NationalClaim

# The national windows, in seconds from the test's start; every instansi round below keeps within.
NATIONAL = {"registration": (-120, 900), "administration": (900, 950), "skd": (1000, 2000)}
INSTANSI = {
    "registration": (-60, 600),
    "administration": (900, 950),
    "skd": (1000, 1100),
    "skb": (1200, 1300),
    "filing": (1300, 1400),
    "latsar": (1400, 1500),
}


def _window(t0: datetime, span: tuple[int, int]) -> dict:
    return {
        "opens": (t0 + timedelta(seconds=span[0])).isoformat(),
        "closes": (t0 + timedelta(seconds=span[1])).isoformat(),
    }


async def _national(
    api: RecruitmentApi,
    tmp_path: Path,
    t0: datetime,
    readers: list[str] | None = None,
    claim_grace: str | None = None,
) -> str:
    national_id = f"nat-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{national_id}.toml"
    doc: dict = {
        "national_id": national_id,
        "name": "Seleksi CPNS Nasional Uji",
        "rule_version": "2024.1",
        "schedule": {name: _window(t0, span) for name, span in NATIONAL.items()},
    }
    if readers is not None:
        doc["readers"] = readers
    if claim_grace is not None:
        doc["claim_grace"] = claim_grace
    path.write_text(tomli_w.dumps(doc))
    _, created = await api.national.create(path, OPERATOR)
    assert created
    return national_id


async def _instansi_round(
    api: RecruitmentApi,
    tmp_path: Path,
    t0: datetime,
    national_id: str,
    instansi: str,
    seconds: dict = INSTANSI,
) -> RoundConfig:
    round_id = f"{national_id}-{uuid.uuid4().hex[:4]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 2), formasi("F2", 1)],
        seconds,
        t0=t0,
        extra={"national_round": national_id, "instansi": instansi},
    )
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    return config


async def _national_with_rounds(
    api: RecruitmentApi,
    tmp_path: Path,
    kind: str,
    names: tuple[str, ...],
    readers: list[str] | None = None,
    claim_grace: str | None = None,
) -> tuple[str, list[RoundConfig]]:
    """A national round (whose funnel `readers` may read through the gateway, whose claims wait
    `claim_grace` for their journey) and an instansi round per name (`Pemerintah {kind} {name}`)
    joined to it."""
    t0 = datetime.now(UTC)
    national_id = await _national(api, tmp_path, t0, readers, claim_grace)
    rounds = [
        await _instansi_round(api, tmp_path, t0, national_id, f"Pemerintah {kind} {n}")
        for n in names
    ]
    return national_id, rounds


def _claim_id(keys, national_id: str, reg) -> str:
    """The id of the NIK's claim in the national round (as RecruitmentApi names it)."""
    return claim_workflow_id(
        national_id, national_applicant_id(keys.pseudonym_key, national_id, reg.nik)
    )


async def _close_registration_early(api: RecruitmentApi, config: RoundConfig) -> None:
    """The round closes registration early (quota met): the client still sees the window open in
    the round's file; the journey refuses a start by the round's board."""
    await api.command(
        config.round_id,
        CloseWindow(
            report_id="close-early", reported_by=OPERATOR, window="registration", reason="kuota"
        ),
    )


async def _rows(pool, round_ids: list[str], expected: int) -> None:
    """Wait (bounded) until the read model has a row for each registered journey."""
    for _ in range(150):
        n = await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = ANY($1)", round_ids
        )
        if n >= expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"read model rows: {n} of {expected}")


async def test_a_nik_registers_for_one_formasi_nationwide_and_the_funnel_counts_each_instansi(
    client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b, c) = await _national_with_rounds(
        api, tmp_path, "Kabupaten", ("Alpha", "Beta", "Gamma")
    )

    first = await api.register(a, registration(1, "F1"), "sscasn")
    repeat = await api.register(a, registration(1, "F1"), "sscasn")
    elsewhere = await api.register(b, registration(1, "F2"), "sscasn")
    others = [
        await api.register(a, registration(2, "F2"), "sscasn"),
        await api.register(b, registration(3, "F1"), "sscasn"),
        await api.register(b, registration(4, "F1"), "sscasn"),
        await api.register(c, registration(5, "F1"), "sscasn"),
    ]

    assert (first.status, repeat.status) == ("registered", "repeat")
    assert elsewhere.status == "refused"
    [refusal] = elsewhere.refusals
    assert refusal.field == "nik" and refusal.value != registration(1, "F1").nik
    assert f"through round {a.round_id} (formasi F1)" in refusal.reason
    assert "one NIK may register for one formasi nationwide" in refusal.reason
    assert [r.status for r in others] == ["registered"] * 4

    await _rows(pool, [a.round_id, b.round_id, c.round_id], 5)
    console = Console(file=io.StringIO(), width=250)
    ctx = Context(api, stack.database_url, console)
    state, lines = await show_national_funnel(ctx, national_id)

    assert [r.round_id for r in state.rounds] == [a.round_id, b.round_id, c.round_id]
    assert {f.round_id: sum(f.codes.values()) for f in lines} == {
        a.round_id: 2,
        b.round_id: 2,
        c.round_id: 1,
    }
    assert [(f.formasi, f.seats) for f in lines] == [(2, 3)] * 3
    printed = console.file.getvalue()
    assert "Pemerintah Kabupaten Beta" in printed and "3 rounds" in printed


async def test_a_registration_its_journey_refuses_releases_the_nik_for_another_instansi(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b, c) = await _national_with_rounds(
        api, tmp_path, "Kota", ("Alpha", "Beta", "Gamma")
    )
    # Round a closes its registration early (quota met): the client still sees the window open
    # in the round's file, the journey refuses the start (it reads the round's board).
    await _close_registration_early(api, a)
    reg = registration(11, "F1")

    refused = await api.register(a, reg, "sscasn")
    assert refused.status == "refused", refused
    assert "after registration closed" in refused.refusals[0].reason
    claim_id = _claim_id(keys, national_id, reg)
    released = await client.get_workflow_handle(claim_id).describe()
    assert released.status is not None and released.status.name == "TERMINATED"

    # The NIK registers in another instansi, and holds it there: a third instansi is refused by
    # the claim, and so is the refused registration sent again to a (it releases nothing of b's).
    elsewhere = await api.register(b, registration(11, "F2"), "sscasn")
    assert elsewhere.status == "registered", elsewhere.refusals
    held = await client.get_workflow_handle(claim_id).describe()
    assert held.status is not None and held.status.name == "RUNNING"
    assert held.run_id != released.run_id
    for config, reg_again in ((c, registration(11, "F1")), (a, reg)):
        again = await api.register(config, reg_again, "sscasn")
        assert again.status == "refused"
        assert f"through round {b.round_id} (formasi F2)" in again.refusals[0].reason
    still = await client.get_workflow_handle(claim_id).describe()
    assert (still.run_id, still.status) == (held.run_id, held.status)
    # The released run's history says which round refused which registration.
    events = [
        e
        async for e in client.get_workflow_handle(
            claim_id, run_id=released.run_id
        ).fetch_history_events()
    ]
    reason = events[-1].workflow_execution_terminated_event_attributes.reason
    assert f"round {a.round_id} refused registration {refused.applicant_id}" in reason
    assert reg.nik not in reason
    # The auditor finds both runs of the claim under the national id. Neither has run a workflow
    # task (their starts are delayed past the national SKD): replay says so, and does not wait for
    # a task that is not in the history.
    # Visibility takes a moment to list a run just started (a CI run once listed only one).
    deadline = time.monotonic() + 15
    while True:
        claims = await round_histories(client, national_id, "national-claim")
        if len(claims) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sorted(h.history.run_id for h in claims) == sorted([released.run_id, held.run_id])
    outcomes = await asyncio.wait_for(replay([h.history for h in claims], data_converter(keys)), 30)
    assert [(o.ok, o.unstarted) for o in outcomes] == [(True, True), (True, True)]


async def test_a_registration_no_journey_took_releases_the_nik_for_another_instansi(
    client, keys, running_worker, stack, tmp_path, monkeypatch
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Kota", ("Sigma", "Tau"))
    busy = RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING, confirm_within=1.0
    )

    async def not_taken(*args, start_workflow_operation, **kwargs):
        # The update-with-start that the server never took before the client stopped waiting.
        start_workflow_operation._workflow_handle.set_exception(
            WorkflowUpdateRPCTimeoutOrCancelledError()
        )
        raise WorkflowUpdateRPCTimeoutOrCancelledError()

    monkeypatch.setattr(busy.client, "execute_update_with_start_workflow", not_taken)
    reg = registration(62, "F1")
    with pytest.raises(RefusedError, match="was not taken within 1 s"):
        await busy.register(a, reg, "sscasn")
    monkeypatch.undo()

    # No journey holds the claim: asked by the registrar, it looked for one at once, found none
    # and released itself (before, it held the NIK nationwide for nothing).
    claim = await _ended(client, _claim_id(keys, national_id, reg), within=60)
    assert claim.status is not None and claim.status.name == "FAILED"
    elsewhere = await api.register(b, registration(62, "F2"), "sscasn")
    assert elsewhere.status == "registered", elsewhere.refusals


async def test_a_journey_that_refuses_a_plain_start_releases_the_claim_itself(
    client, keys, running_worker, stack, tmp_path
):
    """No confirmation to answer (a plain start): the journey lets the NIK's claim go itself when
    it refuses the registration (engine 4), and the NIK can register in another instansi."""
    settings, _ = running_worker
    plain = plain_start_api(client, settings.task_queue, keys)
    national_id, (a, b) = await _national_with_rounds(plain, tmp_path, "Kota", ("Delta", "Epsilon"))
    await _close_registration_early(plain, a)
    reg = registration(31, "F1")
    started = await plain.register(a, reg, "sscasn")
    assert started.status == "registered"  # a plain start is answered before the journey judges it
    claim_id = _claim_id(keys, national_id, reg)
    journey_handle = client.get_workflow_handle(
        journey_workflow_id(a.round_id, started.applicant_id)
    )
    # The journey's first task, on a machine that may be busy (the suite's three stacks and a
    # browser on two cores): 120 s, and a failure says what the journey had done by then.
    deadline = time.monotonic() + 120
    while True:
        claim = await client.get_workflow_handle(claim_id).describe()
        if claim.status is not None and claim.status.name != "RUNNING":
            break
        if time.monotonic() > deadline:
            events = [
                f"{EventType.Name(e.event_type)} at {e.event_time.ToDatetime():%H:%M:%S.%f}"
                async for e in journey_handle.fetch_history_events()
            ]
            raise AssertionError(
                f"the refused journey's claim is still held after 120 s; the journey's history: "
                f"{events}"
            )
        await asyncio.sleep(0.1)
    assert claim.status is not None and claim.status.name == "TERMINATED"
    journey = await JOURNEY_STATE.ask(journey_handle)
    assert journey.terminal == Terminal.TMS
    assert "after registration closed at" in (journey.terminal_reason or "")

    elsewhere = await plain.register(b, registration(31, "F2"), "sscasn")
    assert elsewhere.status == "registered", elsewhere.refusals


async def test_a_registrar_that_skips_the_national_claim_is_stopped_by_the_journey(
    client, keys, running_worker, stack, tmp_path, monkeypatch
):
    """The journey checks the claim it was started with (engine 4): a registrar that never
    claims gets neither a NIK held by another instansi nor an unclaimed one into its round."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Provinsi", ("Alpha", "Beta"))
    held = await api.register(a, registration(21, "F1"), "sscasn")
    assert held.status == "registered", held.refusals

    careless = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    skipped: list[str] = []

    async def no_claim(config, applicant_id, *rest):
        skipped.append(applicant_id)
        return None  # "claimed": nothing was started

    monkeypatch.setattr(careless.national, "claim", no_claim)
    taken = await careless.register(b, registration(21, "F2"), "sscasn")
    unclaimed = await careless.register(b, registration(22, "F2"), "sscasn")

    assert skipped == [taken.applicant_id, unclaimed.applicant_id]
    assert taken.status == unclaimed.status == "refused"
    assert f"through round {a.round_id} (formasi F1)" in taken.refusals[0].reason
    assert "one NIK may register for one formasi nationwide" in taken.refusals[0].reason
    assert "no national claim" in unclaimed.refusals[0].reason
    # Nor can it leave the claim out of the start.
    monkeypatch.setattr(client_api, "claim_workflow_id", lambda national, applicant: "")
    no_claim_named = await careless.register(b, registration(23, "F2"), "sscasn")
    assert no_claim_named.status == "refused"
    assert no_claim_named.refusals[0].reason == (
        f"registration refused: the start carries no claim of national round {national_id}"
    )
    states = {
        r.applicant_id: await JOURNEY_STATE.ask(
            client.get_workflow_handle(journey_workflow_id(b.round_id, r.applicant_id))
        )
        for r in (taken, unclaimed)
    }
    decided = {a_id: (s.decisions[0].outcome, s.terminal) for a_id, s in states.items()}
    assert decided == {
        taken.applicant_id: ("refused", Terminal.TMS),
        unclaimed.applicant_id: ("not admitted", Terminal.TMS),
    }
    # Round a's claim is untouched: the NIK is still a's.
    claim_id = _claim_id(keys, national_id, registration(21, "F1"))
    still = await client.get_workflow_handle(claim_id).describe()
    assert still.status is not None and still.status.name == "RUNNING"


async def test_the_journey_s_claim_check_names_what_does_not_agree(
    client, keys, running_worker, stack, tmp_path
):
    """check_claim (the journey's local activity) against a real claim: this registration's, a
    claim read under another national round, another registration's data, and no claim."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a,) = await _national_with_rounds(api, tmp_path, "Kabupaten", ("Zeta",))
    reg = registration(51, "F1")
    held = await api.register(a, reg, "sscasn")
    assert held.status == "registered", held.refusals
    claim_id = _claim_id(keys, national_id, reg)
    mine = ClaimCheck(
        workflow_id=claim_id,
        national_id=national_id,
        round_id=a.round_id,
        applicant_id=held.applicant_id,
        registration_digest=registration_digest(reg),
    )
    reader = ClaimReader(client)

    assert await reader.check_claim(mine) == ClaimVerdict()
    other_national = await reader.check_claim(mine.model_copy(update={"national_id": "NAT-X"}))
    assert other_national.problem == f"{claim_id} is no claim of national round NAT-X"
    other_data = registration_digest(registration(52, "F1"))
    changed = await reader.check_claim(mine.model_copy(update={"registration_digest": other_data}))
    assert changed.problem == f"the national claim {claim_id} is for other registration data"
    missing = await reader.check_claim(mine.model_copy(update={"workflow_id": claim_id + "X"}))
    assert missing.problem == f"no national claim {claim_id}X exists"
    assert not (other_national.refusal or changed.refusal or missing.refusal)


async def test_the_claim_holds_the_national_pseudonym_not_the_nik(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    t0 = datetime.now(UTC)
    national_id = await _national(api, tmp_path, t0)
    a = await _instansi_round(api, tmp_path, t0, national_id, "Kementerian Uji")
    reg = registration(7, "F1")

    result = await api.register(a, reg, "sscasn")

    claim_id = _claim_id(keys, national_id, reg)
    description = await client.get_workflow_handle(claim_id).describe()
    assert result.status == "registered"
    assert reg.nik not in claim_id and reg.nik[-6:] not in claim_id
    assert description.status is not None and description.status.name == "RUNNING"
    # Its start is delayed by the national round's claim_grace (15 minutes by default): the burst
    # costs it no workflow task, only the started event and the journey's word that it took it
    # (the first task comes when the grace is over).
    events = [e async for e in client.get_workflow_handle(claim_id).fetch_history_events()]
    assert [e.event_type for e in events] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ]
    backoff = events[0].workflow_execution_started_event_attributes.first_workflow_task_backoff
    assert backoff.ToTimedelta() == timedelta(minutes=15)


async def test_a_round_outside_the_national_windows_or_a_second_for_one_instansi_is_refused(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    t0 = datetime.now(UTC)
    national_id = await _national(api, tmp_path, t0)
    early = {**INSTANSI, "registration": (-300, 600)}  # opens before the national registration

    with pytest.raises(RefusedError) as outside:
        await _instansi_round(api, tmp_path, t0, national_id, "Pemerintah Kota Delta", early)
    joined = await _instansi_round(api, tmp_path, t0, national_id, "Pemerintah Kota Epsilon")
    with pytest.raises(RefusedError) as twice:
        await _instansi_round(api, tmp_path, t0, national_id, "Pemerintah Kota Epsilon")
    # A joined round's later windows are the national schedule's: they do not move on their own.
    closes = joined.schedule.registration.closes
    with pytest.raises(RefusedError, match=f"keeps national round {national_id}'s schedule"):
        await api.command(
            joined.round_id,
            ExtendWindow(
                report_id="ext-shift",
                reported_by=OPERATOR,
                window="registration",
                new_closes=closes + timedelta(seconds=60),
                reason="gangguan portal",
                shift_later=True,
            ),
        )

    assert "is not within the national registration window" in str(outside.value)
    assert "instansi 'Pemerintah Kota Epsilon' joined already" in str(twice.value)
    state = await api.national.state(national_id)
    assert [r.instansi for r in state.rounds] == ["Pemerintah Kota Epsilon"]


async def test_a_round_naming_a_national_round_that_does_not_exist_is_refused(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)

    with pytest.raises(RefusedError) as missing:
        await _instansi_round(api, tmp_path, datetime.now(UTC), "nat-none", "Pemerintah Kota Zeta")

    assert "national round nat-none does not exist" in str(missing.value)


async def test_create_national_again_creates_nothing_and_a_round_rejoining_with_other_rules_is_refused(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    t0 = datetime.now(UTC)
    national_id = await _national(api, tmp_path, t0)
    console = Console(file=io.StringIO(), width=250)
    ctx = Context(api, stack.database_url, console)
    from starter import create_national

    again = await create_national(ctx, tmp_path / f"{national_id}.toml", OPERATOR)
    config = await _instansi_round(api, tmp_path, t0, national_id, "Pemerintah Provinsi Eta")
    changed = compressed_round(
        config.round_id,
        [formasi("F1", 5)],
        INSTANSI,
        t0=t0,
        extra={"national_round": national_id, "instansi": "Pemerintah Provinsi Eta"},
    )
    path = tmp_path / "changed.toml"
    path.write_text(tomli_w.dumps(changed.model_dump(mode="json", exclude_none=True)))
    with pytest.raises(RefusedError) as refused:
        await api.create_round(path, OPERATOR)

    assert again == 0 and "already exists, same file" in console.file.getvalue()
    assert f"round {config.round_id} joining national round {national_id}" in str(refused.value)
    assert "joined already with other rules" in str(refused.value)


class RegistrarKilled(BaseException):
    """The registrar's process dies (SIGKILL, a lost machine): none of its code runs after."""


async def _ended(client, workflow_id: str, within: float = 120.0):
    """The claim's description once its latest run has ended (bounded: a busy machine's sweep)."""
    deadline = time.monotonic() + within
    while True:
        description = await client.get_workflow_handle(workflow_id).describe()
        if description.status is not None and description.status.name != "RUNNING":
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"{workflow_id} still runs after {within:.0f} s")
        await asyncio.sleep(0.5)


async def _events_once_run(
    client, workflow_id: str, within: float = 120.0, until: frozenset[int] = frozenset()
) -> list[int]:
    """The claim's event types once its first workflow task has completed (its sweep decided), or
    once one of the event types `until` is in its history, when given."""
    deadline = time.monotonic() + within
    handle = client.get_workflow_handle(workflow_id)
    wanted = until or frozenset({EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED})
    while True:
        events = [e.event_type async for e in handle.fetch_history_events()]
        if wanted & set(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"{workflow_id} ran no workflow task in {within:.0f} s: {events}")
        await asyncio.sleep(0.5)


async def test_a_claim_no_journey_took_within_its_grace_releases_itself_for_another_instansi(
    client, keys, running_worker, stack, tmp_path, monkeypatch
):
    """A registrar that dies between the NIK's claim and the journey's start no longer holds the
    NIK nationwide until the national SKD: once the national round's claim_grace has passed with
    no journey, the claim releases itself and its history says why. A claim whose journey took it
    holds; the dead registrar's start, arriving after the release, is not admitted."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(
        api, tmp_path, "Kota", ("Omega", "Psi"), claim_grace="PT30S"
    )
    dying = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    unsent = []

    async def killed(*args, start_workflow_operation, **kwargs):
        # The journey's start, never sent: the process is gone after the claim.
        unsent.append(start_workflow_operation._start_workflow_input)
        start_workflow_operation._workflow_handle.set_exception(RegistrarKilled())
        raise RegistrarKilled()

    monkeypatch.setattr(dying.client, "execute_update_with_start_workflow", killed)
    reg = registration(81, "F1")
    with pytest.raises(RegistrarKilled):
        await dying.register(a, reg, "sscasn")
    monkeypatch.undo()
    kept = await api.register(a, registration(82, "F1"), "sscasn")
    assert kept.status == "registered", kept.refusals
    # Within the grace, the NIK is held: another instansi is refused.
    early = await api.register(b, registration(81, "F2"), "sscasn")
    assert early.status == "refused"
    assert f"through round {a.round_id} (formasi F1)" in early.refusals[0].reason

    claim_id = _claim_id(keys, national_id, reg)
    swept = await _ended(client, claim_id)
    assert swept.status is not None and swept.status.name == "FAILED"
    with pytest.raises(WorkflowFailureError) as failed:
        await client.get_workflow_handle(claim_id, run_id=swept.run_id).result()
    cause = failed.value.cause
    applicant_id = unsent[0].args[0].applicant_id
    assert isinstance(cause, ApplicationError) and cause.type == CLAIM_RELEASED
    assert cause.message == (
        f"released: no journey took registration {applicant_id} of round {a.round_id} within "
        f"0.5 min of its claim ({journey_workflow_id(a.round_id, applicant_id)}: no such "
        "journey); the NIK may register again"
    )
    # The auditor replays the swept run: its release is the claim's own decision, re-derived.
    history = await client.get_workflow_handle(claim_id, run_id=swept.run_id).fetch_history()
    outcomes = await asyncio.wait_for(replay([history], data_converter(keys)), 30)
    assert [(o.ok, o.unstarted) for o in outcomes] == [(True, False)]

    # The claim its journey took holds: told by the journey, it found it and sleeps to its end.
    kept_claim = _claim_id(keys, national_id, registration(82, "F1"))
    events = await _events_once_run(client, kept_claim)
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in events
    assert EventType.EVENT_TYPE_TIMER_STARTED in events
    held = await client.get_workflow_handle(kept_claim).describe()
    assert held.status is not None and held.status.name == "RUNNING"

    # The dead registrar's start, sent after all (its machine back): not admitted, the claim ended.
    late = unsent[0]
    journey = await client.start_workflow(
        late.workflow,
        late.args[0],
        id=late.id,
        task_queue=late.task_queue,
        id_reuse_policy=late.id_reuse_policy,
        search_attributes=late.search_attributes,
    )
    deadline = time.monotonic() + 120
    while (state := await JOURNEY_STATE.ask(journey)).terminal is None:
        assert time.monotonic() < deadline, "the late journey did not end in 120 s"
        await asyncio.sleep(0.2)
    assert state.terminal == Terminal.TMS
    assert f"the national claim {claim_id} ended" in (state.terminal_reason or "")

    # The NIK registers in another instansi, and is held there.
    elsewhere = await api.register(b, registration(81, "F2"), "sscasn")
    assert elsewhere.status == "registered", elsewhere.refusals
    again = await client.get_workflow_handle(claim_id).describe()
    assert again.status is not None and again.status.name == "RUNNING"
    assert again.run_id != swept.run_id


@pytest.mark.parametrize("look_ends", [0, 10], ids=["at-once", "after-10-s"])
async def test_a_journey_admitted_while_its_claim_looks_for_it_keeps_the_claim(
    client, keys, running_worker, stack, look_ends
):
    """The race at the sweep: the journey's start is made just after the claim found no journey.
    The journey's claim check tells the claim's run it took it before it admits the registration;
    the claim, whose look came back empty, looks again, finds the journey and holds. A claim that
    ended first admits no journey. The claims run on a worker whose look for the journey is made
    at that moment (the journey exists from its check on). A look that ends at once is decided in
    a task the server refuses (a signal came meanwhile), so it is made again; one that takes 10 s
    (a slow server) outlasts the task, and the claim hears the word while it still looks."""
    national_id = f"nat-{uuid.uuid4().hex[:6]}"
    reader = ClaimReader(client)
    queue = f"race-{uuid.uuid4().hex[:8]}"
    verdicts: dict[str, ClaimVerdict] = {}

    def check_of(claim_id: str, applicant_id: str) -> ClaimCheck:
        return ClaimCheck(
            workflow_id=claim_id,
            national_id=national_id,
            round_id="R-RACE",
            applicant_id=applicant_id,
            registration_digest="d" * 64,
        )

    @activity.defn(name=FIND_CLAIMED_JOURNEY.name)
    async def journey_started_meanwhile(lookup: ClaimedJourney) -> JourneyOfClaim:
        if lookup.claim_workflow_id.endswith("RACED"):
            if verdicts:
                return JourneyOfClaim(found=True)  # the journey that checked its claim started
            # The journey, started after this look, checks its claim while the claim decides.
            check = check_of(lookup.claim_workflow_id, "RACED")
            verdicts[lookup.claim_workflow_id] = await reader.check_claim(check)
            await asyncio.sleep(look_ends)
        return JourneyOfClaim(found=False, detail="no such journey")

    def start(applicant_id: str) -> ClaimStart:
        return ClaimStart(
            national_id=national_id,
            round_id="R-RACE",
            applicant_id=applicant_id,
            formasi_code="F1",
            registration_digest="d" * 64,
            holds_until=datetime.now(UTC) + timedelta(hours=1),
            sweep_after=timedelta(seconds=1),
        )

    raced, lone = claim_workflow_id(national_id, "RACED"), claim_workflow_id(national_id, "LONE")
    async with Worker(
        client,
        task_queue=queue,
        workflows=[NationalClaim],
        activities=[journey_started_meanwhile],
        workflow_runner=worker_runner(),
    ):
        for claim_id in (raced, lone):
            await client.start_workflow(
                NationalClaim.run,
                start(claim_id.rsplit("/", 1)[1]),
                id=claim_id,
                task_queue=queue,
                start_delay=timedelta(seconds=1),
            )
        lone_end = await _ended(client, lone, within=60)
        # Decided: held on its timer, or ended (a look of 10 s outlasts a first task that decides
        # nothing).
        decided = frozenset(
            {EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED}
        )
        raced_events = await _events_once_run(client, raced, within=60, until=decided)
        late = await reader.check_claim(check_of(lone, "LONE"))
        raced_now = await client.get_workflow_handle(raced).describe()
        if raced_now.status is not None and raced_now.status.name == "RUNNING":
            await client.get_workflow_handle(raced).terminate(reason="test over")

    assert verdicts == {raced: ClaimVerdict()}  # admitted
    assert raced_now.status is not None and raced_now.status.name == "RUNNING"
    assert EventType.EVENT_TYPE_TIMER_STARTED in raced_events  # held to its end
    assert lone_end.status is not None and lone_end.status.name == "FAILED"
    assert late.problem.startswith(f"the national claim {lone} ended")


async def test_a_claim_past_its_grace_finds_its_journey_by_the_claim_its_start_names(
    client, keys, running_worker, stack, tmp_path
):
    """find_claimed_journey (the claim's look, past its grace) against a real journey: found when
    the journey's signed start names the claim, not when it names another or does not exist."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a,) = await _national_with_rounds(api, tmp_path, "Kabupaten", ("Eta",))
    reg = registration(91, "F1")
    held = await api.register(a, reg, "sscasn")
    assert held.status == "registered", held.refusals
    assert held.applicant_id is not None
    claim_id = _claim_id(keys, national_id, reg)
    journey_id = journey_workflow_id(a.round_id, held.applicant_id)
    reader = ClaimReader(client)

    mine = ClaimedJourney(claim_workflow_id=claim_id, journey_workflow_id=journey_id)
    assert await reader.find_claimed_journey(mine) == JourneyOfClaim(found=True)
    other = mine.model_copy(update={"claim_workflow_id": claim_id + "X"})
    assert await reader.find_claimed_journey(other) == JourneyOfClaim(
        found=False, detail="its start names another claim"
    )
    missing = mine.model_copy(update={"journey_workflow_id": journey_id + "X"})
    assert await reader.find_claimed_journey(missing) == JourneyOfClaim(
        found=False, detail="no such journey"
    )


async def test_another_registration_after_a_refused_one_lets_the_nik_go(
    client, keys, running_worker, stack, tmp_path
):
    """Refused by its journey in A, the NIK's claim goes; the applicant tries A again with other
    data (another formasi): refused, once per round, but the claim that try took stayed, found
    A's refused journey after its grace and held the NIK nationwide until the national SKD closed
    (review of 12-07). The try's claim goes too, and B takes the NIK."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(
        api, tmp_path, "Kota", ("Alpha", "Beta"), claim_grace="PT30S"
    )
    await _close_registration_early(api, a)
    first = await api.register(a, registration(11, "F1"), "sscasn")
    assert first.status == "refused", first
    claim = client.get_workflow_handle(_claim_id(keys, national_id, registration(11, "F1")))
    assert (await claim.describe()).status.name == "TERMINATED"

    other = await api.register(a, registration(11, "F2"), "sscasn")
    assert other.status == "refused"
    assert "one NIK may register once per round" in other.refusals[0].reason
    assert (await claim.describe()).status.name == "TERMINATED"  # the try's claim is gone too

    elsewhere = await api.register(b, registration(11, "F1"), "sscasn")
    assert elsewhere.status == "registered", elsewhere.refusals


async def test_a_journey_start_in_flight_when_its_registrar_gave_up_keeps_its_claim(
    client, keys, running_worker, stack, tmp_path, monkeypatch
):
    """The registrar's start of the journey fails on its side (a deadline, a dropped connection)
    while the server still has it: the registrar reads the journey NOT_FOUND, and the start lands
    just after. The journey is admitted, so its claim must hold: the registrar asks the claim to
    look for its journey instead of ending it (before, it terminated the claim of an admitted
    journey, and the NIK registered in another instansi too)."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Kota", ("Rho", "Sigma"))
    start_confirmed, not_started = api._start_confirmed, api._not_started
    in_flight: dict = {}

    async def start_lost(start, reg, options):
        in_flight["start"] = (start, reg, options)
        raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")

    async def start_lands_after_the_look(workflow_id: str) -> bool:
        answer = await not_started(workflow_id)  # NOT_FOUND: the start is still on its way
        in_flight["landed"] = await start_confirmed(*in_flight["start"])
        return answer

    monkeypatch.setattr(api, "_start_confirmed", start_lost)
    monkeypatch.setattr(api, "_not_started", start_lands_after_the_look)
    reg = registration(91, "F1")
    with pytest.raises(RPCError, match="deadline exceeded"):
        await api.register(a, reg, "sscasn")
    monkeypatch.undo()
    assert in_flight["landed"].status == "registered", in_flight["landed"].refusals

    claim_id = _claim_id(keys, national_id, reg)
    decided = frozenset(
        {
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,  # it looked, and found the journey
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        }
    )
    await _events_once_run(client, claim_id, until=decided)
    claim = await client.get_workflow_handle(claim_id).describe()
    elsewhere = await api.register(b, registration(91, "F2"), "sscasn")
    assert claim.status is not None and claim.status.name == "RUNNING"
    assert elsewhere.status == "refused"
    assert f"through round {a.round_id} (formasi F1)" in elsewhere.refusals[0].reason


async def test_a_claim_the_server_terminated_still_holds_the_nik(
    client, keys, running_worker, stack, tmp_path
):
    """Anyone who reaches Temporal can send a claim's run signals of junk of nearly 2 MB each until
    its history passes the server's 50 MB and the server terminates it. A termination is no
    release: the NIK stays held by the registration that claimed it (before, a terminated claim
    counted as released, and the NIK registered in another instansi too); that registration's
    repeat is still its own."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Kota", ("Tau", "Upsilon"))
    reg = registration(92, "F1")
    first = await api.register(a, reg, "sscasn")
    assert first.status == "registered", first.refusals

    claim_id = _claim_id(keys, national_id, reg)
    outsider = await Client.connect(
        client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    junk = outsider.get_workflow_handle(claim_id)
    with pytest.raises(RPCError):
        for _ in range(40):  # 26 or 27 reach 50 MB; then the run is gone (NOT_FOUND)
            await junk.signal("junk", "x" * 1_900_000)
    ended = await client.get_workflow_handle(claim_id).describe()
    assert ended.status is not None and ended.status.name == "TERMINATED"

    elsewhere = await api.register(b, registration(92, "F2"), "sscasn")
    repeat = await api.register(a, reg, "sscasn")
    assert elsewhere.status == "refused", elsewhere
    assert f"through round {a.round_id} (formasi F1)" in elsewhere.refusals[0].reason
    assert repeat.status == "repeat", repeat


async def test_the_national_funnel_counts_registrations_their_journeys_refused_apart(
    client, keys, running_worker, stack, tmp_path
):
    """A registration its journey refused (here: registration closed early on the round's board)
    is no applicant of the round: the national funnel counts it apart as `refused`, not under the
    administration's TMS nor among the round's applicants (before, it was a TMS of the round, and
    the national total counted a NIK refused in one instansi and registered in another twice)."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Kota", ("Phi", "Chi"))
    await _close_registration_early(api, b)
    refused = await api.register(b, registration(95, "F1"), "sscasn")
    assert refused.status == "refused", refused
    registered = await api.register(a, registration(95, "F2"), "sscasn")
    assert registered.status == "registered", registered.refusals

    await _rows(pool, [a.round_id, b.round_id], 2)
    console = Console(file=io.StringIO(), width=250)
    state, lines = await show_national_funnel(
        Context(api, stack.database_url, console), national_id
    )

    assert {f.round_id: dict(f.codes) for f in lines} == {
        a.round_id: {"admin_check": 1},
        b.round_id: {},
    }
    assert [f.refused for f in lines] == [0, 1]
    document = funnel_document(national_id, state, lines)
    assert [(f["funnel"], f["refused"]) for f in document["instansi"]] == [
        ({"admin_check": 1}, 0),
        ({}, 1),
    ]
    assert funnel_from_document(document) == (state, lines)
    assert "refused" in console.file.getvalue()
    # The round's own funnel (starter.py status) names it so too, not TMS.
    assert await funnel_counts(pool, b.round_id) == {"F1": {"refused": 1}}
