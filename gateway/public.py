"""The public pages: published announcements, their signed documents, and a lookup by
registration number. No login and no script; every page says how to check it offline."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from client.publication import (
    PublicationSummary,
    applicant_ending,
    late_endings,
    list_publications,
    lookup,
    publication_head,
    revocations,
    stored_body,
)
from domain.config import RoundConfig
from gateway.deps import Gateway, gateway
from gateway.headers import PAGE_CACHE
from gateway.portal import portal
from gateway.problems import without_niks
from gateway.public_answers import MAKER, PAGE_CONTEXT, RENDERING, AnswerOrder, in_zone
from runtime.logs import get_logger

log = get_logger("gateway.public")

router = APIRouter(include_in_schema=False)

_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # domain.config.Code
_DOCUMENT = re.compile(r"^([1-9][0-9]{0,8})(\.json|\.csv)?$")
# A registration number (client.api.applicant_id_for): 16 characters of base32.
_REGISTRATION_NO = re.compile(r"^[A-Z2-7]{16}$")


def _page(
    gw: Gateway,
    request: Request,
    template: str,
    context: dict,
    status: int = 200,
    round_config: RoundConfig | None = None,
) -> HTMLResponse:
    """A public page; one about a round (`round_config`) reads its times in the round's zone."""
    zoned = in_zone(round_config.timezone) if round_config is not None else {}
    return gw.templates.TemplateResponse(
        request,
        f"public/{template}",
        {**PAGE_CONTEXT, **zoned, **context},
        status_code=status,
    )


def _message(gw: Gateway, request: Request, status: int, title: str, text: str) -> HTMLResponse:
    return _page(gw, request, "message.html", {"title": title, "text": text}, status)


def _no_round(gw: Gateway, request: Request, round_id: str) -> HTMLResponse:
    return _message(
        gw,
        request,
        404,
        "Seleksi tidak ditemukan",
        f"Tidak ada seleksi {round_id!r} dengan pengumuman di sini.",
    )


@router.get("/pengumuman", response_class=HTMLResponse)
async def index(request: Request, gw: Gateway = Depends(gateway)) -> HTMLResponse:
    """Every round with its publications, the latest round first."""
    rounds: dict[str, list[PublicationSummary]] = {}
    for p in await list_publications(gw.pool):
        rounds.setdefault(p.round_id, []).append(p)
    ordered = sorted(rounds.items(), key=lambda kv: kv[1][-1].published_at, reverse=True)
    return _page(gw, request, "index.html", {"rounds": ordered})


@router.get("/pengumuman/{round_id}", response_class=HTMLResponse)
async def round_page(
    round_id: str, request: Request, gw: Gateway = Depends(gateway)
) -> HTMLResponse:
    """A round's publications, newest first, and the lookup form."""
    if not _ROUND_ID.match(round_id):
        return _no_round(gw, request, round_id)
    publications = await list_publications(gw.pool, round_id)
    if not publications:  # the engine is not asked about a round with nothing published here
        return _no_round(gw, request, round_id)
    config = await gw.rounds.config_if_known(round_id)
    instansi = config.instansi if config else publications[-1].instansi
    corrected_by = {p.corrects: p.seq for p in publications if p.corrects}
    return _page(
        gw,
        request,
        "round.html",
        {
            "round_id": round_id,
            "instansi": instansi,
            "publications": list(reversed(publications)),
            "corrected_by": corrected_by,
        },
        round_config=config,
    )


@router.get("/pengumuman/{round_id}/cari", response_class=HTMLResponse)
async def lookup_page(
    round_id: str,
    request: Request,
    nomor: str | None = None,
    gw: Gateway = Depends(gateway),
) -> HTMLResponse:
    """One applicant's published results across the round's publications, by registration
    number: the public result only. A lookup spends one of the client address's allowance."""
    if not _ROUND_ID.match(round_id):
        return _no_round(gw, request, round_id)
    if nomor and nomor.strip() and (held := _held_back(gw, request)) is not None:
        return held
    publications = await list_publications(gw.pool, round_id)
    if not publications:
        return _no_round(gw, request, round_id)
    config = await gw.rounds.config_if_known(round_id)
    context: dict[str, object] = {
        "round_id": round_id,
        "instansi": publications[-1].instansi,
        "nomor": nomor or "",
        "found": None,
        "problem": None,
        "invalid": False,
    }
    if not nomor or not nomor.strip():
        return _page(gw, request, "lookup.html", context, round_config=config)
    wanted = nomor.strip().upper()
    if not _REGISTRATION_NO.match(wanted):
        # A NIK typed here (the login form takes one) is not shown back whole: masked in the text
        # and in the field it refills. The field's pattern keeps a browser from sending one.
        shown = without_niks(nomor if len(nomor) <= 40 else nomor[:37] + "...")
        context["nomor"] = shown
        context["invalid"] = True
        context["problem"] = (
            f"Nomor peserta {shown!r} tidak valid: nomor peserta terdiri atas 16 karakter, "
            "huruf A–Z dan angka 2–7."
        )
        return _page(gw, request, "lookup.html", context, 422, config)
    context["nomor"] = wanted
    found = await lookup(gw.pool, round_id, wanted)
    if not found:
        context["problem"] = (
            f"Nomor peserta {wanted} tidak ditemukan dalam pengumuman seleksi {round_id}."
        )
        return _page(gw, request, "lookup.html", context, 404, config)
    context["found"] = found
    context["ended"], context["revoked"] = await applicant_ending(gw.pool, round_id, wanted)
    return _page(gw, request, "lookup.html", context, round_config=config)


