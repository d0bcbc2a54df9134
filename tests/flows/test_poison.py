"""No poison message (issue 12): whoever can reach Temporal may send any signal or update with any
payload to any workflow; nothing they send may fail a journey's, a formasi's or the round's
workflow task, and the legitimate traffic to the same workflows still gets its answers.

Every check counts WorkflowTaskFailed events in the histories. A workflow task failed with the
cause UnhandledCommand is left out: the server fails a task whose commands would complete the
workflow while a new signal or update is waiting, and the worker runs the task again with it; that
is a known, benign race and not a poison message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import tomli_w
from prometheus_client import REGISTRY
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.service import RPCError

from auditing.history import replay
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    Announcement,
    CloseWindow,
    FinalEntryReply,
    FormasiResult,
    JourneyState,
    MoveTmt,
    OfferReply,
    OptimalisasiOffer,
    SeatVacated,
    SkdEntryReply,
)
from domain.ranking import FinalEntry
from domain.skd import SkdScores
from runtime.codec import ENCODING, KEY_ID, AesGcmCodec, key_id
from runtime.connection import data_converter
from runtime.keys import Keys
from tests.roundkit import OPERATOR, compressed_round, formasi, registration
from workflows.ids import formasi_workflow_id, journey_workflow_id, round_workflow_id

try:  # rounds that list their reporters' keys take signed reports only
    from tests.roundkit import TEST_KEYRING
except ImportError:  # pragma: no cover - before reports were signed
    TEST_KEYRING = None

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADMIN = "bkpsdm-verifikator"
BENIGN = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
ANSWER_WITHIN = 20.0  # seconds: a message that gets no answer by then counts as lost


@dataclass
class Scene:
    api: RecruitmentApi
    round_id: str
    ids: list[str]  # applicant ids, in registration order
    formasi_of: dict[str, str]

    def journey(self, client: Client, applicant_id: str):
        return client.get_workflow_handle(journey_workflow_id(self.round_id, applicant_id))


async def _scene(client, keys, settings, tmp_path, per_formasi: dict[str, int]) -> Scene:
    """A round whose registration closes in a few seconds, with its applicants in ADMIN_CHECK."""
    api_options = {"keyring": TEST_KEYRING} if TEST_KEYRING is not None else {}
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, **api_options)
    round_id = f"poison-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [formasi(code, 1) for code in per_formasi],
        {
            "registration": (-60, 10),
            "administration": (10, 900),
            "skd": (900, 1000),
            "skb": (1000, 1100),
            "filing": (1100, 1200),
            "latsar": (1200, 1300),
        },
        t0=t0,
    )
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    ids: list[str] = []
    formasi_of: dict[str, str] = {}
    serial = 0
    for code, count in per_formasi.items():
        for _ in range(count):
            serial += 1
            result = await api.register(
                config, registration(serial, code), "sscasn", now=t0 + timedelta(seconds=1)
            )
            assert result.status == "registered", result.refusals
            ids.append(result.applicant_id)
            formasi_of[result.applicant_id] = code
    scene = Scene(api, round_id, ids, formasi_of)
    for applicant_id in ids:
        await _until(
            lambda a=applicant_id: _stage_is(client, scene, a, {Stage.ADMIN_CHECK}),
            f"{applicant_id} in the administrative check",
        )
    return scene


async def _stage_is(client, scene: Scene, applicant_id: str, stages) -> bool:
    state = await scene.journey(client, applicant_id).query("state", result_type=JourneyState)
    return state.stage in stages


async def _until(probe, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def _task_failures(client: Client, workflow_id: str) -> list[str]:
    """The WorkflowTaskFailed events of every run of `workflow_id` but the benign race (above)."""
    failures = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if not event.HasField("workflow_task_failed_event_attributes"):
            continue
        attrs = event.workflow_task_failed_event_attributes
        if attrs.cause == BENIGN:
            continue
        try:
            message = str(await client.data_converter.decode_failure(attrs.failure))
        except Exception as exc:  # noqa: BLE001 - the count matters, the message helps
            message = f"(undecodable failure: {exc})"
        failures.append(f"{workflow_id} event {event.event_id}: {message[:300]}")
    return failures


async def _no_task_failures(client: Client, workflow_ids: list[str]) -> None:
    found = [f for wid in workflow_ids for f in await _task_failures(client, wid)]
    assert found == [], "\n".join(found)


def _client_with(client: Client, converter) -> Client:
    """Another client on the same connection: what an attacker who reaches Temporal holds."""
    return Client(client.service_client, namespace=client.namespace, data_converter=converter)


def _wrong_key_client(client: Client) -> Client:
    other = Keys(payload_key=os.urandom(32), pseudonym_key=b"", signing_key=b"")
    return _client_with(client, data_converter(other))


def _plain_client(client: Client) -> Client:
    """No codec at all: plaintext JSON payloads."""
    return _client_with(client, pydantic_data_converter)


class _SpeaksPlainReadsOurs(PayloadCodec):
    """Sends plaintext but reads what our workers answer: shows what a refused sender is told."""

    def __init__(self, keys: Keys) -> None:
        self._ours = AesGcmCodec(keys.payload_key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._ours.decode(payloads)


def _admin_report(report_id: str) -> AdminReport:
    return AdminReport(report_id=report_id, reported_by=ADMIN)


async def _refused(call) -> bool:
    """True when the update was rejected; False when it was accepted; fails when lost."""
    try:
        await asyncio.wait_for(call, ANSWER_WITHIN)
    except WorkflowUpdateFailedError:
        return True
    return False


# --- a poison announcement to a journey --------------------------------------------------------


async def test_poison_announcement_leaves_the_journey_working(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    scene = await _scene(client, keys, settings, tmp_path, {"F1": 1})
    [applicant] = scene.ids
    journey = scene.journey(client, applicant)
    now = datetime.now(UTC)

    def tmt(n: int, note: str, at: datetime = now) -> Announcement:
        return Announcement(
            announcement_id=f"{scene.round_id}/tmt_moved/{n}", phase="tmt_moved", at=at, note=note
        )

    # The message: a TMT move whose note is not a date (date.fromisoformat raised in the
    # handler: a workflow-task failure loop that never ended). Then more of the same kind.
    await journey.signal("announce", tmt(1, "not-a-date"))
    await journey.signal("announce", tmt(2, "2027-02-30"))
    await journey.signal(
        "announce",
        Announcement(announcement_id="x", phase="no-such-phase", at=now),
    )
    await journey.signal(
        "announce",
        Announcement(announcement_id="y", phase="administration", at=datetime(2026, 1, 1)),
    )  # a naive time: the appeal window arithmetic would fail later in the run

    ack = await asyncio.wait_for(
        scene.api.report(scene.round_id, applicant, _admin_report("adm-1")), ANSWER_WITHIN
    )
    assert ack.report_id == "adm-1"
    # A TMT move the operator makes, as the round announces it (sealed), still counts after the
    # poison ones (an unsealed one, even with a valid date, is ignored).
    await journey.signal("announce", tmt(3, "2027-05-01"))
    await scene.api.command(
        scene.round_id,
        MoveTmt(report_id="tmt-1", reported_by=OPERATOR, new_tmt=date(2027, 4, 1), reason="test"),
    )

    async def moved():
        state = await journey.query("state", result_type=JourneyState)
        return state.tmt == date(2027, 4, 1) and state

    state = await _until(moved, "the valid TMT move")
    assert state.stage == Stage.ADMIN_CHECK  # the naive 'administration' was not taken
    await _no_task_failures(client, [journey.id])


# --- forged signals to the formasi and to the round --------------------------------------------


def _entry(applicant_id: str, code: str, gpa: float = 3.5) -> FinalEntry:
    return FinalEntry(
        applicant_id=applicant_id,
        formasi_code=code,
        final_score="1/2",
        skd=SkdScores(twk=100, tiu=100, tkp=180),
        gpa=gpa,
        birth_date=date(1990, 1, 1),
    )


async def test_forged_signals_to_formasi_and_round_change_nothing(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    scene = await _scene(client, keys, settings, tmp_path, {"F1": 1, "F2": 1})
    round_id = scene.round_id
    f1 = client.get_workflow_handle(formasi_workflow_id(round_id, "F1"))
    the_round = client.get_workflow_handle(round_workflow_id(round_id))
    now = datetime.now(UTC)
    for applicant in scene.ids:
        await scene.api.report(round_id, applicant, _admin_report(f"adm-{applicant}"))

    # To the formasi: a premature end of the round (the formasi would complete, and the round's
    # next announcement to it would then fail), an unknown phase, entries outside any barrier, a
    # NaN in an entry, and content that is not an announcement at all.
    await f1.signal("phase", "garbage")
    await f1.signal("skd_entry", SkdEntryReply(applicant_id="FORGED", key=(1, 2, 3, 4)))
    await f1.signal(
        "final_entry",
        FinalEntryReply(applicant_id="FORGED", entry=_entry("FORGED", "F1", gpa=float("nan"))),
    )
    await f1.signal("phase", args=[])  # no argument
    await f1.signal("phase", args=["a", "b"])  # two arguments
    for forged in (
        Announcement(announcement_id="zzz", phase="no-such-phase", at=now),
        Announcement(announcement_id=f"{round_id}/tmt_moved/97", phase="tmt_moved", at=now),
        Announcement(announcement_id=f"{round_id}/skb_closed/98", phase="skb_closed", at=now),
        Announcement(announcement_id=f"{round_id}/round_closed/99", phase="round_closed", at=now),
    ):
        await f1.signal("phase", forged)

    # To the round: a result for a formasi it does not have, impossible numbers for one it has, a
    # seat vacated by nobody it knows, an answer to an offer it never made.
    for forged in (
        FormasiResult(
            formasi_code="ZZZ", vacancies=5, candidates=[_entry("FORGED", "ZZZ")], winners=[]
        ),
        FormasiResult(formasi_code="F1", vacancies=-3, candidates=[], winners=["A", "B", "C"]),
    ):
        await the_round.signal("formasi_result", forged)
    await the_round.signal("seat_vacated", SeatVacated(applicant_id="FORGED", formasi_code="F1"))
    await the_round.signal(
        "offer_reply", OfferReply(offer_id="no-such-offer", applicant_id="FORGED", accepted=True)
    )
    await the_round.signal("formasi_result", {"formasi_code": 7})
    await the_round.signal("offer_reply", args=[1, 2, 3])

    # A seal with a character outside ASCII, to each workflow that checks seals: hmac's compare
    # of str raised TypeError in the handler, a task failure on every retry (review of 12-07).
    not_ascii = "\u00e9" * 64
    await the_round.signal(
        "seat_vacated", SeatVacated(applicant_id=scene.ids[0], formasi_code="F1", seal=not_ascii)
    )
    moved = Announcement(
        announcement_id=f"{round_id}/tmt_moved/96",
        phase="tmt_moved",
        at=now,
        note="2027-05-01",
        seal=not_ascii,
    )
    await f1.signal("phase", moved)
    await scene.journey(client, scene.ids[0]).signal("announce", moved)
    await scene.journey(client, scene.ids[1]).signal(
        "offer_seat",
        OptimalisasiOffer(
            offer_id="forged", to_formasi="F1", answer_by=now + timedelta(days=1), seal=not_ascii
        ),
    )

    # The round goes on: administration closes, the formasi tells its applicants, they move on.
    await _until(
        lambda: _phase_is(scene, "administration"), "the administration window", timeout=40
    )
    await scene.api.command(
        round_id,
        CloseWindow(
            report_id="close-adm", reported_by=OPERATOR, window="administration", reason="done"
        ),
    )
    for applicant in scene.ids:
        await _until(
            lambda a=applicant: _stage_is(client, scene, a, {Stage.SKD}),
            f"{applicant} in SKD after the administration close",
        )
    state = await scene.api.round_state(round_id)
    assert state.phase == "skd"
    assert state.formasi_results == {}
    assert not [d for d in state.decisions if "vacated" in d.outcome]
    for handle in (f1, the_round):
        assert (await handle.describe()).status.name == "RUNNING"
    await _no_task_failures(
        client,
        [the_round.id, f1.id, formasi_workflow_id(round_id, "F2")]
        + [journey_workflow_id(round_id, a) for a in scene.ids],
    )


async def _phase_is(scene: Scene, phase: str) -> bool:
    return (await scene.api.round_state(scene.round_id)).phase == phase


# --- a storm of undecryptable payloads ---------------------------------------------------------


def _counted(why: str) -> float:
    """casn_payloads_refused_total{why} in this process (the running_worker's)."""
    return REGISTRY.get_sample_value("casn_payloads_refused_total", {"why": why}) or 0.0


async def test_undecryptable_storm_is_refused_and_legitimate_reports_are_answered(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    scene = await _scene(client, keys, settings, tmp_path, {"F1": 3})
    attackers = {"wrong key": _wrong_key_client(client), "no codec": _plain_client(client)}
    rng = random.Random(12)
    gate = asyncio.Semaphore(
        4
    )  # a journey takes 10 updates in flight; leave room for the real ones
    forged_updates: list[bool] = []
    now = datetime.now(UTC)

    async def forge(n: int) -> None:
        sender = list(attackers.values())[(n // 4) % 2]
        applicant = scene.ids[n % len(scene.ids)]
        handle = sender.get_workflow_handle(journey_workflow_id(scene.round_id, applicant))
        async with gate:
            kind = n % 4
            if kind == 0:  # a report, well formed but not ours to decrypt
                forged_updates.append(
                    await _refused(
                        handle.execute_update("report_admin", _admin_report(f"forged-{n}"))
                    )
                )
            elif kind == 1:  # a named update (argument conversion fails in the SDK)
                forged_updates.append(
                    await _refused(
                        handle.execute_update(
                            "close_stage",
                            Announcement(announcement_id=f"f{n}", phase="skd_closed", at=now),
                        )
                    )
                )
            elif kind == 2:
                await handle.signal(
                    "announce",
                    Announcement(
                        announcement_id=f"f{n}", phase="tmt_moved", at=now, note="2030-01-01"
                    ),
                )
            else:
                await handle.signal(
                    "offer_seat",
                    OptimalisasiOffer(offer_id=f"f{n}", to_formasi="F1", answer_by=now),
                )
            await asyncio.sleep(rng.random() * 0.01)

    answers: list[Any] = []

    async def legitimate() -> None:
        # Each applicant's administrative report, then repeats of it while the storm goes on: the
        # first is recorded, each repeat gets the same answer.
        for _ in range(4):
            for applicant in scene.ids:
                answers.append(
                    await asyncio.wait_for(
                        scene.api.report(
                            scene.round_id, applicant, _admin_report(f"adm-{applicant}")
                        ),
                        ANSWER_WITHIN,
                    )
                )
            await asyncio.sleep(0.2)

    counted_before = {why: _counted(why) for why in ("unknown_key", "plain")}
    started = time.monotonic()
    await asyncio.gather(legitimate(), *(forge(n) for n in range(100)))
    storm_seconds = time.monotonic() - started
    # The worker (in this process) counted each forged payload by why it refused it: the wrong
    # key's 52 and the plain client's 48 (at least: a replay decodes a history's again).
    counted = {why: _counted(why) - n for why, n in counted_before.items()}
    assert counted["unknown_key"] >= 52 and counted["plain"] >= 48, counted

    assert len(forged_updates) == 50 and all(forged_updates), (
        f"{forged_updates.count(False)} of {len(forged_updates)} forged updates were accepted"
    )
    assert len(answers) == 4 * len(scene.ids)
    for applicant in scene.ids:
        mine = [a for a in answers if a.applicant_id == applicant]
        assert len(mine) == 4 and all(a == mine[0] for a in mine)
    for applicant in scene.ids:
        state = await scene.journey(client, applicant).query("state", result_type=JourneyState)
        assert state.tmt == date(2027, 3, 1)  # no forged TMT move was taken
    await _no_task_failures(client, [journey_workflow_id(scene.round_id, a) for a in scene.ids])
    assert storm_seconds < 60

    # What a refused sender is told (readable here with our key): the update and the reason.
    speaks_plain = _client_with(
        client,
        dataclasses.replace(data_converter(keys), payload_codec=_SpeaksPlainReadsOurs(keys)),
    ).get_workflow_handle(journey_workflow_id(scene.round_id, scene.ids[0]))
    with pytest.raises(WorkflowUpdateFailedError) as report:
        await speaks_plain.execute_update("report_admin", _admin_report("plain"))
    assert "update report_admin" in report.value.cause.message
    assert "payload refused: it is not encrypted" in report.value.cause.message
    with pytest.raises(WorkflowUpdateFailedError) as close:
        await speaks_plain.execute_update(
            "close_stage", Announcement(announcement_id="c", phase="skd_closed", at=now)
        )
    assert "payload refused: it is not encrypted" in close.value.cause.message

    # A start whose input nobody here can decrypt fails that execution (recorded, once); it never
    # loops on failed workflow tasks.
    forged_id = journey_workflow_id(scene.round_id, f"FORGED{uuid.uuid4().hex[:8].upper()}")
    handle = await attackers["wrong key"].start_workflow(
        "ApplicantJourney",
        {"round_id": scene.round_id},
        id=forged_id,
        task_queue=settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), ANSWER_WITHIN)
    await _no_task_failures(client, [forged_id])


# --- fuzz ----------------------------------------------------------------------------------------

JOURNEY_SIGNALS = ["announce", "offer_seat", "nope"]
JOURNEY_UPDATES = ["report_admin", "report_skd", "withdraw", "disqualify", "close_stage", "nope"]
FORMASI_SIGNALS = ["phase", "skd_entry", "final_entry", "nope"]
ROUND_SIGNALS = ["formasi_result", "seat_vacated", "offer_reply", "nope"]
ROUND_UPDATES = ["extend_window", "close_window", "move_tmt", "nope"]
PHASES = ["administration", "skd_closed", "skb_closed", "round_closed", "tmt_moved", "skd_result"]


def _json(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def _fuzz_payload(rng: random.Random, round_id: str) -> Payload:
    """One malformed, mistyped, oversized or misencoded payload; never an acceptable message."""
    now = datetime.now(UTC)
    stranger = f"fz-{rng.randrange(10**6)}"  # never a reporter of the round
    bad_time = rng.choice(
        ["2026-01-01T00:00:00", "9999-12-31T23:59:59+00:00", "not a time", 17, None]
    )
    choice = rng.randrange(18)
    if choice == 0:
        return Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    if choice == 1:
        return _json({"report_id": 5, "reported_by": ["x"], "twk": "x", "findings": "none"})
    if choice == 2:
        return _json({"report_id": "r", "reported_by": stranger, "twk": True, "tiu": False})
    if choice == 3:
        return _json({"report_id": "r" * 200_000, "reported_by": stranger})
    if choice == 4:
        return _json(rng.choice([None, [], [[[[]]]], "x" * 300_000, 10**40, -1, True]))
    if choice == 5:
        return Payload(metadata={"encoding": b"json/plain"}, data=b'{"twk": NaN, "gpa": Infinity}')
    if choice == 6:  # a real phase with a broken time, or an unknown phase
        return _json(
            {
                "announcement_id": f"{round_id}/{rng.choice(PHASES)}/x{rng.randrange(99)}",
                "phase": rng.choice(PHASES + ["", "x" * 5000]),
                "at": bad_time,
                "note": rng.choice(["", "not-a-date", "2027-13-01", "x" * 10_000]),
            }
        )
    if choice == 7:  # real phases, naive or far-future times
        return _json(
            {
                "announcement_id": f"{round_id}/{rng.choice(PHASES)}/{rng.randrange(99)}",
                "phase": rng.choice(PHASES),
                "at": rng.choice(["2026-01-01T00:00:00", "9999-12-31T23:59:59+00:00"]),
            }
        )
    if choice == 8:  # a TMT move that is not a date
        return _json(
            {
                "announcement_id": f"{round_id}/tmt_moved/{rng.randrange(10**6)}",
                "phase": "tmt_moved",
                "at": now.isoformat(),
                "note": rng.choice(["not-a-date", "2027-02-30", "", "9" * 40]),
            }
        )
    if choice == 9:  # entries and results with impossible content
        entry = {
            "applicant_id": stranger,
            "formasi_code": rng.choice(["F1", "ZZZ", ""]),
            "final_score": rng.choice(["1/0", "x", "1/2"]),
            "skd": {"twk": True, "tiu": -5, "tkp": 10**20},
            "gpa": rng.choice([float("nan"), 9.0, -1.0]),
            "birth_date": "1990-01-01",
        }
        return _json(
            rng.choice(
                [
                    {"applicant_id": stranger, "entry": entry},
                    {"applicant_id": stranger, "key": [1, 2, 3, 4, 5]},
                    {
                        "formasi_code": rng.choice(["F1", "ZZZ"]),
                        "vacancies": rng.choice([-1, 7, 10**12]),
                        "candidates": [entry],
                        "winners": [stranger] * 3,
                    },
                    {"applicant_id": stranger, "formasi_code": "F1"},
                    {"offer_id": stranger, "applicant_id": stranger, "accepted": "yes"},
                    {
                        "offer_id": stranger,
                        "to_formasi": "F1",
                        "answer_by": rng.choice(["2026-01-01T00:00:00", "9999-12-31T00:00:00Z"]),
                    },
                ]
            )
        )
    if choice == 10:  # operator commands from nobody, with bad fields
        return _json(
            {
                "report_id": stranger,
                "reported_by": stranger,
                "window": rng.choice(["administration", "nope", ""]),
                "new_closes": bad_time,
                "new_tmt": rng.choice(["2027-02-30", "x", None]),
                "reason": "",
            }
        )
    if choice == 11:
        return Payload(metadata={"encoding": b"x/unknown"}, data=b"\x00\xff")
    if choice == 12:
        return Payload(data=b"no metadata at all")
    if choice == 13:  # looks encrypted, with a made-up key id
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: b"0123456789abcdef"},
            data=rng.randbytes(rng.choice([0, 5, 40])),
        )
    if choice == 14:  # looks encrypted with a key id the workers hold, but it is not
        return Payload(metadata={"encoding": ENCODING, KEY_ID: b"@KEYID@"}, data=rng.randbytes(60))
    if choice == 15:  # claims to be stored outside Temporal
        return Payload(
            metadata={"encoding": b"json/plain", "__temporal_external_storage_reference": b"true"},
            data=b"{}",
        )
    if choice == 16:
        return Payload(metadata={"encoding": b"json/external-storage-reference"}, data=b"{}")
    return Payload(metadata={"encoding": b"binary/null"})


async def test_fuzz_never_fails_a_workflow_task(client, keys, running_worker, tmp_path):
    settings, _ = running_worker
    scene = await _scene(client, keys, settings, tmp_path, {"F1": 2})
    round_id = scene.round_id
    senders = [client, _wrong_key_client(client), _plain_client(client)]
    our_key_id = key_id(keys.payload_key).encode()
    targets = [
        (journey_workflow_id(round_id, scene.ids[0]), JOURNEY_SIGNALS, JOURNEY_UPDATES),
        (journey_workflow_id(round_id, scene.ids[1]), JOURNEY_SIGNALS, JOURNEY_UPDATES),
        (formasi_workflow_id(round_id, "F1"), FORMASI_SIGNALS, ["phase", "nope"]),
        (round_workflow_id(round_id), ROUND_SIGNALS, ROUND_UPDATES),
    ]
    rng = random.Random(20261212)
    gate = asyncio.Semaphore(4)
    updates: list[bool] = []
    count = 300

    async def send(n: int) -> None:
        workflow_id, signals, update_names = targets[n % len(targets)]
        sender = senders[rng.randrange(len(senders))]
        payloads = [_fuzz_payload(rng, round_id) for _ in range(rng.choice([1] * 8 + [0, 2]))]
        for p in payloads:
            if p.metadata.get(KEY_ID) == b"@KEYID@":
                p.metadata[KEY_ID] = our_key_id
        args = [RawValue(p) for p in payloads]
        handle = sender.get_workflow_handle(workflow_id)
        is_update = rng.random() < 0.35
        name = rng.choice(update_names if is_update else signals)
        async with gate:
            if is_update:
                updates.append(await _refused(handle.execute_update(name, args=args)))
            else:
                try:
                    await handle.signal(name, args=args)
                except RPCError as exc:  # e.g. a payload over the server's limit
                    assert "size" in exc.message.lower() or "limit" in exc.message.lower(), exc

    answers = []

    async def legitimate() -> None:
        await asyncio.sleep(0.5)
        for applicant in scene.ids:
            answers.append(
                await asyncio.wait_for(
                    scene.api.report(round_id, applicant, _admin_report(f"adm-{applicant}")),
                    ANSWER_WITHIN,
                )
            )

    started = time.monotonic()
    await asyncio.gather(legitimate(), *(send(n) for n in range(count)))
    elapsed = time.monotonic() - started

    assert [a.report_id for a in answers] == [f"adm-{a}" for a in scene.ids]
    assert updates and all(updates), f"{updates.count(False)} fuzzed updates were accepted"
    await _no_task_failures(client, [t[0] for t in targets])
    for applicant in scene.ids:
        assert await _stage_is(client, scene, applicant, {Stage.ADMIN_CHECK})
    # The auditor's replay drops and rejects what the worker did: the histories replay unchanged.
    histories = [await client.get_workflow_handle(t[0]).fetch_history() for t in targets]
    outcomes = await replay(histories, data_converter(keys))
    assert [(o.workflow_id, o.failure) for o in outcomes if not o.ok] == []
    assert elapsed < 60, f"{count} messages took {elapsed:.0f} s"
