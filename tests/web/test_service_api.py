"""The service API on the real stack: every report and command kind through its route, signed
by its reporter, and every way a request is refused (401, 403, 404, 409, 413, 422).

One compressed round, driven through its stages by the operator's close-window commands sent to
the gateway, as the CAT centre, the panels, the hospital, the instansi's verifiers, LAN, the
portal and the operator would send their messages over HTTP.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import tomli_w

from client.api import RecruitmentApi
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    AppealAnswer,
    AppealFiling,
    ChangeKeys,
    CloseWindow,
    ConflictDeclaration,
    Dismissal,
    Disqualification,
    ExtendWindow,
    FilingReport,
    GateReport,
    LatsarReport,
    MoveTmt,
    OfferAnswer,
    PanelReview,
    PanelScoreReport,
    Report,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.signing import Signer
from gateway.service_api import COMMAND_PATHS, JOURNEY_PATHS
from tests.flows.test_round_end_to_end import _state, _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    OPERATOR,
    REPORTERS,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from tests.web.conftest import PORTAL, auth
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFIER, CAT, PANEL, HOSPITAL, LAN = (
    "bkpsdm-verifikator",
    "cat-bkn",
    "panel-praktik",
    "rsud",
    "lan",
)
# A central instansi's SKB: CAT, a practical test, an interview scored by a panel, a health gate.
SKB = [
    {"name": "cat", "kind": "score", "weight": 60, "max_score": 500},
    {"name": "praktik", "kind": "score", "weight": 30, "max_score": 100},
    {"name": "wawancara", "kind": "panel", "weight": 10, "max_score": 100},
    {"name": "health", "kind": "gate"},
]


def api_path(round_id: str, kind: str, applicant_id: str | None = None) -> str:
    """The route of a report kind (for an applicant) or of a command (to the round)."""
    if applicant_id is None:
        return f"/api/v1/rounds/{round_id}/commands/{kind}"
    return f"/api/v1/rounds/{round_id}/applicants/{applicant_id}/{kind}"


def signed(message: Report, round_id: str, applicant_id: str | None = None) -> Report:
    """The message signed by its reporter's key for the journey (or the round) it is for."""
    audience = (
        round_workflow_id(round_id)
        if applicant_id is None
        else journey_workflow_id(round_id, applicant_id)
    )
    return TEST_KEYRING.sign(message, audience)


async def send(
    http: httpx.AsyncClient,
    round_id: str,
    kind: str,
    message: Report,
    applicant_id: str | None = None,
    sign: bool = True,
    tell_repeats: bool = False,
) -> httpx.Response:
    """POST a message as its reporter would: its API key, its signature, its report_id as the
    Idempotency-Key (asking whether it is a repeat with `tell_repeats`)."""
    if sign:
        message = signed(message, round_id, applicant_id)
    return await http.post(
        api_path(round_id, kind, applicant_id),
        json=message.model_dump(mode="json"),
        headers={**auth(message.reported_by), "Idempotency-Key": message.report_id},
        params={"tell_repeats": "true"} if tell_repeats else None,
    )


def ack(response: httpx.Response) -> tuple[str, str]:
    """(effect, stage) of an acknowledgement; fails with the problem when there is none."""
    assert response.status_code == 200, response.text
    body = response.json()
    return body["effect"], body["stage"]


