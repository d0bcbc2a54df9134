"""The public pages: published announcements, their signed documents, and a lookup by
registration number. No login and no script; every page says how to check it offline."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from client.announcements import (
    COLUMNS,
    NUMERIC_COLUMNS,
    STAGE_TITLES,
    AnnouncementStage,
    legend,
    wib,
)
from client.publication import (
    PublicationSummary,
    after_publication,
    applicant_ending,
    document_text,
    late_endings,
    list_publications,
    load_publication,
    lookup,
    publication_csv,
    revocations,
)
from client.status import angka
from domain.config import RoundConfig
from gateway.deps import Gateway, gateway
from runtime.logs import get_logger

log = get_logger("gateway.public")

router = APIRouter(include_in_schema=False)

_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # domain.config.Code
_DOCUMENT = re.compile(r"^([1-9][0-9]{0,8})(\.json|\.csv)?$")
# A registration number (client.api.applicant_id_for): 16 characters of base32.
_REGISTRATION_NO = re.compile(r"^[A-Z2-7]{16}$")


def _page(
    gw: Gateway, request: Request, template: str, context: dict, status: int = 200
) -> HTMLResponse:
    return gw.templates.TemplateResponse(
        request,
        f"public/{template}",
        {
            "account": None,
            "wib": wib,
            "angka": angka,
            "titles": STAGE_TITLES,
            "columns": COLUMNS,
            "numeric": NUMERIC_COLUMNS,
            **context,
        },
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


async def _config(gw: Gateway, round_id: str) -> RoundConfig | None:
    """The round's rules, or None when the round cannot be read (the publications name their
    instansi too)."""
    try:
        return await gw.rounds.config(round_id)
    except Exception as exc:  # noqa: BLE001 - no such round, or the engine is unreachable
        log.info("round config unavailable", round_id=round_id, error=type(exc).__name__)
        return None


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
    config = await _config(gw, round_id)
    if not publications and config is None:
        return _no_round(gw, request, round_id)
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
    )


@router.get("/pengumuman/{round_id}/cari", response_class=HTMLResponse)
async def lookup_page(
    round_id: str,
    request: Request,
    nomor: str | None = None,
    gw: Gateway = Depends(gateway),
) -> HTMLResponse:
    """One applicant's published results across the round's publications, by registration
    number: the public result only."""
    if not _ROUND_ID.match(round_id):
        return _no_round(gw, request, round_id)
    publications = await list_publications(gw.pool, round_id)
    if not publications:
        return _no_round(gw, request, round_id)
    context: dict[str, object] = {
        "round_id": round_id,
        "instansi": publications[-1].instansi,
        "nomor": nomor or "",
        "found": None,
        "problem": None,
        "invalid": False,
    }
    if not nomor or not nomor.strip():
        return _page(gw, request, "lookup.html", context)
    wanted = nomor.strip().upper()
    if not _REGISTRATION_NO.match(wanted):
        shown = nomor if len(nomor) <= 40 else nomor[:37] + "..."
        context["invalid"] = True
        context["problem"] = (
            f"Nomor peserta {shown!r} tidak valid: nomor peserta terdiri atas 16 karakter, "
            "huruf A–Z dan angka 2–7."
        )
        return _page(gw, request, "lookup.html", context, 422)
    context["nomor"] = wanted
    found = await lookup(gw.pool, round_id, wanted)
    if not found:
        context["problem"] = (
            f"Nomor peserta {wanted} tidak ditemukan dalam pengumuman seleksi {round_id}."
        )
        return _page(gw, request, "lookup.html", context, 404)
    context["found"] = found
    context["ended"], context["revoked"] = await applicant_ending(gw.pool, round_id, wanted)
    return _page(gw, request, "lookup.html", context)


@router.get("/pengumuman/{round_id}/{document}", response_model=None)
async def publication_page(
    round_id: str,
    document: str,
    request: Request,
    gw: Gateway = Depends(gateway),
) -> Response:
    """One publication: as a page (`N`), its signed document (`N.json`) or CSV (`N.csv`)."""
    match = _DOCUMENT.match(document)
    if not _ROUND_ID.match(round_id) or not match:
        return _message(
            gw, request, 404, "Pengumuman tidak ditemukan", f"Tidak ada pengumuman {document!r}."
        )
    seq, kind = int(match.group(1)), match.group(2)
    publication = await load_publication(gw.pool, round_id, seq)
    if publication is None:
        return _message(
            gw,
            request,
            404,
            "Pengumuman tidak ditemukan",
            f"Seleksi {round_id} tidak mempunyai pengumuman nomor {seq}.",
        )
    name = f"{round_id}-{seq}"
    if kind == ".json":
        return Response(
            document_text(publication),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
        )
    later = after_publication(publication, await late_endings(gw.pool, round_id))
    if kind == ".csv":
        return Response(
            publication_csv(publication, later),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    config = await _config(gw, round_id)
    corrected_by = [p.seq for p in await list_publications(gw.pool, round_id) if p.corrects == seq]
    return _page(
        gw,
        request,
        "publication.html",
        {
            "p": publication,
            "instansi": config.instansi if config else publication.instansi,
            "legend": legend(
                AnnouncementStage(publication.stage),
                config.skd.cut_multiplier if config else 3,
            ),
            "later": later,
            "revoked": await revocations(gw.pool, round_id),
            "corrected_by": corrected_by,
            "sha256": publication.body_sha256(),
            "name": name,
        },
    )
