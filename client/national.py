"""The national round from the client's side: create it, join instansi rounds, claim a NIK
nationwide, and the national view (the funnel and announcements per instansi).

`RecruitmentApi` calls `join` when it creates a round that names a national round, and `claim`
when it registers an applicant in one; starter.py's `create-national`, `national-status` and
`national-funnel` are built on the rest.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.claims import ended_holding, first_input, look_for_journey, release_claim
from domain.codes import Terminal
from domain.config import RoundConfig
from domain.national import (
    JOIN_ROUND,
    NATIONAL_STATE,
    ClaimStart,
    JoinAck,
    NationalConfig,
    NationalStart,
    NationalState,
    RoundJoin,
    held_elsewhere,
    load_national_config,
)
from runtime.attributes import ROUND_ID, WORKFLOW_KIND
from workflows.ids import claim_workflow_id, national_workflow_id
from workflows.national import NationalClaim, NationalRound

M = TypeVar("M")


class NationalRefusal(Exception):
    """A join, claim or read the national round refused, with the reason (RecruitmentApi turns
    it into a RefusedError)."""


def national_applicant_id(pseudonym_key: bytes, national_id: str, nik: str) -> str:
    """The NIK's keyed pseudonym in a national round (another than its registration number in any
    instansi round, which is keyed by that round's id): a claim's id carries no personal data."""
    message = f"national\x00{national_id}\x00{nik}".encode()
    digest = hmac.new(pseudonym_key, message, hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().rstrip("=")


@dataclass
class NationalRegister:
    """The national rounds of one Temporal namespace and task queue."""

    client: Client
    task_queue: str
    _configs: dict[str, NationalConfig] = field(default_factory=dict, init=False, repr=False)
    # One read of a national round's start, however many registrations ask for it at once.
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def create(self, path: Path, created_by: str) -> tuple[NationalConfig, bool]:
        """Start the national round from its file; a second call with the same file creates nothing."""
        config = load_national_config(path)
        start = NationalStart(
            config_toml=Path(path).read_text(encoding="utf-8"),
            config=config.model_dump(mode="json"),
            created_by=created_by,
        )
        try:
            await self.client.start_workflow(
                NationalRound.run,
                start,
                id=national_workflow_id(config.national_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ROUND_ID, config.national_id),
                        SearchAttributePair(WORKFLOW_KIND, "national"),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            recorded = await self.config(config.national_id)
            if recorded != config:
                raise NationalRefusal(
                    f"national round {config.national_id} already exists with another "
                    "configuration; a national round is created once"
                ) from None
            return config, False
        self._configs[config.national_id] = config
        return config, True

    async def config(self, national_id: str) -> NationalConfig:
        """The national round's configuration as recorded at its start (read once per client)."""
        if national_id not in self._configs:
            async with self._reading:
                if national_id not in self._configs:
                    start = await self._start_input(
                        national_workflow_id(national_id),
                        NationalStart,
                        f"national round {national_id} does not exist; create it first "
                        "(starter.py create-national)",
                    )
                    self._configs[national_id] = NationalConfig.model_validate(start.config)
        return self._configs[national_id]

    async def state(self, national_id: str) -> NationalState:
        """The national schedule and the register of instansi rounds."""
        await self.config(national_id)  # NationalRefusal naming the round when there is none
        handle = self.client.get_workflow_handle(national_workflow_id(national_id))
        return await NATIONAL_STATE.ask(handle)

    async def join(self, config: RoundConfig, joined_by: str) -> JoinAck:
        """Enter an instansi round in its national round's register, before the round starts.

        The national round checks the join (schedule within the national windows, registration
        still open, one round per instansi); NationalRefusal with its reason otherwise."""
        assert config.national_round is not None
        await self.config(config.national_round)
        join = RoundJoin(
            national_id=config.national_round,
            round_id=config.round_id,
            instansi=config.instansi,
            instansi_kind=config.instansi_kind,
            rules_digest=config.digest(),
            schedule=config.schedule,
            formasi=len(config.formasi),
            seats=sum(f.quota for f in config.formasi),
            joined_by=joined_by,
        )
        handle = self.client.get_workflow_handle(national_workflow_id(config.national_round))
        try:
            return await JOIN_ROUND.execute(handle, join)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise NationalRefusal(
                cause.message if isinstance(cause, ApplicationError) else str(cause)
            ) from None
        except RPCError as exc:
            raise NationalRefusal(
                f"round {config.round_id} cannot join national round {config.national_round}: "
                f"{exc.message}; a national round takes joins only until its registration closes"
            ) from None

    async def claim(
        self,
        config: RoundConfig,
        applicant_id: str,
        formasi_code: str,
        national_applicant: str,
        registration_digest: str,
    ) -> str | None:
        """Claim the NIK (by its national pseudonym) for this round's formasi; None when the claim
        is this registration's (new, or a repeat of it), else why the registration is refused.

        The engine starts one claim workflow per id: of two registrations of one NIK in two
        instansi at the same moment, exactly one starts it, and the other reads it recorded."""
        national_id = config.national_round
        assert national_id is not None
        national = await self.config(national_id)
        claim = ClaimStart(
            national_id=national_id,
            round_id=config.round_id,
            applicant_id=applicant_id,
            formasi_code=formasi_code,
            registration_digest=registration_digest,
            holds_until=national.schedule.skd.closes,
            sweep_after=national.claim_grace,
        )
        workflow_id = claim_workflow_id(national_id, national_applicant)
        # A claim the server ended (its history past the limit, by anyone who can signal it) or
        # cancelled still holds the NIK; the engine would start a new claim over it.
        ended = await ended_holding(self.client, workflow_id)
        if ended is not None:
            if (ended.round_id, ended.applicant_id) == (config.round_id, applicant_id):
                return None  # this registration's own, which its journey still takes
            return held_elsewhere(ended)
        try:
            await self.client.start_workflow(
                NationalClaim.run,
                claim,
                id=workflow_id,
                task_queue=self.task_queue,
                # Its first workflow task comes when its grace is over: the registration burst
                # costs the claims none, and the journey's claim_taken waits in the history.
                start_delay=national.claim_grace,
                # A claim released (terminated by `release` or a journey, or failed: swept by
                # itself) lets the NIK claim again; one that held to its end does not, nor one
                # ended otherwise (refused above, `ended_holding`).
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ROUND_ID, national_id),
                        SearchAttributePair(WORKFLOW_KIND, "national-claim"),
                    ]
                ),
            )
            return None
        except WorkflowAlreadyStartedError:
            pass
        first = await self._start_input(workflow_id, ClaimStart, "the NIK's claim cannot be read")
        if first.round_id == config.round_id and first.applicant_id == applicant_id:
            return None  # this round's own claim: the journey's start tells a repeat from a change
        return held_elsewhere(first)

    async def release(
        self, config: RoundConfig, applicant_id: str, national_applicant: str
    ) -> bool:
        """Release the NIK's claim when it is this registration's and its journey refused the
        registration (activities/claims.py `release_claim`). A journey of engine 4 releases it
        itself; this covers older journeys and a lost answer. True when a claim was released."""
        national_id = config.national_round
        assert national_id is not None
        workflow_id = claim_workflow_id(national_id, national_applicant)
        return await release_claim(self.client, workflow_id, config.round_id, applicant_id)

    async def look_for_journey(
        self, config: RoundConfig, applicant_id: str, national_applicant: str
    ) -> bool:
        """Ask the NIK's claim to look for its journey now, when it is this registration's and the
        registrar's start of the journey failed on its side (activities/claims.py
        `look_for_journey`): the claim releases itself if it finds none, and holds if the start
        landed after all. True when a claim was asked."""
        national_id = config.national_round
        assert national_id is not None
        workflow_id = claim_workflow_id(national_id, national_applicant)
        return await look_for_journey(self.client, workflow_id, config.round_id, applicant_id)

    async def _start_input(
        self, workflow_id: str, model: type[M], missing: str, run_id: str | None = None
    ) -> M:
        """A workflow's start input as recorded (its history's first event); the latest run's
        unless `run_id` names one. NationalRefusal(`missing`) when there is none."""
        value = await first_input(self.client, workflow_id, model, run_id)
        if value is None:
            raise NationalRefusal(missing)
        return value