def refusal(response: httpx.Response, status: int) -> str:
    """The detail of a problem+json answer with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body["detail"]


# --- the door: refused before anything reaches the engine ---------------------------------------

DOOR_ROUND = "door-no-such-round"
SKD_BODY = SkdReport(report_id="skd-door", reported_by=CAT, twk=100, tiu=100, tkp=180)


async def test_a_request_without_an_api_key_is_401(http):
    message = signed(SKD_BODY, DOOR_ROUND, "A")
    r = await http.post(api_path(DOOR_ROUND, "skd", "A"), json=message.model_dump(mode="json"))
    refusal(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["errors"][0]["field"] == "header authorization"


async def test_an_unknown_api_key_is_401(http):
    message = signed(SKD_BODY, DOOR_ROUND, "A")
    r = await http.post(
        api_path(DOOR_ROUND, "skd", "A"),
        json=message.model_dump(mode="json"),
        headers={"Authorization": "Bearer api-key-of-nobody"},
    )
    assert "not one this gateway knows" in refusal(r, 401)


async def test_the_key_of_another_identity_is_403(http):
    message = signed(SKD_BODY, DOOR_ROUND, "A")  # signed by the CAT centre ...
    r = await http.post(  # ... sent with the hospital's API key
        api_path(DOOR_ROUND, "skd", "A"),
        json=message.model_dump(mode="json"),
        headers=auth(HOSPITAL),
    )
    refusal(r, 403)
    assert r.json()["errors"] == [
        {"field": "reported_by", "value": CAT, "reason": "not the caller"}
    ]


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (
            "skd",
            {"report_id": "s1", "reported_by": CAT, "twk": "banyak", "tiu": 5, "tkp": 5},
            "twk",
        ),
        ("skd", {"report_id": "s1", "reported_by": CAT, "twk": 5, "tkp": 5}, "tiu"),
        (
            "gate",
            {"report_id": "g1", "reported_by": HOSPITAL, "component": "health", "decision": "OK"},
            "decision",
        ),
        (
            "admin",
            {"report_id": "a1", "reported_by": VERIFIER, "findings": [{"document": "ijazah"}]},
            "findings.0.reason",
        ),
        # The probation's health finding is stated, never assumed healthy.
        ("latsar", {"report_id": "l1", "reported_by": LAN, "passed": True}, "healthy"),
    ],
)
async def test_a_bad_field_is_422_naming_it(http, kind, body, field):
    r = await http.post(
        api_path(DOOR_ROUND, kind, "A"), json=body, headers=auth(body["reported_by"])
    )
    detail = refusal(r, 422)
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert field in detail


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("panel_score", {"component": "wawancara", "panellist": PANEL, "score": 0}),
        ("skb_score", {"component": "praktik", "score": 0}),
    ],
)
async def test_a_score_that_is_not_a_finite_number_is_422_at_the_door(http, kind, body, number):
    """JSON as Python writes it may carry NaN and Infinity: refused here, naming the score.
    Before, they passed the door, reached the journey as null (pydantic's JSON has no NaN) and
    came back as a 409 "score: Input should be a valid number (got None)"."""
    text = json.dumps({"report_id": "nan-1", "reported_by": PANEL, **body}).replace(
        '"score": 0', f'"score": {number}'
    )
    r = await http.post(
        api_path(DOOR_ROUND, kind, "A"),
        content=text,
        headers={**auth(PANEL), "Content-Type": "application/json"},
    )
    detail = refusal(r, 422)
    assert [e["field"] for e in r.json()["errors"]] == ["score"], r.text
    assert "finite number" in detail


async def test_an_idempotency_key_other_than_the_report_id_is_422(http):
    message = signed(SKD_BODY, DOOR_ROUND, "A")
    r = await http.post(
        api_path(DOOR_ROUND, "skd", "A"),
        json=message.model_dump(mode="json"),
        headers={**auth(CAT), "Idempotency-Key": "some-other-id"},
    )
    refusal(r, 422)
    assert r.json()["errors"][0]["field"] == "header Idempotency-Key"


async def test_an_oversized_body_is_413_however_it_is_sent(http, gateway_state):
    limit = gateway_state.settings.http_max_body_bytes
    body = b'{"report_id": "big", "reported_by": "cat-bkn", "pad": "' + b"x" * limit + b'"}'
    headers = {**auth(CAT), "content-type": "application/json"}
    declared = await http.post(api_path(DOOR_ROUND, "skd", "A"), content=body, headers=headers)
    refusal(declared, 413)

    async def chunks():  # no Content-Length: counted while it is read
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = await http.post(api_path(DOOR_ROUND, "skd", "A"), content=chunks(), headers=headers)
    refusal(streamed, 413)
    assert streamed.headers["x-request-id"]


async def test_a_round_that_does_not_exist_is_404(http):
    assert "does not exist" in refusal(await send(http, DOOR_ROUND, "skd", SKD_BODY, "A"), 404)
    r = await http.post(
        f"/api/v1/rounds/{DOOR_ROUND}/registrations",
        json=registration(1, "F1").model_dump(mode="json"),
        headers=auth(OPERATOR),
    )
    refusal(r, 404)


# --- a round, every kind ------------------------------------------------------------------------


async def test_every_report_and_command_kind_through_its_route(
    client, keys, running_worker, http, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"api-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        # F2 has the same jabatan and nobody registers for it: its seat goes to F1's runner-up.
        [formasi("F1", 1), formasi("F2", 1)],
        {
            "registration": (-60, 250),
            "administration": (300, 600),
            "skd": (600, 900),
            "skb": (900, 1200),
            "filing": (1200, 1500),
            "latsar": (1500, 1800),
        },
        appeal_window=8,
        answer_within=10,
        offer_within=20,
        t0=t0,
        skb=SKB,
        extra={"instansi_kind": "pusat", "reporters": {**REPORTERS, "wawancara": [PANEL]}},
    )
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)

    acknowledged: set[str] = set()  # the kinds the gateway acknowledged

    async def command(kind: str, message: Report) -> tuple[str, str]:
        answer = ack(await send(http, round_id, kind, message))
        acknowledged.add(kind)
        return answer

    async def close(window: str) -> None:
        await _wait_phase(api, round_id, window)
        closed = await command(
            "close-window",
            CloseWindow(
                report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason="all in"
            ),
        )
        assert closed == (f"{window} closed early", window)

    # Registration, by the operator through the gateway (the portal's key signs the journey).
    people = {name: registration(i, "F1") for i, name in enumerate(("A1", "A2", "A3", "A4"), 1)}
    # A4 withdraws after passing (APS): a NIK no other test registers, as the register bars it.
    people["A4"] = registration(4, "F1", birth=date(1995, 10, 23))
    ids = {}
    for name, reg in people.items():
        r = await http.post(
            f"/api/v1/rounds/{round_id}/registrations",
            json=reg.model_dump(mode="json"),
            headers=auth(OPERATOR),
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "registered"
        ids[name] = r.json()["applicant_id"]
    again = await http.post(
        f"/api/v1/rounds/{round_id}/registrations",
        json=people["A1"].model_dump(mode="json"),
        headers=auth(OPERATOR),
    )
    assert (again.json()["status"], again.json()["applicant_id"]) == ("repeat", ids["A1"])
    same_nik = people["A2"].model_copy(update={"nik": people["A1"].nik})
    twin = await http.post(
        f"/api/v1/rounds/{round_id}/registrations",
        json=same_nik.model_dump(mode="json"),
        headers=auth(OPERATOR),
    )
    assert "one NIK may register once" in refusal(twin, 409)
    assert twin.json()["errors"][0]["field"] == "nik"
    by_cat = await http.post(
        f"/api/v1/rounds/{round_id}/registrations",
        json=registration(9, "F1").model_dump(mode="json"),
        headers=auth(CAT),
    )
    refusal(by_cat, 403)

    extended = t0 + timedelta(seconds=280)
    assert await command(
        "extend-window",
        ExtendWindow(
            report_id="extend-registration",
            reported_by=OPERATOR,
            window="registration",
            new_closes=extended,
            reason="the portal was down for an hour",
        ),
    ) == ("registration extended", "registration")
    assert await command(
        "move-tmt",
        MoveTmt(report_id="tmt", reported_by=OPERATOR, new_tmt=date(2027, 4, 1), reason="Keppres"),
    ) == ("TMT moved to 2027-04-01", "registration")
    await close("registration")

    # Administration: MS for A1, A3 and A4, TMS (one failing document) for A2.
    async def report(name: str, kind: str, message: Report) -> tuple[str, str]:
        answer = ack(await send(http, round_id, kind, message, ids[name]))
        acknowledged.add(kind)
        return answer

    for name in ids:
        await _wait_stage(client, round_id, ids[name], {Stage.ADMIN_CHECK})
    findings = {"A2": [DocumentFinding(document="ijazah", reason="not legalised")]}
    admin = {
        name: AdminReport(
            report_id=f"adm-{name}", reported_by=VERIFIER, findings=findings.get(name, [])
        )
        for name in ids
    }
    for name, message in admin.items():
        assert await report(name, "admin", message) == (
            "administrative result recorded",
            "admin_check",
        )

    # A repeat is answered with the first acknowledgement; other content under its id is refused.
    first = await send(http, round_id, "admin", admin["A1"], ids["A1"])
    repeat = await send(http, round_id, "admin", admin["A1"], ids["A1"])
    assert (repeat.status_code, repeat.json()) == (200, first.json())
    changed = admin["A1"].model_copy(
        update={"findings": [DocumentFinding(document="KTP", reason="blurred")]}
    )
    assert "already used with different content" in refusal(
        await send(http, round_id, "admin", changed, ids["A1"]), 409
    )
    # A report for a stage the applicant is not at: the engine's reason, as problem+json.
    early_skd = SkdReport(report_id="skd-early", reported_by=CAT, twk=120, tiu=140, tkp=190)
    assert "at stage admin_check, not skd" in refusal(
        await send(http, round_id, "skd", early_skd, ids["A1"]), 409
    )
    # An unsigned message, and one signed by a key that is not the reporter's.
    unsigned = await send(http, round_id, "skd", early_skd, ids["A1"], sign=False)
    assert "unsigned" in refusal(unsigned, 409)
    # The gateway holds the portal's key, but never signs what a caller sends in its name.
    in_portals_name = Withdrawal(report_id="aps-A1", reported_by=PORTAL, reason="not me")
    unsigned = await send(http, round_id, "withdraw", in_portals_name, ids["A1"], sign=False)
    assert "unsigned" in refusal(unsigned, 409)
    assert unsigned.json()["errors"][0]["field"] == "signature"
    forged = Signer.generate(CAT).sign(early_skd, journey_workflow_id(round_id, ids["A1"]))
    r = await http.post(
        api_path(round_id, "skd", ids["A1"]),
        json=forged.model_dump(mode="json"),
        headers={**auth(CAT), "Idempotency-Key": forged.report_id},
    )
    assert "does not verify under cat-bkn's key" in refusal(r, 409)
    # Nobody of that registration number in this round.
    assert "no such applicant" in refusal(
        await send(http, round_id, "skd", early_skd, "NOSUCHAPPLICANT1"), 404
    )

    assert await report(
        "A3",
        "disqualify",
        Disqualification(report_id="dis-A3", reported_by=OPERATOR, reason="forged ijazah"),
    ) == ("disqualified", "admin_check")
    assert await report(
        "A4", "withdraw", Withdrawal(report_id="aps-A4", reported_by=PORTAL, reason="moved away")
    ) == ("withdrawal recorded", "admin_check")

    await close("administration")
    await _wait_stage(client, round_id, ids["A2"], {Stage.ADMIN_APPEAL})
    assert await report(
        "A2",
        "file_appeal",
        AppealFiling(report_id="sanggah-A2", reported_by=PORTAL, reason="ijazah is legalised"),
    ) == ("appeal filed", "admin_appeal")
    assert await report(
        "A2",
        "answer_appeal",
        AppealAnswer(report_id="jawab-A2", reported_by=VERIFIER, accepted=True),
    ) == ("appeal answered", "admin_appeal")

    # SKD.
    skd = {"A1": (120, 140, 190), "A2": (110, 130, 185)}
    for name, (twk, tiu, tkp) in skd.items():
        await _wait_stage(client, round_id, ids[name], {Stage.SKD})
        message = SkdReport(report_id=f"skd-{name}", reported_by=CAT, twk=twk, tiu=tiu, tkp=tkp)
        assert await report(name, "skd", message) == ("SKD scores recorded", "skd")
    await close("skd")

    # SKB: CAT, the practical test, two interview panellists, the health gate.
    skb = {"A1": (450, 90, (85, 80)), "A2": (400, 80, (70, 75))}
    for name, (cat, praktik, panel) in skb.items():
        await _wait_stage(client, round_id, ids[name], {Stage.SKB})
        for component, by, score in (("cat", CAT, cat), ("praktik", PANEL, praktik)):
            message = SkbScoreReport(
                report_id=f"{component}-{name}", reported_by=by, component=component, score=score
            )
            assert await report(name, "skb_score", message) == (
                f"SKB {component} score recorded",
                "skb",
            )
        for panellist, score in zip(("P1", "P2"), panel, strict=True):
            message = PanelScoreReport(
                report_id=f"ww-{panellist}-{name}",
                reported_by=PANEL,
                component="wawancara",
                panellist=panellist,
                score=score,
            )
            assert await report(name, "panel_score", message) == (
                f"wawancara score of panellist {panellist} recorded",
                "skb",
            )
        health = GateReport(
            report_id=f"health-{name}", reported_by=HOSPITAL, component="health", decision="MS"
        )
        assert await report(name, "gate", health) == ("health MS recorded", "skb")
    # Kinds the round's rules cannot take: a panel score for a component that is no interview,
    # and for a component the round does not have.
    not_a_panel = PanelScoreReport(
        report_id="ww-praktik", reported_by=PANEL, component="praktik", panellist="P1", score=70
    )
    assert "praktik is a score component, not panel" in refusal(
        await send(http, round_id, "panel_score", not_a_panel, ids["A1"]), 409
    )
    no_such = not_a_panel.model_copy(update={"report_id": "psi", "component": "psikologi"})
    assert "'psikologi' is not part of this round" in refusal(
        await send(http, round_id, "panel_score", no_such, ids["A1"]), 409
    )
    # This round's interview has no pool: a conflict or a review reaches the engine by its
    # route and is refused by the round's rules (tests/flows/test_panels.py takes them).
    conflict = ConflictDeclaration(
        report_id="coi", reported_by=PANEL, component="wawancara", panellist="P1", kind="family"
    )
    review = PanelReview(
        report_id="rev", reported_by=OPERATOR, component="wawancara", panellist="P1", keep=True
    )
    for kind, message in (("declare_conflict", conflict), ("review_panel_score", review)):
        reason = refusal(await send(http, round_id, kind, message, ids["A1"]), 409)
        assert "'wawancara' is not a panel component with a pool in this round" in reason
        acknowledged.add(kind)  # routed to the journey and judged there
    await close("skb")

    # A1 wins F1; A2 loses on rank and is offered F2's empty seat.
    await _wait_offer(client, round_id, ids["A2"])
    assert await report(
        "A2", "answer_offer", OfferAnswer(report_id="offer-A2", reported_by=PORTAL, accept=True)
    ) == ("offer accepted", "optimalisasi")

    await _wait_stage(client, round_id, ids["A1"], {Stage.FILING})
    assert await report(
        "A1", "filing", FilingReport(report_id="drh-A1", reported_by=VERIFIER, complete=True)
    ) == ("filing recorded", "filing")
    await _wait_stage(client, round_id, ids["A1"], {Stage.LATSAR})
    assert await report(
        "A1",
        "latsar",
        LatsarReport(report_id="latsar-A1", reported_by=LAN, passed=True, healthy=True),
    ) == ("Latsar result recorded", "latsar")

    await _wait_phase(api, round_id, "filing")
    new_bkn = Signer.generate("bkn").public
    assert await command(
        "change-keys",
        ChangeKeys(
            report_id="keys-bkn",
            reported_by=OPERATOR,
            identities={"bkn": new_bkn},
            reason="BKN's signing key was retired",
        ),
    ) == ("keys changed for bkn", "filing")

    # What the acknowledgements said happened, happened.
    a1 = await _wait_stage(client, round_id, ids["A1"], {Stage.ENDED})
    a2 = await _wait_stage(client, round_id, ids["A2"], {Stage.FILING})
    a3, a4 = await _state(client, round_id, ids["A3"]), await _state(client, round_id, ids["A4"])
    assert (a1.terminal.value, a1.final_code.value, a1.tmt) == ("PNS", "P/L", date(2027, 4, 1))
    assert (a2.final_code.value, a2.placed_formasi) == ("P/L-2", "F2")
    assert (a3.terminal.value, a4.terminal.value) == ("DIS", "APS")
    assert (await api.round_state(round_id)).schedule.registration.closes == extended
    # After the journey ended the applicant's aftermath takes a dismissal of the PNS by decree.
    dismissal = Dismissal(
        report_id="pb-A1", reported_by=OPERATOR, decree_no="800/1/2028", reason="desersi"
    )
    assert await report("A1", "dismiss", dismissal) == (
        "dismissed after the journey ended",
        "ended",
    )
    assert acknowledged == set(JOURNEY_PATHS) | set(COMMAND_PATHS)  # every kind, none left out


async def test_a_report_the_engine_does_not_answer_in_time_is_503_to_send_again(
    client, keys, running_worker, http, gateway_state, tmp_path, monkeypatch
):
    """The engine's answer did not come within the client's attempts (a deadline peak): whether
    the report was taken is not known, and the same report again is safe. The service hears 503
    with Retry-After and what to do, not a bare 500; the report, sent again once the engine
    answers, is taken once."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    from tests.roundkit import open_registration_round

    settings, _ = running_worker
    operator = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await open_registration_round(operator, tmp_path, "api-late")
    applicant = (await operator.register(config, registration(12, "F1"), "sscasn")).applicant_id
    assert applicant is not None
    report = AdminReport(report_id="adm-late", reported_by=VERIFIER)

    async def late(*args, **kwargs):
        raise WorkflowUpdateRPCTimeoutOrCancelledError()

    with monkeypatch.context() as patched:
        patched.setattr(gateway_state.api, "report", late)
        r = await send(http, config.round_id, "admin", report, applicant)
    assert "send the same message again" in refusal(r, 503)
    assert r.headers["retry-after"] == "30"
    first = await send(http, config.round_id, "admin", report, applicant)
    again = await send(http, config.round_id, "admin", report, applicant)
    told = await send(http, config.round_id, "admin", report, applicant, tell_repeats=True)
    ack(first)
    # A repeat is answered with the first answer (the same time of record): taken once. It is
    # the same update to the server (client.api.update_id), so the history holds it once. Asked
    # (?tell_repeats=true), the gateway marks it a repeat; unasked it does not look.
    assert again.json() == first.json() and "repeat" not in first.json()
    assert told.json() == {**first.json(), "repeat": True}
    history = client.get_workflow_handle(journey_workflow_id(config.round_id, applicant))
    taken = [
        e
        async for e in history.fetch_history_events()
        if e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == "report_admin"
    ]
    assert len(taken) == 1
    # The update id is in clear on the server: nothing of the report_id in it.
    recorded_id = taken[0].workflow_execution_update_accepted_event_attributes.accepted_request
    assert recorded_id.meta.update_id.startswith("report-")
    assert report.report_id not in recorded_id.meta.update_id
    # The same report_id with other content is another update, refused as a conflict.
    changed = report.model_copy(
        update={"findings": [DocumentFinding(document="ijazah", reason="x")]}
    )
    assert "different content" in refusal(
        await send(http, config.round_id, "admin", changed, applicant), 409
    )
    await history.terminate("test over")
    await client.get_workflow_handle(round_workflow_id(config.round_id)).terminate("test over")