def _held_back(gw: Gateway, request: Request) -> HTMLResponse | None:
    """429 with Retry-After when the client's address (counted as the portal counts it) has had
    its CASN_PUBLIC_LOOKUP_RATE_PER_MINUTE lookups this minute; else None, and one is spent.

    A lookup is made on every request (three reads of the read model: the round's publications,
    the applicant's rows and ending; and the round's rules from the engine until they are known),
    and each number is a URL of its own, which no cache in front keeps for the next one. The
    announcements are not counted (answered from what the gateway keeps): they stay open to such
    a client, and the refusal says so."""
    p = portal(request)
    client = p.client_key(request)
    wait = gw.public_lookup_limit.retry_after(client)
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    log.warning("rate limited", what="cari", retry_after=seconds, source=p.source(client))
    response = _message(
        gw,
        request,
        429,
        "Terlalu banyak permintaan",
        "Terlalu banyak pencarian nomor peserta dari alamat Anda. Silakan coba lagi dalam "
        f"{seconds} detik. Pengumuman tetap dapat dibuka.",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@router.get("/pengumuman/{round_id}/{document}", response_model=None)
async def publication_page(
    round_id: str,
    document: str,
    request: Request,
    gw: Gateway = Depends(gateway),
) -> Response:
    """One publication: as a page (`N`), its signed document (`N.json`) or CSV (`N.csv`).

    Each answer is made once from the signed body, in the gateway's worker process
    (gateway/public_answers.py: not on the event loop), and served again from gw.publications
    while the body and the facts shown beside it (later DIS/APS, revocations, corrections: read
    here on every request) are unchanged; its ETag names both, so a conditional GET is answered
    304 without the body being read."""
    match = _DOCUMENT.match(document)
    if not _ROUND_ID.match(round_id) or not match:
        return _message(
            gw, request, 404, "Pengumuman tidak ditemukan", f"Tidak ada pengumuman {document!r}."
        )
    seq, kind = int(match.group(1)), match.group(2) or ""
    head = await publication_head(gw.pool, round_id, seq)
    if head is None:
        return _message(
            gw,
            request,
            404,
            "Pengumuman tidak ditemukan",
            f"Seleksi {round_id} tidak mempunyai pengumuman nomor {seq}.",
        )
    name = f"{round_id}-{seq}"
    endings: dict[str, str] = {}
    revoked: dict[str, tuple[str, datetime]] = {}
    corrected_by: list[int] = []
    instansi, cut, zone = None, 3, None
    if kind in ("", ".csv"):
        endings = await late_endings(gw.pool, round_id)
    if kind == "":
        config = await gw.rounds.config_if_known(round_id)
        if config is not None:
            instansi, cut, zone = config.instansi, config.skd.cut_multiplier, config.timezone
        corrected_by = [
            p.seq for p in await list_publications(gw.pool, round_id) if p.corrects == seq
        ]
        revoked = await revocations(gw.pool, round_id)
    facts = [kind, head.signature, RENDERING, endings, revoked, corrected_by, instansi, cut, zone]
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()
    headers = {
        "ETag": f'"{head.body_sha256[:32]}.{digest[:32]}"',
        "Cache-Control": DOCUMENT_CACHE if kind == ".json" else PAGE_CACHE,
    }
    if _not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)

    async def make() -> bytes:
        body = await stored_body(gw.pool, round_id, seq, head)
        if body is None:
            raise PublicationChanged(f"publication {seq} of round {round_id} changed while read")
        order = AnswerOrder(
            kind, name, body, head.signature, endings, revoked, corrected_by, instansi, cut, zone
        )
        return await MAKER.make(order)

    try:
        content = await gw.publications.get((round_id, seq, kind, head.body_sha256, digest), make)
    except PublicationChanged as exc:
        log.warning("publication changed while read", round_id=round_id, seq=seq, error=str(exc))
        return _message(
            gw, request, 503, "Pengumuman sedang berubah", "Silakan coba lagi sesaat lagi."
        )
    if kind == "":
        return Response(content, media_type="text/html; charset=utf-8", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{name}{kind}"'
    media = "application/json" if kind == ".json" else "text/csv; charset=utf-8"
    return Response(content, media_type=media, headers=headers)


class PublicationChanged(RuntimeError):
    """The stored publication is no longer the one its head named a moment ago."""


# How long a cache in front (a CDN, a browser) serves an answer before it asks again (a
# conditional GET, answered 304 while nothing changed): the page and the CSV show later DIS/APS
# and revocations beside the signed rows, so a minute (gateway/headers.py, as every /pengumuman
# answer); the signed document never changes once stored.
DOCUMENT_CACHE = "public, max-age=3600"


def _not_modified(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (RFC 9110: weak comparison)."""
    asked = request.headers.get("if-none-match")
    if not asked:
        return False
    tags = {t.strip().removeprefix("W/") for t in asked.split(",")}
    return "*" in tags or etag in tags