# --- the national view -----------------------------------------------------------------------


@dataclass
class InstansiFunnel:
    """One instansi round's line of the national funnel, from the read model."""

    round_id: str
    instansi: str
    formasi: int
    seats: int
    codes: Counter  # stage, or terminal code once the journey ended -> applicants
    publications: dict[str, int]  # announcement stage -> publications signed
    # Registrations their journeys refused (not admitted: registration closed, ineligible on its
    # date, barred, the NIK's national claim another's): no applicants of the round, so not in
    # `codes`, where they were counted as the administration's TMS.
    refused: int = 0


async def national_funnel(
    register: NationalRegister, conn: asyncpg.Connection, national_id: str
) -> tuple[NationalState, list[InstansiFunnel]]:
    """Each instansi round of the national round with its applicants by stage or result code, the
    registrations its journeys refused, and its announcements, in the order the rounds joined (two
    queries, whatever the number of rounds). A refused registration ends its journey TMS before
    any administrative result (domain.admission.registration_refusal): a row ended TMS with no
    `admin` is one, and is counted apart."""
    state = await register.state(national_id)
    ids = [r.round_id for r in state.rounds]
    counts = await conn.fetch(
        """SELECT round_id, CASE WHEN terminal = $2 AND admin IS NULL
                THEN NULL ELSE coalesce(terminal, stage) END AS code, count(*) AS n
           FROM applicants WHERE round_id = ANY($1) GROUP BY 1, 2""",
        ids,
        Terminal.TMS.value,
    )
    published = await conn.fetch(
        """SELECT round_id, stage, count(*) AS n FROM publications
           WHERE round_id = ANY($1) GROUP BY 1, 2""",
        ids,
    )
    per_round: dict[str, Counter] = {i: Counter() for i in ids}
    refused: dict[str, int] = dict.fromkeys(ids, 0)
    for r in counts:
        if r["code"] is None:
            refused[r["round_id"]] = r["n"]
        else:
            per_round[r["round_id"]][r["code"]] = r["n"]
    announced: dict[str, dict[str, int]] = {i: {} for i in ids}
    for r in published:
        announced[r["round_id"]][r["stage"]] = r["n"]
    return state, [
        InstansiFunnel(
            round_id=r.round_id,
            instansi=r.instansi,
            formasi=r.formasi,
            seats=r.seats,
            codes=per_round[r.round_id],
            publications=announced[r.round_id],
            refused=refused[r.round_id],
        )
        for r in state.rounds
    ]


