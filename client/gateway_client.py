"""Reports and commands through the HTTP gateway, for an operator who holds a signing key and an
API key but no access to Temporal (and so no payload key): `starter.py report ... --gateway URL`,
the operator's commands with the same option, the round's and one applicant's status
(`status --gateway`, `lookup --gateway`), announcements signed here (`announce --gateway`), and
a file of registrations (`import-registrations --gateway`), one request each, signed by the
gateway's portal key on this API key's request.

`GatewayReports.report` is `RecruitmentApi.report`'s contract: the acknowledgement, or
RefusedError with the engine's reason. Reports in flight at the same moment go together in one
batch (`POST /api/v1/rounds/{round}/reports`): each waits at most LINGER seconds for others to
join it, and a batch holds at most BATCH_SIZE. An item the engine did not take now (503, 500) goes
into a later batch after the gateway's Retry-After, at most ATTEMPTS times in all: a repeat is
safe, by its report_id. What refuses a whole batch (no such round, an API key the gateway does not
know or that is not the reporter's, an unsigned message in a round with keys) would refuse every
batch, so it stops the run: GatewayError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from client.api import RefusedError, RegistrationResult, UnknownError
from client.outstanding import Outstanding
from client.panels import CODE_PREFIX, PanelSheetRow
from client.publication import (
    Publication,
    Published,
    SignedDraft,
    anchor_of,
    audience,
    from_document,
)
from client.survey import SurveyRow
from domain.config import RoundConfig
from domain.local_time import JAKARTA
from domain.messages import BLIND_REPORTS, Ack, Report
from domain.panels import candidate_audience
from domain.protocol import command_kind, service_kind
from domain.registration import Refusal, Registration
from domain.signing import Keyring
from workflows.ids import journey_workflow_id, round_workflow_id

BATCH_SIZE = 100  # items per batch: about 35 KB of signed SKD scores, well under the 1 MiB limit
LINGER = 0.05  # seconds a report waits for others to share its batch
ATTEMPTS = 5  # tries of an item the engine did not take now (503 or 500)
RETRY_AFTER_MOST = 60.0  # seconds waited at most before a retry, whatever Retry-After says
TIMEOUT = 300.0  # seconds for one batch's answer: 100 items take a few here


class NotTaken(Exception):
    """One report the engine did not take in ATTEMPTS tries (503, 500): whether an earlier try
    reached it is not known; sending the same report again later is safe."""


class GatewayError(Exception):
    """The gateway refused a whole batch, or could not be reached: nothing of that batch was
    taken, and the next would fare the same. `status` is the HTTP status (0: not reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class _Pending:
    round_id: str
    applicant_id: str
    message: Report  # signed
    answer: asyncio.Future[Ack]
    attempts: int = 0


@dataclass
class GatewayReports:
    """Sends signed reports to the gateway in batches; one instance per run."""

    url: str  # the gateway's base URL, e.g. https://gateway.example.go.id
    api_key: str = field(repr=False)  # never in a log line or a traceback's repr
    keyring: Keyring = field(default_factory=lambda: Keyring([]))
    batch_size: int = BATCH_SIZE
    linger: float = LINGER
    wait_most: float = RETRY_AFTER_MOST  # seconds waited at most before a retry
    transport: httpx.AsyncBaseTransport | None = None  # tests: an app in-process
    # The run's own state: reports waiting for a batch, the timer that sends them, the batches in
    # flight and the connection (opened by `async with`).
    _queue: list[_Pending] = field(default_factory=list, init=False, repr=False)
    _flusher: asyncio.Task | None = field(default=None, init=False, repr=False)
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _sending: set[asyncio.Task] = field(default_factory=set, init=False, repr=False)

    async def __aenter__(self) -> GatewayReports:
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=TIMEOUT,
            transport=self.transport,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in [self._flusher, *self._sending]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._http is not None:
            await self._http.aclose()

    async def check_round_keys(self, round_id: str) -> None:
        """Nothing to match: this client holds no payload or pseudonym key (the gateway's do the
        work); a round that does not exist refuses the first batch."""

    async def report(self, round_id: str, applicant_id: str, message: Report) -> Ack:
        """Send one report (in a batch with whatever else is in flight); its acknowledgement, or
        RefusedError with the engine's reason (UnknownError: no such applicant). A panellist's
        blind report may name the candidate by code (K-...): it is signed for that code, and the
        gateway finds the journey (its acknowledgement names the code, never the number)."""
        blind = applicant_id.startswith(CODE_PREFIX) and isinstance(message, BLIND_REPORTS)
        audience = (
            candidate_audience(round_id, applicant_id)
            if blind
            else journey_workflow_id(round_id, applicant_id)
        )
        signed = self.keyring.sign(message, audience)
        answer: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._add(_Pending(round_id, applicant_id, signed, answer))
        return await answer

    async def submit(self, round_id: str, applicant_id: str, message: Report) -> Ack:
        """`report`: the gateway tells a repeat itself (asked by `?tell_repeats=true`:
        RecruitmentApi.submit), its first answer marked `repeat`."""
        return await self.report(round_id, applicant_id, message)

    async def command(self, round_id: str, message: Report) -> Ack:
        """Send one operator command to the round (one request: commands take no batches); its
        acknowledgement, or RefusedError with the round's reason."""
        assert self._http is not None, "use GatewayReports as an async context manager"
        signed = self.keyring.sign(message, round_workflow_id(round_id))
        path = f"/api/v1/rounds/{quote(round_id, safe='')}/commands/{command_kind(message)}"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._http.post(
                    path,
                    json=signed.model_dump(mode="json"),
                    headers={"Idempotency-Key": signed.report_id},
                )
            except httpx.TransportError as exc:
                raise GatewayError(
                    0, f"the gateway at {self.url} cannot be reached: {exc}"
                ) from None
            if response.status_code == 200:
                return Ack.model_validate(response.json())
            if response.status_code == 404:
                raise UnknownError(_problem(response))
            if response.status_code == 409:
                raise RefusedError(_problem(response))
            if response.status_code not in (500, 502, 503, 504):
                raise GatewayError(response.status_code, _detail(response))
            if attempt < ATTEMPTS:
                await asyncio.sleep(_retry_after(response, self.wait_most))
        raise NotTaken(f"not taken in {ATTEMPTS} attempts: {_detail(response)}")

    async def rules_digest(self, round_id: str) -> str:
        """The digest of the rules the round was created with (its status's `round.rules_digest`);
        GatewayError when the gateway cannot read the round now, UnknownError when there is none."""
        status = await self.round_status(round_id)
        view = status.get("round") or {}
        digest = view.get("rules_digest") if isinstance(view, dict) else None
        if not digest:
            problem = status.get("round_problem") or "the gateway's answer names no rules digest"
            raise GatewayError(503, f"round {round_id} cannot be read now: {problem}")
        return str(digest)

    async def register(
        self,
        config: RoundConfig,
        registration: Registration,
        registered_by: str = "",
        now: datetime | None = None,
        schedule_closes: datetime | None = None,
    ) -> RegistrationResult:
        """Register one applicant through the gateway (`POST /api/v1/rounds/{round}/registrations`,
        for the round's operators): `RecruitmentApi.register`'s contract. The gateway judges it
        at its own time against the round's windows as they stand, and its portal key signs the
        start, which names this API key's identity as the one who asked: `registered_by`, `now`
        and `schedule_closes` are the direct path's and are not sent. A refusal comes back as
        "refused" with the gateway's reasons; a registration the engine did not take now (503,
        500, 429) is tried again after Retry-After, ATTEMPTS times in all (a repeat of the same
        data is answered "repeat"), then NotTaken."""
        assert self._http is not None, "use GatewayReports as an async context manager"
        path = f"/api/v1/rounds/{quote(config.round_id, safe='')}/registrations"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._http.post(path, json=registration.model_dump(mode="json"))
            except httpx.TransportError as exc:
                raise GatewayError(
                    0, f"the gateway at {self.url} cannot be reached: {exc}"
                ) from None
            status = response.status_code
            if status == 200:
                answer = response.json()
                return RegistrationResult(
                    answer["status"], answer["applicant_id"], pending=bool(answer.get("pending"))
                )
            if status in (409, 422):
                return RegistrationResult("refused", _refused_number(response), _refusals(response))
            if status == 404:
                raise UnknownError(_problem(response))
            if status not in (429, 500, 502, 503, 504):
                raise GatewayError(status, _detail(response))
            if attempt < ATTEMPTS:
                await asyncio.sleep(_retry_after(response, self.wait_most))
        raise NotTaken(f"not taken in {ATTEMPTS} attempts: {_detail(response)}")

    async def round_status(self, round_id: str) -> dict[str, Any]:
        """The round's status as `starter.py status --json` prints it (the gateway's
        `GET /api/v1/rounds/{round}`, for the round's operators): `round` and `funnel`, either
        null with `round_problem` or `funnel_problem` saying why. UnknownError: no such round."""
        return await self._read("GET", f"/api/v1/rounds/{quote(round_id, safe='')}", round_id)

    async def lookup(
        self, round_id: str, applicant_id: str | None = None, nik: str | None = None
    ) -> dict[str, Any]:
        """One applicant's status as `starter.py lookup --json` prints it (the gateway's
        `POST /api/v1/rounds/{round}/lookups`, for the round's operators; the NIK goes in the
        body, never in the URL). UnknownError: no such round or applicant."""
        path = f"/api/v1/rounds/{quote(round_id, safe='')}/lookups"
        whom = {"applicant_id": applicant_id} if nik is None else {"nik": nik}
        return await self._read("POST", path, round_id, whom)

    async def survey(self, round_id: str) -> list[SurveyRow]:
        """The satisfaction survey's results of the round (the gateway's `GET .../survey`, for
        the round's operators), as survey_rows gives them."""
        path = f"/api/v1/rounds/{quote(round_id, safe='')}/survey"
        answer = await self._read("GET", path, round_id)
        try:
            return [SurveyRow.model_validate(r) for r in answer["results"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayError(
                200, f"the gateway's answer holds no survey results: {exc}"
            ) from None

    async def outstanding(self, round_id: str, formasi: str | None = None) -> Outstanding:
        """The reports the round's journeys at the administrative check, SKD, SKB and Latsar await
        (the gateway's `GET .../outstanding`, for the round's operators), as client/outstanding.py reads them.
        UnknownError: no such round; RefusedError: no such formasi in it."""
        path = f"/api/v1/rounds/{quote(round_id, safe='')}/outstanding"
        if formasi:
            path += f"?formasi={quote(formasi, safe='')}"
        answer = await self._read("GET", path, round_id)
        try:
            return Outstanding.model_validate(answer)
        except ValueError as exc:
            raise GatewayError(200, f"the gateway's answer is no outstanding view: {exc}") from None

    async def panel_sheet(
        self, round_id: str, panellist: str, formasi: str | None = None
    ) -> list[PanelSheetRow]:
        """`panellist`'s blind sheet (the gateway's `GET .../panel-sheet`, which gives the API
        key's panellist theirs): the applicants they are drawn for, by candidate code.
        GatewayError when the API key is another identity's."""
        path = f"/api/v1/rounds/{quote(round_id, safe='')}/panel-sheet"
        if formasi:
            path += f"?formasi={quote(formasi, safe='')}"
        sheet = await self._read("GET", path, round_id)
        if sheet.get("panellist") != panellist:
            raise GatewayError(
                403, f"the API key is {sheet.get('panellist')}'s, not panellist {panellist}'s"
            )
        return [
            PanelSheetRow(r["candidate"], r["formasi_code"], r["component"]) for r in sheet["rows"]
        ]

    async def announce(
        self,
        round_id: str,
        stage: str,
        identity: str,
        corrects: int | None = None,
        review: Callable[[Publication], None] = lambda draft: None,
    ) -> Published:
        """Publish the stage's announcement through the gateway, signed here by `identity`'s key
        (the gateway never holds it): draft it, show the draft to `review` (which may raise to
        stop), sign it, send the signature. RefusedError with the gateway's reason (not ready,
        results changed since the draft, not an operator)."""
        base = f"/api/v1/rounds/{quote(round_id, safe='')}/announcements/{quote(stage, safe='')}"
        drafted = await self._read("POST", f"{base}/drafts", round_id, {"corrects": corrects})
        draft = _publication_in(drafted)
        if not drafted["new"]:
            return Published(
                draft, False, drafted["cut_multiplier"], drafted.get("timezone", JAKARTA)
            )
        if (draft.round_id, draft.stage.value, draft.reported_by) != (round_id, stage, identity):
            raise GatewayError(200, f"the gateway drafted another announcement: {draft.body()}")
        review(draft)
        publication = self.keyring.sign(draft, audience(round_id))
        # Its record in the round's history too, which the gateway sends (client.publication).
        record = self.keyring.sign(anchor_of(publication), round_workflow_id(round_id))
        signed = SignedDraft.of(publication, record)
        answer = await self._read("POST", base, round_id, signed.model_dump(mode="json"))
        return Published(
            _publication_in(answer),
            answer["stored"],
            answer["cut_multiplier"],
            answer.get("timezone", JAKARTA),
        )

    async def national_funnel(self, national_id: str) -> dict[str, Any]:
        """The national round's funnel document (client.national.funnel_document; the gateway's
        `GET /api/v1/national/{id}`, for the readers its file names). UnknownError: no such
        national round."""
        path = f"/api/v1/national/{quote(national_id, safe='')}"
        return await self._read("GET", path, national_id, about="national_id")

    async def _read(
        self,
        method: str,
        path: str,
        round_id: str,
        body: dict | None = None,
        about: str = "round_id",
    ) -> dict[str, Any]:
        """One request about the round (or the national round, `about` its id's field): its JSON
        answer, checked to be about it."""
        assert self._http is not None, "use GatewayReports as an async context manager"
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise GatewayError(0, f"the gateway at {self.url} cannot be reached: {exc}") from None
        if response.status_code == 404:
            raise UnknownError(_problem(response))
        if response.status_code == 409:
            raise RefusedError(_problem(response))
        if response.status_code != 200:
            raise GatewayError(response.status_code, _detail(response))
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or document.get(about) != round_id:
            raise GatewayError(200, f"not an answer about {round_id}: {response.text[:200]!r}")
        return document

    def _add(self, item: _Pending) -> None:
        self._queue.append(item)
        if len(self._queue) >= self.batch_size:
            self._flush_now()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.linger)
        self._flush_now()

    def _flush_now(self) -> None:
        while self._queue:
            # One batch per round: the route is the round's.
            round_id = self._queue[0].round_id
            batch = [p for p in self._queue if p.round_id == round_id][: self.batch_size]
            taken = {id(p) for p in batch}
            self._queue = [p for p in self._queue if id(p) not in taken]
            task = asyncio.create_task(self._send(round_id, batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, round_id: str, batch: list[_Pending]) -> None:
        try:
            again, wait = await self._post(round_id, batch)
        except Exception as exc:  # noqa: BLE001 - every report of the batch is told, none waits on
            if not isinstance(exc, GatewayError):
                exc = GatewayError(0, f"the gateway's answer could not be read: {exc!r}")
            for p in batch:
                if not p.answer.done():
                    p.answer.set_exception(exc)
            return
        if again:
            await asyncio.sleep(wait)
            for p in again:
                self._add(p)

    async def _post(self, round_id: str, batch: list[_Pending]) -> tuple[list[_Pending], float]:
        """POST one batch and settle each item's answer; the items to send again, and after how
        many seconds."""
        assert self._http is not None, "use GatewayReports as an async context manager"
        body = {
            "items": [
                {
                    "applicant_id": p.applicant_id,
                    "kind": service_kind(p.message),
                    "message": p.message.model_dump(mode="json"),
                }
                for p in batch
            ]
        }
        try:
            # The operator's run counts repeats (a file sent again): the gateway asks the engine.
            response = await self._http.post(
                f"/api/v1/rounds/{quote(round_id, safe='')}/reports",
                json=body,
                params={"tell_repeats": "true"},
            )
        except httpx.TransportError as exc:
            raise GatewayError(0, f"the gateway at {self.url} cannot be reached: {exc}") from None
        wait = _retry_after(response, self.wait_most)
        if response.status_code in (502, 503, 504):
            # The gateway could not read the round now: the whole batch, later.
            return self._later(batch, f"the gateway answered {response.status_code}"), wait
        if response.status_code != 200:
            raise GatewayError(response.status_code, _detail(response))
        again: list[_Pending] = []
        for p, result in zip(batch, response.json()["results"], strict=True):
            status = result["status"]
            if status == 200:
                p.answer.set_result(Ack.model_validate(result["ack"]))
            elif status == 404:
                p.answer.set_exception(UnknownError(result["problem"]["detail"]))
            elif 400 <= status < 500:  # 409, or 422: a candidate code where none is taken
                p.answer.set_exception(RefusedError(result["problem"]["detail"]))
            else:
                again += self._later([p], result["problem"]["detail"])
        return again, wait

    def _later(self, items: list[_Pending], why: str) -> list[_Pending]:
        """The items that may be tried again; the others get GatewayError."""
        again = []
        for p in items:
            p.attempts += 1
            if p.attempts < ATTEMPTS:
                again.append(p)
            else:
                p.answer.set_exception(NotTaken(f"not taken in {ATTEMPTS} attempts: {why}"))
        return again


def _publication_in(answer: dict[str, Any]) -> Publication:
    """The publication an announcement's answer carries; GatewayError when it carries none, or
    one whose content does not hash to its body_sha256."""
    try:
        return from_document(answer["publication"])
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise GatewayError(200, f"the gateway's answer holds no publication: {exc}") from None


def _retry_after(response: httpx.Response, most: float) -> float:
    """Seconds the gateway asks to wait before trying again (1 when it does not say), at most
    `most`."""
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), most)
    except ValueError:
        return min(1.0, most)


def _refusals(response: httpx.Response) -> list[Refusal]:
    """A refused registration's reasons, field by field as the gateway gives them (its problem's
    `errors`), or the problem's detail as one reason."""
    try:
        errors = response.json().get("errors") or []
        return [
            Refusal(field=str(e["field"]), value=str(e.get("value") or ""), reason=str(e["reason"]))
            for e in errors
        ] or [Refusal(field="registration", value="", reason=_problem(response))]
    except (AttributeError, KeyError, TypeError, ValueError):
        return [Refusal(field="registration", value="", reason=_problem(response))]


def _refused_number(response: httpx.Response) -> str | None:
    """The registration number a refused registration's problem names, if it names one."""
    try:
        number = response.json().get("applicant_id")
    except (AttributeError, ValueError):
        return None
    return number if isinstance(number, str) and number else None


def _problem(response: httpx.Response) -> str:
    """The problem's detail (RFC 9457), or the start of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or str(body)[:200])


def _detail(response: httpx.Response) -> str:
    """The problem's detail with the status it came with."""
    return f"HTTP {response.status_code}: {_problem(response)}"
