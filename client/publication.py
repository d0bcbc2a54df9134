"""Publications: announcements signed by an operator of the round and chained by hash.

A publication is the announcement of one stage (client/announcements.py) as a document:

    {"format": "casn-pengumuman/1", "round_id", "seq", "stage", "instansi", "rules_digest",
     "published_at", "reported_by", "prev_sha256", "corrects", "formasi": [...],
     "signature": "<detached JWS>", "body_sha256": "<hex>"}

The body is everything but `signature` and `body_sha256`; its canonical JSON (domain/digest.py)
hashes to `body_sha256`. `seq` counts the round's publications from 1; `prev_sha256` is the
body hash of publication `seq - 1` (64 zeros for the first), and it is inside the body, so the
signature covers the chain: nobody can drop, reorder or change a publication without a signature
failing or a link breaking. The signature is domain/signing.py's detached JWS (Ed25519) over
`{"to": "<round>/pengumuman", "message": <body>}`, by `reported_by`, an operator identity of the
round. Publications are never changed: a correction is a new publication naming the one it
corrects (`corrects`). docs/ANNOUNCEMENTS.md describes how to check them offline.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from client.announcements import (
    COLUMNS,
    LATE_ENDINGS,
    NUMERIC_COLUMNS,
    STAGE_TITLES,
    AnnouncementNotReady,
    AnnouncementStage,
    Placed,
    csv_text,
    legend,
    read_results,
    readiness_problem,
    sections,
    waktu,
)
from client.api import RecruitmentApi, RefusedError
from client.standings import full_results, page_store
from domain.codes import FinalCode
from domain.config import ReportKind, RoundConfig
from domain.digest import canonical_json
from domain.local_time import JAKARTA
from domain.messages import (
    ZERO_SHA256,
    ChangeKeys,
    Decision,
    RecordPublication,
    RoundState,
    recorded_publications,
)
from domain.signing import Keyring, Signer, verify
from runtime.logs import get_logger
from runtime.sealed import ColumnCipher
from workflows.ids import round_workflow_id

log = get_logger(__name__)

FORMAT = "casn-pengumuman/1"
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class PublishedRow(BaseModel):
    """One line of an announcement, as published: public result only (never the NIK)."""

    model_config = _STRICT

    no: int = Field(ge=1)
    rank: int | None
    applicant_id: str
    name: str
    code: str
    twk: int | None
    tiu: int | None
    tkp: int | None
    skd_total: int | None
    skb_score: str | None
    final_score: str | None
    from_formasi: str | None  # P/L-2: the formasi the applicant applied to


class PublishedFormasi(BaseModel):
    """One formasi of an announcement: what it is, and its applicants in the official order."""

    model_config = _STRICT

    code: str
    jabatan: str
    unit: str
    education_level: str
    quota: int
    rows: list[PublishedRow]


class Publication(BaseModel):
    """A signed announcement of one stage of a round (see the module's docstring)."""

    model_config = _STRICT

    format: Literal["casn-pengumuman/1"]
    round_id: str = Field(min_length=1)
    seq: int = Field(ge=1)
    stage: AnnouncementStage
    instansi: str
    rules_digest: str
    published_at: AwareDatetime
    reported_by: str = Field(min_length=1)  # the operator identity whose key signs it
    prev_sha256: Sha256
    corrects: int | None
    formasi: list[PublishedFormasi]
    signature: str = ""

    @model_validator(mode="after")
    def _corrects_an_earlier_one(self) -> Publication:
        if self.corrects is not None and not 1 <= self.corrects < self.seq:
            raise ValueError(
                f"corrects={self.corrects}: not an earlier publication than {self.seq}"
            )
        return self

    def body(self) -> dict[str, Any]:
        """Everything the signature and the hash cover."""
        return self.model_dump(mode="json", exclude={"signature"})

    def body_text(self) -> str:
        """The body's canonical JSON: what is stored and hashed."""
        return canonical_json(self.body())

    def body_sha256(self) -> str:
        """SHA-256 of the body's canonical JSON: what the next publication links to."""
        return hashlib.sha256(self.body_text().encode()).hexdigest()

    def document(self) -> dict[str, Any]:
        """The document for offline checking: the body, its signature and its hash."""
        return {**self.body(), "signature": self.signature, "body_sha256": self.body_sha256()}

    def rows(self) -> Iterable[tuple[PublishedFormasi, PublishedRow]]:
        """Every row with its formasi, in the published order."""
        for f in self.formasi:
            for r in f.rows:
                yield f, r


def audience(round_id: str) -> str:
    """What a publication's signature is for: the round's announcements (never a workflow)."""
    return f"{round_id}/pengumuman"


def published_formasi(
    stage: AnnouncementStage, config: RoundConfig, ordered: Sequence[tuple[str, list[Placed]]]
) -> list[PublishedFormasi]:
    """The announcement's formasi and rows, as they are published."""
    out = []
    for code, placed in ordered:
        f = config.formasi_by_code(code)
        rows = []
        for i, p in enumerate(placed, start=1):
            a, s = p.result, p.result.scores
            skd = stage == AnnouncementStage.SKD
            final = stage == AnnouncementStage.FINAL
            rows.append(
                PublishedRow(
                    no=i,
                    rank=p.rank,
                    applicant_id=a.applicant_id,
                    name=a.name,
                    code=p.code,
                    twk=s.twk if skd and s else None,
                    tiu=s.tiu if skd and s else None,
                    tkp=s.tkp if skd and s else None,
                    skd_total=s.total if (skd or final) and s else None,
                    skb_score=a.skb_score if final else None,
                    final_score=a.final_score if final else None,
                    from_formasi=a.formasi_code
                    if p.code == FinalCode.PASSED_OPTIMALISASI
                    else None,
                )
            )
        out.append(
            PublishedFormasi(
                code=code,
                jabatan=f.jabatan if f else "",
                unit=f.unit if f else "",
                education_level=f.education_level if f else "",
                quota=f.quota if f else 0,
                rows=rows,
            )
        )
    return out


# --- the keys a round's identities hold --------------------------------------------------------


def keys_in_force(config: RoundConfig, decisions: Iterable[Decision]) -> dict[str, str]:
    """The round's public keys now: its file's, with every change_keys the round recorded (its
    decisions record each accepted command's content)."""
    keys = dict(config.identities)
    for d in decisions:
        if not d.outcome.startswith("keys changed"):
            continue
        try:
            keys.update(ChangeKeys.model_validate(d.input).identities)
        except ValidationError:
            continue
    return keys


def publisher_problem(config: RoundConfig, identity: str) -> str | None:
    """Why `identity` may not sign the round's announcements, or None."""
    operators = config.reporters.get(ReportKind.OPERATOR.value, [])
    if identity not in operators:
        return (
            f"{identity} is not an operator of round {config.round_id} (reporters.operator lists "
            f"{', '.join(operators) or 'nobody'}): only an operator signs its announcements"
        )
    if identity not in config.identities:
        return (
            f"{identity} has no public key in round {config.round_id}'s identities: nobody could "
            "check its signature"
        )
    return None


# --- publishing -----------------------------------------------------------------------------------

_LOCK_CLASS = 0x43415350  # "CASP": one publisher at a time per round (with hashtext(round_id))


@dataclass(frozen=True)
class Published:
    """The outcome of publishing: the publication, whether it is new or a repeat, and the round's
    SKD cut multiplier and zone, which its printable file states (write_files)."""

    publication: Publication
    new: bool
    cut_multiplier: int
    timezone: str = JAKARTA


async def publish_announcement(
    api: RecruitmentApi,
    conn: asyncpg.Connection,
    round_id: str,
    stage: AnnouncementStage,
    signer: Signer,
    corrects: int | None = None,
    cipher: ColumnCipher | None = None,
) -> Published:
    """Build the stage's announcement from the read model, sign it and store it in the chain.

    Refuses (RefusedError, nothing stored) when the signer is not an operator of the round with
    the key the round holds, when the stage has no result yet or not for everyone, and when the
    stage was published already with other content and `corrects` does not name that
    publication. Publishing the same content again stores nothing and returns the publication
    that already says it."""
    config, state = await _publisher(api, round_id, signer.identity)
    keys = keys_in_force(config, state.decisions)
    if keys.get(signer.identity) != signer.public:
        raise RefusedError(
            f"the key given is not the key round {round_id} holds for {signer.identity} "
            f"(the round's: {keys.get(signer.identity)}); sign with the current key of "
            f"{signer.identity}"
        )
    formasi = await _formasi_now(conn, config, state, stage, cipher)
    async with conn.transaction():
        await _one_publisher(conn, round_id)
        head = await _chain_head(conn, round_id, stage, formasi, corrects)
        if isinstance(head, Publication):
            published = Published(head, False, config.skd.cut_multiplier, config.timezone)
        else:
            signed = signer.sign(
                _publication(config, stage, signer.identity, head, corrects, formasi),
                audience(round_id),
            )
            await _insert(conn, signed)
            published = Published(signed, True, config.skd.cut_multiplier, config.timezone)
    # On record in the round's history, with any stored before it that is not (published again:
    # the record that failed the first time is made now).
    await record_publications(api, conn, round_id, signer)
    return published


async def draft_announcement(
    api: RecruitmentApi,
    conn: asyncpg.Connection,
    round_id: str,
    stage: AnnouncementStage,
    identity: str,
    corrects: int | None = None,
    cipher: ColumnCipher | None = None,
) -> Published:
    """What publish_announcement would sign now for `identity`, unsigned and stored nowhere: for
    an operator who signs with a key kept away from this process (the gateway's announcements).
    Refused as publish_announcement refuses; the same content published already is that
    publication (`new` False), signed."""
    config, state = await _publisher(api, round_id, identity)
    formasi = await _formasi_now(conn, config, state, stage, cipher)
    # A draft stores nothing: it reads the chain's head without taking the publishers' lock,
    # and the signed draft is checked against the head again, under the lock (publish_signed).
    head = await _chain_head(conn, round_id, stage, formasi, corrects)
    if isinstance(head, Publication):
        return Published(head, False, config.skd.cut_multiplier, config.timezone)
    draft = _publication(config, stage, identity, head, corrects, formasi)
    return Published(draft, True, config.skd.cut_multiplier, config.timezone)


SIGNED_WITHIN = timedelta(minutes=30)  # a draft's published_at: at most this old when it is stored


class SignedDraft(BaseModel, frozen=True):
    """An operator's signature of a draft (draft_announcement), with the draft's own fields that
    say which draft it signed: the body itself is not sent back, because whoever stores it
    builds it again and stores it only if it hashes to `body_sha256`, the hash signed."""

    reported_by: str = Field(min_length=1, max_length=100)
    seq: int = Field(ge=1)
    prev_sha256: Sha256
    published_at: AwareDatetime
    corrects: int | None = Field(default=None, ge=1)
    body_sha256: Sha256
    signature: str = Field(min_length=1, max_length=2000)
    # The operator's signature of the publication's record in the round (`anchor_of`): with it
    # the gateway records the publication in the round's history; without it (a client from
    # before), the publication is stored unrecorded, and `audit.py verify-announcements` says so.
    anchor_signature: str = Field(default="", max_length=2000)
    # Until when the record's signature may be acted on (its `valid_until`, which the signature
    # covers): a record signed by a client from before it carries none, and a round with keys
    # refuses it as it refuses every operator command without one.
    anchor_valid_until: AwareDatetime | None = None

    @classmethod
    def of(cls, signed: Publication, anchor: RecordPublication | None = None) -> SignedDraft:
        """What an operator sends back for a draft it signed (and the record it signed)."""
        return cls(
            reported_by=signed.reported_by,
            seq=signed.seq,
            prev_sha256=signed.prev_sha256,
            published_at=signed.published_at,
            corrects=signed.corrects,
            body_sha256=signed.body_sha256(),
            signature=signed.signature,
            anchor_signature=anchor.signature if anchor is not None else "",
            anchor_valid_until=anchor.valid_until if anchor is not None else None,
        )


async def publish_signed(
    api: RecruitmentApi,
    conn: asyncpg.Connection,
    round_id: str,
    stage: AnnouncementStage,
    signed: SignedDraft,
    cipher: ColumnCipher | None = None,
    now: datetime | None = None,
) -> Published:
    """Store the publication an operator signed elsewhere from a draft (draft_announcement). It
    is built again here, and stored only if it is, to the byte, what the operator signed and what
    would be published now: the rows the read model gives now, the round's rules, the next link
    of the chain, drafted within SIGNED_WITHIN, and signed by an operator of the round with the
    key the round holds. Otherwise RefusedError, nothing stored, saying what to do (most often:
    draft again). The same signature sent again is a repeat (`new` False)."""
    config, state = await _publisher(api, round_id, signed.reported_by)
    now = now or datetime.now(UTC)
    if not now - SIGNED_WITHIN <= signed.published_at <= now + timedelta(minutes=1):
        raise RefusedError(
            f"the draft of publication {signed.seq} of round {round_id} was made at "
            f"{signed.published_at.isoformat()}, not within {SIGNED_WITHIN} of now: draft it "
            "again and sign the new draft"
        )
    formasi = await _formasi_now(conn, config, state, stage, cipher)
    async with conn.transaction():
        await _one_publisher(conn, round_id)
        head = await _chain_head(conn, round_id, stage, formasi, signed.corrects)
        if isinstance(head, Publication):
            if (head.body_sha256(), head.signature) == (signed.body_sha256, signed.signature):
                # This very publication, stored before (the answer to its first sending lost):
                # its record too, if that was what failed.
                if signed.anchor_signature and head.seq not in recorded_publications(
                    state.decisions
                ):
                    await _record(api, round_id, _signed_record(head, signed))
                return Published(head, False, config.skd.cut_multiplier, config.timezone)
            raise RefusedError(
                f"publication {head.seq} of round {round_id} already announces these "
                f"{stage.value} results: nothing new to publish"
            )
        if head != (signed.seq, signed.prev_sha256):
            raise RefusedError(
                f"the draft is of publication {signed.seq} of round {round_id}, but publication "
                f"{head[0] - 1} came before it was stored: draft it again and sign the new draft"
            )
        publication = _publication(
            config, stage, signed.reported_by, head, signed.corrects, formasi
        ).model_copy(update={"published_at": signed.published_at, "signature": signed.signature})
        if publication.body_sha256() != signed.body_sha256:
            raise RefusedError(
                f"publication {signed.seq} of round {round_id} would not be what was signed: the "
                f"{stage.value} results changed since the draft (or the draft was changed before "
                "it was signed); draft it again and sign the new draft"
            )
        problem = verify(publication, keys_in_force(config, state.decisions), audience(round_id))
        if problem:
            raise RefusedError(f"publication {signed.seq} of round {round_id}: {problem}")
        await _insert(conn, publication)
    if signed.anchor_signature:
        # Stored and signed; a record that does not reach the round is made when the same
        # signature is sent again, or by the next publication sent directly (starter.py announce).
        await _record(api, round_id, _signed_record(publication, signed))
    return Published(publication, True, config.skd.cut_multiplier, config.timezone)


def anchor_of(p: Publication) -> RecordPublication:
    """The record of publication `p` in its round's history, unsigned: the same message for the
    operator who signs it and for the gateway that sends it."""
    sha = p.body_sha256()
    return RecordPublication(
        report_id=f"publication-{p.seq}-{sha[:16]}",
        reported_by=p.reported_by,
        seq=p.seq,
        stage=p.stage.value,
        body_sha256=sha,
        prev_sha256=p.prev_sha256,
    )


async def record_publications(
    api: RecruitmentApi, conn: asyncpg.Connection, round_id: str, signer: Signer
) -> int:
    """Put every stored publication of the round that its history does not hold yet on record
    there, in order, signed by `signer` (an operator): how many. One the round refuses, or that
    does not reach it, is logged and left to the next publication."""
    recorded = recorded_publications((await api.round_state(round_id)).decisions)
    missing = [s.seq for s in await list_publications(conn, round_id) if s.seq not in recorded]
    if missing and await _round_ended(api, round_id):
        # Its history takes nothing more (the demo publishes once its compressed round is over;
        # a real round runs until Latsar closes, a year after its announcements).
        log.info("publications not recorded: the round has ended", round_id=round_id, seq=missing)
        return 0
    made = 0
    for seq in missing:
        p = await load_publication(conn, round_id, seq)
        if p is None:
            continue
        # Through a keyring: a command to the round says until when it holds (valid_until).
        record = Keyring([signer]).sign(
            anchor_of(p).model_copy(update={"reported_by": signer.identity}),
            round_workflow_id(round_id),
        )
        if await _record(api, round_id, record):
            made += 1
    return made


async def _round_ended(api: RecruitmentApi, round_id: str) -> bool:
    """Whether the round's workflow has ended (its latest run is not running)."""
    try:
        described = await api.client.get_workflow_handle(round_workflow_id(round_id)).describe()
    except RPCError:
        return False  # not known: try, and log what the round says
    return described.status != WorkflowExecutionStatus.RUNNING


async def _record(api: RecruitmentApi, round_id: str, record: RecordPublication) -> bool:
    """Send a publication's record to its round; False (logged) when it is not taken: the
    publication stays stored, and `verify-announcements --round-id` notes it as not on record."""
    try:
        await api.command(round_id, record)
        return True
    except (RefusedError, RPCError) as exc:
        log.warning(
            "publication not recorded in the round",
            round_id=round_id,
            seq=record.seq,
            problem=str(exc),
        )
        return False


def check_records(
    result: ChainCheck, recorded: Mapping[int, tuple[str, str, datetime]], stored: bool
) -> None:
    """Hold the chain checked (`result`: every publication the server stores when `stored`, else
    the documents given) to what the round's history has on record: a recorded publication
    missing or different is a problem (removed from the database's end or left out of the
    files, or replaced); one checked but not on record, a note."""
    checked = {
        c.publication.seq: c.computed_sha256 for c in result.documents if c.publication is not None
    }
    missing = "is not stored: removed" if stored else "is not among the documents checked"
    for seq, (sha, by, at) in sorted(recorded.items()):
        if seq not in checked:
            result.problems.append(
                f"publication {seq} ({sha[:16]}…), on record in the round's history since "
                f"{at.isoformat()} (by {by}), {missing}"
            )
        elif checked[seq] != sha:
            result.problems.append(
                f"publication {seq} hashes to {checked[seq][:16]}…, but the round's history has "
                f"{sha[:16]}… on record for it: replaced"
            )
    unrecorded = sorted(set(checked) - set(recorded))
    if unrecorded:
        result.notes.append(
            f"publication(s) {', '.join(map(str, unrecorded))} not on record in the round's "
            "history (published before records, or the record failed): their tail is not checked"
        )


def _signed_record(p: Publication, signed: SignedDraft) -> RecordPublication:
    """The record of `p` with the signature (and its validity) the operator sent beside the draft."""
    return anchor_of(p).model_copy(
        update={"signature": signed.anchor_signature, "valid_until": signed.anchor_valid_until}
    )


async def _publisher(
    api: RecruitmentApi, round_id: str, identity: str
) -> tuple[RoundConfig, RoundState]:
    """The round's rules and its state now, once `identity` is known to be a publisher of the
    round; RefusedError otherwise."""
    config = await api.round_config(round_id)
    problem = publisher_problem(config, identity)
    if problem:
        raise RefusedError(problem)
    return config, await api.round_state(round_id)


async def _formasi_now(
    conn: asyncpg.Connection,
    config: RoundConfig,
    state: RoundState,
    stage: AnnouncementStage,
    cipher: ColumnCipher | None,
) -> list[PublishedFormasi]:
    """The stage's formasi and rows as the read model and the round's results give them now;
    AnnouncementNotReady while the stage has no result for everyone."""
    round_id = config.round_id
    results = await read_results(conn, round_id)
    problem = readiness_problem(stage, round_id, results)
    if problem:
        raise AnnouncementNotReady(problem)
    # Results kept as pages (patch paged-ranking) are read from the page store with the payload keys.
    standings = await full_results(page_store(conn, cipher), state.formasi_results)
    return published_formasi(stage, config, sections(stage, config, results, standings))


async def _one_publisher(conn: asyncpg.Connection, round_id: str) -> None:
    """Within a transaction: one publisher of the round at a time, until it commits."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, round_id)


async def _chain_head(
    conn: asyncpg.Connection,
    round_id: str,
    stage: AnnouncementStage,
    formasi: list[PublishedFormasi],
    corrects: int | None,
) -> Publication | tuple[int, str]:
    """The stage's publication that already says `formasi` (signed), or the next link's (seq,
    prev_sha256). RefusedError when the stage was published with other content and `corrects`
    does not name it, or names nothing. A publisher calls it under _one_publisher."""
    last = await conn.fetchrow(
        "SELECT seq, body_sha256 FROM publications WHERE round_id = $1 ORDER BY seq DESC LIMIT 1",
        round_id,
    )
    latest = await conn.fetchrow(
        "SELECT seq, body, signature FROM publications WHERE round_id = $1 AND stage = $2 "
        "ORDER BY seq DESC LIMIT 1",
        round_id,
        stage.value,
    )
    if latest is not None:
        before = Publication.model_validate_json(latest["body"])
        if [f.model_dump() for f in before.formasi] == [f.model_dump() for f in formasi]:
            return before.model_copy(update={"signature": latest["signature"]})
        if corrects != latest["seq"]:
            raise RefusedError(
                f"the {stage.value} announcement of round {round_id} was published as "
                f"number {latest['seq']} and the results changed since: publish a correction "
                f"of it (--corrects {latest['seq']})"
            )
    elif corrects is not None:
        raise RefusedError(
            f"corrects={corrects}: round {round_id} has no {stage.value} announcement to correct"
        )
    return (last["seq"] + 1, last["body_sha256"]) if last else (1, ZERO_SHA256)


def _publication(
    config: RoundConfig,
    stage: AnnouncementStage,
    identity: str,
    link: tuple[int, str],
    corrects: int | None,
    formasi: list[PublishedFormasi],
) -> Publication:
    """The unsigned publication of `formasi` as the chain's next link, `link` (seq, prev)."""
    return Publication(
        format=FORMAT,
        round_id=config.round_id,
        seq=link[0],
        stage=stage,
        instansi=config.instansi,
        rules_digest=config.digest(),
        published_at=datetime.now(UTC),
        reported_by=identity,
        prev_sha256=link[1],
        corrects=corrects,
        formasi=formasi,
    )


async def _insert(conn: asyncpg.Connection, p: Publication) -> None:
    await conn.execute(
        """INSERT INTO publications (round_id, seq, stage, instansi, body, body_sha256,
               prev_sha256, signature, signed_by, published_at, corrects, row_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        p.round_id,
        p.seq,
        p.stage.value,
        p.instansi,
        p.body_text(),
        p.body_sha256(),
        p.prev_sha256,
        p.signature,
        p.reported_by,
        p.published_at,
        p.corrects,
        sum(len(f.rows) for f in p.formasi),
    )
    rows = [
        {"applicant_id": r.applicant_id, "formasi_code": f.code, "row": r.model_dump(mode="json")}
        for f, r in p.rows()
    ]
    await conn.execute(
        """INSERT INTO publication_rows (round_id, seq, applicant_id, formasi_code, row)
           SELECT $1, $2, x.applicant_id, x.formasi_code, x.row
           FROM jsonb_to_recordset($3::jsonb) AS x(applicant_id text, formasi_code text, row jsonb)""",
        p.round_id,
        p.seq,
        json.dumps(rows),
    )


# --- reading what was published -------------------------------------------------------------------


@dataclass(frozen=True)
class PublicationSummary:
    """A publication without its rows: what a list of publications shows."""

    round_id: str
    seq: int
    stage: AnnouncementStage
    instansi: str
    published_at: datetime
    signed_by: str
    corrects: int | None
    body_sha256: str
    row_count: int

    @property
    def title(self) -> str:
        """The announcement's Indonesian title."""
        return STAGE_TITLES[self.stage]


_SUMMARY = (
    "round_id, seq, stage, instansi, published_at, signed_by, corrects, body_sha256, row_count"
)


def _summary(r: asyncpg.Record) -> PublicationSummary:
    return PublicationSummary(**{**dict(r), "stage": AnnouncementStage(r["stage"])})


async def list_publications(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str | None = None
) -> list[PublicationSummary]:
    """Every publication (of one round, or of all), by round and number."""
    if round_id is None:
        rows = await db.fetch(f"SELECT {_SUMMARY} FROM publications ORDER BY round_id, seq")
    else:
        rows = await db.fetch(
            f"SELECT {_SUMMARY} FROM publications WHERE round_id = $1 ORDER BY seq", round_id
        )
    return [_summary(r) for r in rows]


async def load_publication(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str, seq: int
) -> Publication | None:
    """One publication with its signature, or None."""
    row = await db.fetchrow(
        "SELECT body, signature FROM publications WHERE round_id = $1 AND seq = $2", round_id, seq
    )
    if row is None:
        return None
    return parse_publication(row["body"], row["signature"])


def parse_publication(body: str, signature: str) -> Publication:
    """A publication from its stored body and signature (the costly part of reading one: a
    second or more for a body of 100,000 rows)."""
    return Publication.model_validate_json(body).model_copy(update={"signature": signature})


@dataclass(frozen=True)
class StoredHead:
    """What names a stored publication's content, without its body: the body's hash (the
    column, as stored) and its signature."""

    body_sha256: str
    signature: str


async def publication_head(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str, seq: int
) -> StoredHead | None:
    """The stored publication's hash and signature, or None: a read of one short row."""
    row = await db.fetchrow(
        "SELECT body_sha256, signature FROM publications WHERE round_id = $1 AND seq = $2",
        round_id,
        seq,
    )
    return StoredHead(row["body_sha256"], row["signature"]) if row is not None else None


async def stored_body(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str, seq: int, head: StoredHead
) -> str | None:
    """The stored body of the publication `head` names, or None when the row no longer holds
    that content (the owner turned the append-only triggers off)."""
    return await db.fetchval(
        "SELECT body FROM publications WHERE round_id = $1 AND seq = $2 AND body_sha256 = $3 "
        "AND signature = $4",
        round_id,
        seq,
        head.body_sha256,
        head.signature,
    )


async def stored_documents(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str
) -> list[tuple[str, Any]]:
    """Every stored publication of the round as its document, as stored (for the auditor)."""
    rows = await db.fetch(
        "SELECT seq, body, signature, body_sha256 FROM publications WHERE round_id = $1 "
        "ORDER BY seq",
        round_id,
    )
    return [
        (
            f"database publication {r['seq']}",
            {**json.loads(r["body"]), "signature": r["signature"], "body_sha256": r["body_sha256"]},
        )
        for r in rows
    ]


async def lookup(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str, applicant_id: str
) -> list[tuple[PublicationSummary, str, PublishedRow]]:
    """The applicant's published rows across the round's publications: (publication, the
    formasi it is listed under, the row), oldest first."""
    rows = await db.fetch(
        f"""SELECT {", ".join("p." + c.strip() for c in _SUMMARY.split(","))},
                   r.formasi_code, r.row
            FROM publication_rows r JOIN publications p USING (round_id, seq)
            WHERE r.round_id = $1 AND r.applicant_id = $2 ORDER BY p.seq""",
        round_id,
        applicant_id,
    )
    out = []
    for r in rows:
        data = dict(r)
        formasi_code, row = data.pop("formasi_code"), data.pop("row")
        row = json.loads(row) if isinstance(row, str) else row
        out.append(
            (
                _summary(data),  # type: ignore[arg-type]
                formasi_code,
                PublishedRow.model_validate_json(json.dumps(row)),
            )
        )
    return out


async def lookup_row_problems(db: asyncpg.Pool | asyncpg.Connection, round_id: str) -> list[str]:
    """Where the public lookup's rows (table publication_rows, which the lookup page shows instead
    of reading every body of the round) are not what the round's stored publications say: a row
    no publication lists, a row that differs from its publication's, a listed row missing.

    The tables refuse UPDATE and DELETE, but not an INSERT of a row into a publication already
    stored, and their owner can turn the refusal off: a row the lookup shows beside a real
    publication's number and hash is proved only by that publication's signed body. One
    publication at a time (its body and its rows)."""
    problems: list[str] = []
    seqs = await db.fetch("SELECT seq FROM publications WHERE round_id = $1 ORDER BY seq", round_id)
    for seq in (r["seq"] for r in seqs):
        body = await db.fetchval(
            "SELECT body FROM publications WHERE round_id = $1 AND seq = $2", round_id, seq
        )
        try:
            publication = Publication.model_validate_json(body)
        except ValidationError:
            continue  # not a publication: the chain's check names it
        listed = {
            r.applicant_id: (f.code, r.model_dump(mode="json")) for f, r in publication.rows()
        }
        stored = await db.fetch(
            "SELECT applicant_id, formasi_code, row FROM publication_rows "
            "WHERE round_id = $1 AND seq = $2",
            round_id,
            seq,
        )
        for r in sorted(stored, key=lambda r: r["applicant_id"]):
            who = r["applicant_id"]
            row = json.loads(r["row"]) if isinstance(r["row"], str) else r["row"]
            if who not in listed:
                problems.append(
                    f"publication {seq}: the lookup shows a row for {who} (formasi "
                    f"{r['formasi_code']}, code {row.get('code')!r}) that the publication does "
                    "not list: added to publication_rows after publication"
                )
            elif listed.pop(who) != (r["formasi_code"], row):
                problems.append(
                    f"publication {seq}: the lookup's row for {who} differs from the "
                    "publication's: publication_rows was changed after publication"
                )
        for who in sorted(listed):
            problems.append(
                f"publication {seq}: the publication lists {who}, but the lookup has no row for "
                "them: removed from publication_rows"
            )
    return problems


# The codes spelled out in the SQL, not passed as a parameter: migration 019's partial index
# (applicants_late_endings) is over `terminal IN ('DIS', 'APS')`, and the planner uses it only for
# a query whose condition it can prove implies that one, which a parameter's value never does.
_LATE = "terminal IN (" + ", ".join(f"'{code}'" for code in LATE_ENDINGS) + ")"
_LATE_ENDINGS_SQL = f"SELECT applicant_id, terminal FROM applicants WHERE round_id = $1 AND {_LATE}"
# One applicant's: the latest revocation, and the journey's ending if it is a late one.
_APPLICANT_ENDING_SQL = f"""
SELECT (SELECT terminal FROM applicants WHERE round_id = $1 AND applicant_id = $2 AND {_LATE})
           AS terminal,
       v.code, v.at
FROM (SELECT 1) one
LEFT JOIN LATERAL (SELECT code, at FROM revocations WHERE round_id = $1 AND applicant_id = $2
                   ORDER BY seq DESC LIMIT 1) v ON true
"""


async def late_endings(db: asyncpg.Pool | asyncpg.Connection, round_id: str) -> dict[str, str]:
    """applicant id -> DIS or APS, for the round's applicants who ended so (the read model now);
    DIS or DIBERHENTIKAN for those revoked after their journey ended (the latest revocation).
    Reads those applicants' rows only (migration 019), not the round's."""
    rows = await db.fetch(_LATE_ENDINGS_SQL, round_id)
    endings = {r["applicant_id"]: r["terminal"] for r in rows}
    endings.update({a: code for a, (code, _) in (await revocations(db, round_id)).items()})
    return endings


async def applicant_ending(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str, applicant_id: str
) -> tuple[str | None, tuple[str, datetime] | None]:
    """One applicant's entry of `late_endings` (or None) and of `revocations` (or None), from
    that applicant's rows alone: the public lookup's read, whatever the round's size."""
    row = await db.fetchrow(_APPLICANT_ENDING_SQL, round_id, applicant_id)
    assert row is not None  # one row, always
    revoked = (row["code"], row["at"]) if row["code"] is not None else None
    return (revoked[0] if revoked else row["terminal"]), revoked


async def revocations(
    db: asyncpg.Pool | asyncpg.Connection, round_id: str
) -> dict[str, tuple[str, datetime]]:
    """applicant id -> (DIS or DIBERHENTIKAN, since when) for the round's applicants revoked
    after their journey ended (domain/aftermath.py): the latest revocation of each."""
    rows = await db.fetch(
        "SELECT DISTINCT ON (applicant_id) applicant_id, code, at FROM revocations "
        "WHERE round_id = $1 ORDER BY applicant_id, seq DESC",
        round_id,
    )
    return {r["applicant_id"]: (r["code"], r["at"]) for r in rows}


def after_publication(publication: Publication, endings: Mapping[str, str]) -> dict[str, str]:
    """applicant id -> DIS or APS for every listed applicant who ended so after publication."""
    return {
        r.applicant_id: endings[r.applicant_id]
        for _, r in publication.rows()
        if r.applicant_id in endings and r.code != endings[r.applicant_id]
    }


# --- checking publications offline -----------------------------------------------------------------


@dataclass
class DocumentCheck:
    """What was found of one publication document."""

    source: str
    publication: Publication | None = None
    computed_sha256: str = ""
    hash_ok: bool = False
    signature_ok: bool = False
    chain: str = "–"  # ok | broken | not checked (...)
    problems: list[str] = field(default_factory=list)


@dataclass
class ChainCheck:
    """Every document checked, and whether the whole holds."""

    documents: list[DocumentCheck]
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        """True when every document and every link holds."""
        return not self.problems


SignatureCheck = Callable[[Publication], str | None]


def signature_check(
    config: RoundConfig, verify_key: Callable[[Publication], str | None] | None = None
) -> SignatureCheck:
    """Why a publication's signature does not hold for `config`'s round, or None: its signer
    must be an operator of the round and the signature must verify (`verify_key`; by default
    under the round file's identities)."""

    def check(p: Publication) -> str | None:
        operators = config.reporters.get(ReportKind.OPERATOR.value, [])
        if p.reported_by not in operators:
            return f"signed by {p.reported_by}, who is not an operator of round {config.round_id}"
        if verify_key is not None:
            return verify_key(p)
        return verify(p, config.identities, audience(p.round_id))

    return check


def _parse(source: str, doc: Any, round_id: str, signature: SignatureCheck) -> DocumentCheck:
    check = DocumentCheck(source)
    if not isinstance(doc, dict):
        check.problems.append(f"{source}: not a publication document (a JSON object)")
        return check
    body = {k: v for k, v in doc.items() if k not in ("signature", "body_sha256")}
    try:
        p = Publication.model_validate_json(
            json.dumps({**body, "signature": doc.get("signature", "")})
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(document)"
        check.problems.append(f"{source}: not a publication document: {where}: {first['msg']}")
        return check
    check.publication = p
    text = canonical_json(body)
    check.computed_sha256 = hashlib.sha256(text.encode()).hexdigest()
    if text != p.body_text():
        check.problems.append(
            f"{source}: publication {p.seq} is not in the form it was published in"
        )
    declared = doc.get("body_sha256")
    check.hash_ok = declared == check.computed_sha256
    if not check.hash_ok:
        check.problems.append(
            f"{source}: publication {p.seq}'s content hashes to {check.computed_sha256[:16]}…, "
            f"not to its body_sha256 {str(declared)[:16]}…: it was changed after publication"
        )
    if p.round_id != round_id:
        check.problems.append(f"{source}: publication of round {p.round_id}, not of {round_id}")
        return check
    problem = signature(p)
    check.signature_ok = problem is None
    if problem:
        check.problems.append(f"{source}: publication {p.seq}: signature: {problem}")
    return check


def check_publications(
    documents: Sequence[tuple[str, Any]],
    round_id: str,
    signature: SignatureCheck,
    complete: bool = False,
) -> ChainCheck:
    """Check every document (its form, hash and signature) and the chain they make: numbers
    from 1, each `prev_sha256` the hash of the publication before, corrections of the same
    stage. With `complete`, a missing number is a problem (the server's whole chain); otherwise
    the link before a missing number is reported as not checked."""
    checks = [_parse(source, doc, round_id, signature) for source, doc in documents]
    problems = [p for c in checks for p in c.problems]
    notes: list[str] = []
    by_seq: dict[int, DocumentCheck] = {}
    for c in checks:
        if c.publication is None or c.publication.round_id != round_id:
            continue
        seq = c.publication.seq
        other = by_seq.get(seq)
        if other is not None and other.computed_sha256 != c.computed_sha256:
            problems.append(
                f"{other.source} and {c.source} are two different publications numbered {seq}"
            )
            c.chain = other.chain = "broken"
            continue
        by_seq.setdefault(seq, c)
    for seq in sorted(by_seq):
        c = by_seq[seq]
        p = c.publication
        assert p is not None
        if c.chain == "broken":
            continue
        before = by_seq.get(seq - 1)
        if seq == 1:
            linked = p.prev_sha256 == ZERO_SHA256
            expected = ZERO_SHA256
        elif before is not None:
            linked = p.prev_sha256 == before.computed_sha256
            expected = before.computed_sha256
        else:
            message = f"publication {seq}: publication {seq - 1} is missing"
            if complete:
                problems.append(f"{c.source}: {message}: the chain is broken")
                c.chain = "broken"
            else:
                notes.append(f"{message}: the link before {seq} was not checked")
                c.chain = f"not checked (no {seq - 1})"
            continue
        if not linked:
            problems.append(
                f"{c.source}: publication {seq}'s prev_sha256 {p.prev_sha256[:16]}… is not the "
                f"hash of publication {seq - 1} ({expected[:16]}…): the chain is broken"
            )
            c.chain = "broken"
            continue
        if (
            before is not None
            and before.publication
            and p.published_at < before.publication.published_at
        ):
            problems.append(f"{c.source}: publication {seq} is dated before publication {seq - 1}")
            c.chain = "broken"
            continue
        corrected = by_seq.get(p.corrects) if p.corrects else None
        if corrected and corrected.publication and corrected.publication.stage != p.stage:
            problems.append(
                f"{c.source}: publication {seq} ({p.stage}) corrects publication {p.corrects}, "
                f"which is of another stage ({corrected.publication.stage})"
            )
            c.chain = "broken"
            continue
        c.chain = "ok"
    return ChainCheck(checks, problems, notes)


# --- the files an operator keeps ------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def publication_csv(p: Publication, later: Mapping[str, str] | None = None) -> str:
    """The publication as CSV: one line per row with its formasi, Indonesian headers, and the
    DIS/APS of applicants who ended so after publication (Keterangan)."""
    later = later or {}
    columns = COLUMNS[p.stage]
    header = ["Kode Formasi", "Jabatan", "Unit Kerja", *(h for _, h in columns), "Keterangan"]
    rows = (
        [
            f.code,
            f.jabatan,
            f.unit,
            *(_cell(getattr(r, key)) for key, _ in columns),
            f"{later[r.applicant_id]} setelah pengumuman" if r.applicant_id in later else "",
        ]
        for f, r in p.rows()
    )
    return csv_text(header, rows)


def publication_html(p: Publication, cut_multiplier: int = 3, zone: str = JAKARTA) -> str:
    """The publication as one printable HTML file (no script, no outside resources), its time in
    the round's zone `zone`."""
    e = html.escape
    columns = COLUMNS[p.stage]
    parts = [
        '<!doctype html>\n<html lang="id"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(STAGE_TITLES[p.stage])} — {e(p.instansi)}</title>"
        "<style>body{font-family:sans-serif;margin:1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #444;padding:2px 6px;text-align:left}td.num{text-align:right}"
        ".table-wrap{overflow-x:auto}@media print{th{background:#ddd}}</style></head><body>",
        f"<h1>{e(STAGE_TITLES[p.stage])}</h1>",
        f"<p><strong>{e(p.instansi)}</strong><br>Seleksi {e(p.round_id)}, pengumuman nomor "
        f"{p.seq}, diumumkan {e(waktu(p.published_at, zone))}, ditandatangani oleh {e(p.reported_by)}.</p>",
    ]
    if p.corrects:
        parts.append(f"<p>Pengumuman ini mengoreksi pengumuman nomor {p.corrects}.</p>")
    parts.append("<h2>Keterangan kode</h2><dl>")
    parts += [f"<dt>{e(c)}</dt><dd>{e(t)}</dd>" for c, t in legend(p.stage, cut_multiplier)]
    parts.append("</dl>")
    for f in p.formasi:
        parts.append(
            f"<h2>Formasi {e(f.code)}: {e(f.jabatan)}</h2><p>{e(f.unit)}, pendidikan "
            f"{e(f.education_level)}, kebutuhan {f.quota}</p>"
        )
        if not f.rows:
            parts.append("<p>Tidak ada peserta.</p>")
            continue
        head = "".join(f"<th>{e(h)}</th>" for _, h in columns)
        body = "\n".join(
            "<tr>"
            + "".join(
                f'<td class="num">{e(_cell(getattr(r, k)))}</td>'
                if k in NUMERIC_COLUMNS
                else f"<td>{e(_cell(getattr(r, k)))}</td>"
                for k, _ in columns
            )
            + "</tr>"
            for r in f.rows
        )
        parts.append(
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>\n{body}\n'
            "</tbody></table></div>"
        )
    parts.append(
        f"<p>Sidik SHA-256 isi pengumuman: <code>{p.body_sha256()}</code>. Periksa tanda tangan "
        f"dan rantainya dengan <code>python audit.py verify-announcements "
        f"{e(p.round_id)}-{p.seq}.json --round ROUND_TOML</code>.</p></body></html>\n"
    )
    return "\n".join(parts)


def write_files(
    p: Publication, cut_multiplier: int, out_dir: Path, zone: str = JAKARTA
) -> tuple[Path, Path, Path]:
    """The publication as CSV, printable HTML and its signed JSON document, in `out_dir`:
    `<round>-<stage>.csv|html` (the stage's latest) and `<round>-<seq>.json`.

    Written with the umask's mode, not 0600 (runtime/files.py): an announcement is published for
    the public by nature, and holds only its public rows (registration number, name, codes, the
    scores the rules publish), never a NIK."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named whole, not by with_suffix: a round id may hold a dot, which a suffix would start at.
    base = f"{p.round_id}-{p.stage.value}"
    csv_path, html_path = out_dir / f"{base}.csv", out_dir / f"{base}.html"
    json_path = out_dir / f"{p.round_id}-{p.seq}.json"
    _replace(csv_path, publication_csv(p))
    _replace(html_path, publication_html(p, cut_multiplier, zone))
    _replace(json_path, document_text(p))
    return csv_path, html_path, json_path


def _replace(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a process stopped mid-write leaves the file it replaces
    (the stage's previous announcement), never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def from_document(doc: Mapping[str, Any]) -> Publication:
    """A publication from its document (a draft's signature is empty), as JSON gives it back;
    its declared `body_sha256`, when there is one, must be its body's."""
    body = {k: v for k, v in doc.items() if k != "body_sha256"}
    publication = Publication.model_validate_json(json.dumps(body))
    declared = doc.get("body_sha256")
    if declared is not None and declared != publication.body_sha256():
        raise ValueError(
            f"publication {publication.seq}: its content does not hash to its body_sha256"
        )
    return publication


def document_text(p: Publication) -> str:
    """The signed document as a file holds it (any JSON layout verifies; this one is readable)."""
    return json.dumps(p.document(), ensure_ascii=False, sort_keys=True, indent=1) + "\n"