def funnel_document(
    national_id: str, state: NationalState, lines: list[InstansiFunnel]
) -> dict[str, Any]:
    """The national funnel as one JSON document: what `starter.py national-funnel --json` prints
    and the gateway's `GET /api/v1/national/{id}` answers."""
    return {
        "national_id": national_id,
        "national": state.model_dump(mode="json"),
        "instansi": [
            {
                "round_id": f.round_id,
                "instansi": f.instansi,
                "formasi": f.formasi,
                "seats": f.seats,
                "funnel": dict(sorted(f.codes.items())),
                "refused": f.refused,
                "publications": dict(sorted(f.publications.items())),
            }
            for f in lines
        ],
    }


def funnel_from_document(document: dict[str, Any]) -> tuple[NationalState, list[InstansiFunnel]]:
    """The state and lines of a funnel_document (as the gateway answered it); ValueError,
    KeyError or TypeError when it is not one."""
    return NationalState.model_validate(document["national"]), [
        InstansiFunnel(
            round_id=str(f["round_id"]),
            instansi=str(f["instansi"]),
            formasi=int(f["formasi"]),
            seats=int(f["seats"]),
            codes=Counter({str(k): int(v) for k, v in f["funnel"].items()}),
            publications={str(k): int(v) for k, v in f["publications"].items()},
            refused=int(f.get("refused", 0)),  # a gateway from before counted them in the funnel
        )
        for f in document["instansi"]
    ]
