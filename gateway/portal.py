"""The applicant portal: register online, log in, read one's status with the reasons for every
decision, file a sanggah, answer an optimalisasi offer, withdraw.

Server-rendered pages in Indonesian, usable on a phone without script. Everything the portal
sends to the engine is signed by the portal's identity (gw.api holds its key); the engine
decides (eligibility, windows, repeats) and the portal shows its answer. Every form carries a
token tied to the visitor (gateway/accounts.py); registration and login are rate-limited per
client address. Log lines carry the request id and the registration number at most: never a
NIK, a name or a password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from temporalio.service import RPCError

from activities.purges import purged_on
from client.api import RefusedError, UnknownError, applicant_id_for, registration_refusals
from client.status import (
    ApplicantView,
    angka,
    batas,
    catatan_waktu,
    reason_text,
    tanggal,
    waktu,
)
from client.survey import offered_stages, open_stages, record_answers, taken_stages
from domain.config import Category, RoundConfig
from domain.local_time import JAKARTA
from domain.messages import AppealFiling, OfferAnswer, Report, RoundState, Withdrawal
from domain.registration import Refusal, Registration, normalise_nik
from domain.skm import ELEMENTS as SKM_ELEMENTS
from domain.skm import STAGE_LABELS as SKM_STAGE_LABELS
from domain.skm import STAGES as SKM_STAGES
from domain.skm import SurveyStage
from gateway.accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    Accounts,
    FormTokens,
    Session,
    browser_binding,
    new_browser_id,
    report_id_for,
)
from gateway.clients import SITE_PREFIX, Network, client_address, rate_key
from gateway.deps import Gateway, gateway
from gateway.limits import RateLimiter
from gateway.password_strength import own_words, too_guessable
from runtime.logs import get_logger

log = get_logger("gateway.portal")

router = APIRouter(include_in_schema=False)

BROWSER_COOKIE = "casn_pra"  # the pre-session cookie anonymous forms' tokens are tied to
SESSION_COOKIE = "casn_sesi"
# Outside the embedded mode each cookie's name has this prefix: a browser takes a `__Host-`
# cookie only from the portal's own host, over HTTPS, with Path=/ and no Domain, so another host
# of the same domain (another service of the instansi, taken over or with a script injected)
# cannot set the visitor's pre-session cookie to one it has a form token for (and have their
# browser log in to its account) nor plant its own session. The embedded mode serves plain HTTP,
# where a browser refuses such a cookie, and keeps the plain names.
HOST_ONLY = "__Host-"


def cookie_name(gw: Gateway, name: str) -> str:
    """The name the portal's cookie `name` has on this gateway (`__Host-` outside development)."""
    return name if gw.settings.development else HOST_ONLY + name


_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # domain.config.Code
_REGISTRATION_NO = re.compile(r"^[A-Z2-7]{16}$")  # client.api.applicant_id_for

EDUCATION_LEVELS = ["SMA/SMK", "D3", "D4", "S1", "S2", "S3"]
CATEGORY_LABELS = {
    Category.UMUM: "Umum",
    Category.CUMLAUDE: "Lulusan cumlaude",
    Category.DIASPORA: "Diaspora",
    Category.DISABILITAS: "Penyandang disabilitas",
    Category.PAPUA: "Putra/putri Papua",
    Category.DAERAH_TERTINGGAL: "Putra/putri daerah tertinggal",
}
FIELD_LABELS = {
    "nik": "NIK",
    "name": "Nama lengkap",
    "birth_date": "Tanggal lahir",
    "gender": "Jenis kelamin",
    "education_level": "Jenjang pendidikan",
    "major": "Program studi",
    "gpa": "IPK",
    "formasi_code": "Formasi",
    "category": "Kategori kebutuhan",
    "citizen": "Kewarganegaraan",
    "password": "Kata sandi",
    "password_again": "Ulangi kata sandi",
    "registered_at": "Waktu pendaftaran",
}
REGISTRATION_FIELDS = (
    "nik",
    "name",
    "birth_date",
    "gender",
    "education_level",
    "major",
    "gpa",
    "formasi_code",
    "category",
    "citizen",
)
LOGIN_FAILED = "Nomor pendaftaran/NIK atau kata sandi salah."


def purged_text(round_id: str, purged: datetime, zone: str = JAKARTA) -> str:
    """What the login says once the round's personal data was purged (docs/OPERATIONS.md 8), in
    the round's zone."""
    return (
        f"Data pribadi peserta seleksi {round_id} telah dihapus pada {waktu(purged, zone)} sesuai "
        "UU 27/2022 tentang Pelindungan Data Pribadi, termasuk akun portal. Hasil seleksi tetap "
        "dapat dilihat pada pengumuman resmi."
    )


# Failed logins per account (round and registration number) and way of naming it (the number or
# the NIK), from any address: five, then one every twelve minutes, each; ten and one every six
# minutes for the account in all. Rotating addresses buys an attacker nothing against one
# account. Two allowances, not one: with one, failures by the published number made a login by
# NIK answer 429, which told a stranger holding a NIK which number (name, results) was its; and
# someone who knows a number (announcements print them) holds back only the logins that name it.
ACCOUNT_FAILURES_BURST = 5
ACCOUNT_FAILURES_PER_MINUTE = 5 / 60
_TO_STATUS = ("/status", "Kembali ke status")


# --- the portal's own state, kept on the app --------------------------------------------------


@dataclass
class Portal:
    """What the portal keeps per app: accounts and sessions, form tokens, rate limiters, and the
    balancers whose X-Forwarded-For it believes."""

    accounts: Accounts
    tokens: FormTokens
    register_limit: RateLimiter
    login_limit: RateLimiter
    # Failed logins per network: an IPv6 client by its /48, which holds 65,536 /64s that each
    # have a login allowance of their own, so a spray of one password over the published numbers
    # from rotating /64s is held back. Failures only: phones of one carrier may share a /48.
    network_failure_limit: RateLimiter
    send_limit: RateLimiter  # a logged-in applicant's forms to the engine, per account
    account_limit: RateLimiter
    trusted_proxies: tuple[Network, ...]

    def client_key(self, request: Request, ipv6_prefix: int = 64) -> str:
        """What the rate limits count the client of `request` by: its address through the
        trusted balancers (gateway/clients.py), an IPv6 address by its /64 (or `ipv6_prefix`)."""
        peer = request.client.host if request.client else None
        forwarded = request.headers.getlist("x-forwarded-for")
        return rate_key(client_address(peer, forwarded, self.trusted_proxies), ipv6_prefix)

    def source(self, client_key: str) -> str:
        """A pseudonym of `client_key` for log lines: the same client gives the same one, and
        the log holds no address."""
        return hmac.new(self.tokens.key, client_key.encode(), hashlib.sha256).hexdigest()[:12]

    @classmethod
    def of(cls, gw: Gateway) -> Portal:
        """The portal of a gateway: argon2id with the library's parameters, form tokens keyed
        from the pseudonym key (every gateway process of a deployment holds it)."""
        per_minute = gw.settings.portal_rate_per_minute
        return cls(
            accounts=Accounts(gw.pool),
            tokens=FormTokens.derived_from(gw.api.pseudonym_key),
            register_limit=RateLimiter(per_minute),
            login_limit=RateLimiter(per_minute),
            network_failure_limit=RateLimiter(per_minute),
            send_limit=RateLimiter(per_minute),
            account_limit=RateLimiter(ACCOUNT_FAILURES_PER_MINUTE, burst=ACCOUNT_FAILURES_BURST),
            trusted_proxies=gw.settings.trusted_proxy_networks,
        )


def portal(request: Request) -> Portal:
    """The app's portal, made on first use (a test may put its own on `app.state.portal`)."""
    found = getattr(request.app.state, "portal", None)
    if found is None:
        found = request.app.state.portal = Portal.of(request.app.state.gateway)
    return found


@dataclass
class Visit:
    """One request's visitor: the session when logged in, the pre-session cookie otherwise."""

    gw: Gateway
    portal: Portal
    request: Request
    session: Session | None
    browser_id: str | None
    new_browser: bool = False

    @property
    def binding(self) -> str:
        """What the visitor's form tokens are tied to."""
        if self.session is not None:
            return self.session.binding
        if self.browser_id is None:
            self.browser_id, self.new_browser = new_browser_id(), True
        return browser_binding(self.browser_id)

    def token(self, purpose: str) -> str:
        """A new form token for a form of `purpose`."""
        return self.portal.tokens.issue(self.binding, purpose)

    def nonce(self, form: Any, purpose: str) -> str | None:
        """The nonce of the form's valid token, or None (a missing or forged token, another
        visitor's, another form's, an expired one; or no cookie to tie it to)."""
        if self.session is None and self.browser_id is None:
            return None
        return self.portal.tokens.nonce(str(form.get("csrf_token", "")), self.binding, purpose)

    @property
    def client_key(self) -> str:
        """What the rate limits count the client by (Portal.client_key)."""
        return self.portal.client_key(self.request)

    @property
    def network_key(self) -> str:
        """What failed logins are counted by (Portal.network_failure_limit): the client's
        address, an IPv6 address by its /48."""
        return "masuk-jaringan:" + self.portal.client_key(self.request, SITE_PREFIX)

    @property
    def source(self) -> str:
        """A pseudonym of `client_key` for log lines (Portal.source)."""
        return self.portal.source(self.client_key)


async def visit(request: Request, gw: Gateway = Depends(gateway)) -> Visit:
    """The visitor of `request` (FastAPI dependency)."""
    p = portal(request)
    session = await p.accounts.session(request.cookies.get(cookie_name(gw, SESSION_COOKIE)))
    browser_id = request.cookies.get(cookie_name(gw, BROWSER_COOKIE))
    if browser_id is not None and not 16 <= len(browser_id) <= 64:
        browser_id = None
    return Visit(gw, p, request, session, browser_id)


# --- pages ---------------------------------------------------------------------------------------


def _cookie(response: Response, visit: Visit, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        cookie_name(visit.gw, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=not visit.gw.settings.development,
    )


def page(
    visit: Visit,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    zone: str | None = None,
) -> HTMLResponse:
    """A portal page; the header knows who is logged in, and the pre-session cookie is set
    when a form on the page needed one.

    Its times read in the zone of the round it is about (`zone`, else its `config`'s), and its
    footer names that zone; a page about no round reads in WIB and says so."""
    config = context.get("config")
    if zone is None and isinstance(config, RoundConfig):
        zone = config.timezone
    shown = zone or JAKARTA
    account = None
    if visit.session is not None:
        account = {
            "round_id": visit.session.round_id,
            "applicant_id": visit.session.applicant_id,
            "logout_token": visit.token("keluar"),
        }
    response = visit.gw.templates.TemplateResponse(
        visit.request,
        f"portal/{template}",
        {
            "account": account,
            "waktu": partial(waktu, zone=shown),
            "batas": partial(batas, zone=shown),
            "times_note": catatan_waktu(zone),
            "tanggal": tanggal,
            "angka": angka,
            "labels": FIELD_LABELS,
            **context,
        },
        status_code=status,
    )
    if visit.new_browser and visit.browser_id is not None:
        _cookie(response, visit, BROWSER_COOKIE, visit.browser_id, None)
    return response


def message(
    visit: Visit,
    status: int,
    title: str,
    text: str,
    *,
    kind: str = "errors",
    back: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    zone: str | None = None,
) -> HTMLResponse:
    """A page that says one thing: an error, a refusal, or a confirmation (its times in the
    round's `zone`, when it is about one)."""
    response = page(
        visit,
        "message.html",
        {"title": title, "text": text, "kind": kind, "back": back},
        status,
        zone,
    )
    response.headers.update(headers or {})
    return response


def forbidden(visit: Visit) -> HTMLResponse:
    """The answer to a form without a valid token: nothing was done."""
    log.warning("form refused: no valid form token", path=visit.request.url.path)
    return message(
        visit,
        403,
        "Formulir tidak sah",
        "Formulir ini tidak dapat diterima karena token keamanannya tidak ada, tidak sah atau "
        "sudah kedaluwarsa. Tidak ada yang diubah. Buka kembali halamannya (pastikan cookie "
        "diizinkan), lalu kirim ulang.",
    )


def unavailable(visit: Visit, subject: str, exc: BaseException) -> HTMLResponse:
    """The engine could not be reached or could not be used: say so, change nothing."""
    log.warning("engine unavailable", subject=subject, error=type(exc).__name__)
    return message(
        visit,
        503,
        "Layanan sedang tidak tersedia",
        "Sistem seleksi sedang tidak dapat dihubungi. Silakan coba lagi beberapa saat lagi.",
        headers={"Retry-After": "30"},
    )


def limited(
    visit: Visit, limiter: RateLimiter, what: str, key: str | None = None, **logged: str
) -> HTMLResponse | None:
    """429 when the client address (or `key`: an account) has sent too many `what` requests
    this minute; the log line names `logged` (a registration number at most, never a NIK)."""
    wait = limiter.retry_after(key or f"{what}:{visit.client_key}")
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    log.warning("rate limited", what=what, retry_after=seconds, source=visit.source, **logged)
    if key is None:
        text = "Terlalu banyak permintaan dari alamat Anda."
    elif what == "kirim":
        text = "Terlalu banyak formulir yang dikirim dari akun ini."
    elif what == "masuk-jaringan":
        text = "Terlalu banyak percobaan masuk yang gagal dari jaringan Anda."
    else:
        text = "Terlalu banyak percobaan masuk yang gagal untuk akun ini."
    return message(
        visit,
        429,
        "Terlalu banyak permintaan",
        f"{text} Silakan coba lagi dalam {seconds} detik.",
        headers={"Retry-After": str(seconds)},
    )


def to_login(round_id: str | None = None) -> RedirectResponse:
    """Send a visitor without a session to the login page."""
    return RedirectResponse(f"/masuk?round={round_id}" if round_id else "/masuk", 303)


async def _round(visit: Visit, round_id: str) -> tuple[RoundConfig, RoundState] | HTMLResponse:
    """The round's rules and state, or the page saying why there are none."""
    if not _ROUND_ID.fullmatch(round_id or ""):
        return message(
            visit,
            404,
            "Seleksi tidak ditemukan",
            "Pilih seleksi dari halaman depan.",
            back=("/", "Halaman depan"),
        )
    try:
        # Any visitor can name any id: the engine is asked only about a round it lists.
        if not await visit.gw.rounds.is_listed(round_id):
            raise UnknownError(f"no round {round_id}")
        return await visit.gw.rounds.config(round_id), await visit.gw.rounds.state(round_id)
    except UnknownError:
        return message(
            visit,
            404,
            "Seleksi tidak ditemukan",
            f"Tidak ada seleksi dengan kode {round_id}.",
            back=("/", "Halaman depan"),
        )
    except (RPCError, RefusedError) as exc:
        return unavailable(visit, f"round {round_id}", exc)


STATE_TIMEOUT = 3.0  # seconds the front page waits for one round's schedule


def _registration_open(state: RoundState, now: datetime) -> bool:
    window = state.schedule.registration
    return state.phase == "registration" and window.opens <= now < window.closes


# --- the front page -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def index(v: Visit = Depends(visit)) -> HTMLResponse:
    """The rounds open for registration, and every round one can log in to."""
    now = datetime.now(UTC)
    rounds = []
    try:
        listing = (await v.gw.rounds.listing())[:50]
    except RPCError as exc:
        return unavailable(v, "round list", exc)

    async def describe(entry) -> dict | None:
        # Rules come from the round's history (no worker needed); the schedule in force (with
        # its extensions) only for a round in registration, asked with a short deadline so
        # that one round no worker answers for cannot hold the page.
        try:
            config = await v.gw.rounds.config(entry.round_id)
            window = config.schedule.registration
            opens, closes, is_open = window.opens, window.closes, False
            if entry.running and entry.phase == "registration":
                state = await v.gw.rounds.state(entry.round_id, timeout=STATE_TIMEOUT)
                opens, closes = (
                    state.schedule.registration.opens,
                    state.schedule.registration.closes,
                )
                is_open = _registration_open(state, now)
        except (RPCError, RefusedError, TimeoutError) as exc:
            log.warning("round not listed", round_id=entry.round_id, error=type(exc).__name__)
            return None
        return {
            "round_id": entry.round_id,
            "instansi": config.instansi,
            "formasi": len(config.formasi),
            "open": is_open,
            "opens": opens,
            "closes": closes,
            "zone": config.timezone,
        }

    described = await asyncio.gather(*(describe(entry) for entry in listing))
    rounds = [r for r in described if r is not None]
    return page(
        v,
        "index.html",
        {
            "now": now,
            "open": [r for r in rounds if r["open"]],
            "others": [r for r in rounds if not r["open"]],
            # Each round's times in its own zone, each named where it is shown.
            "times_note": catatan_waktu(None, several=True),
        },
    )


# --- registration -------------------------------------------------------------------------------


def _registration_form(
    v: Visit,
    config: RoundConfig,
    state: RoundState,
    values: dict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
    notice: str = "",
) -> HTMLResponse:
    levels = list(dict.fromkeys([*EDUCATION_LEVELS, *(f.education_level for f in config.formasi)]))
    majors = sorted({m for f in config.formasi for m in f.majors})
    return page(
        v,
        "register.html",
        {
            "config": config,
            "closes": state.schedule.registration.closes,
            "values": values,
            "errors": errors,
            "error_count": sum(len(e) for e in errors.values()),
            "notice": notice,
            "levels": levels,
            "majors": majors,
            "categories": CATEGORY_LABELS,
            "csrf_token": v.token("daftar"),
            "min_password": MIN_PASSWORD,
        },
        status,
    )


def _registration_closed(
    v: Visit, config: RoundConfig, state: RoundState, status: int = 200
) -> HTMLResponse:
    """The page saying when the round takes registrations, with the way to log in."""
    window = state.schedule.registration
    return message(
        v,
        status,
        "Pendaftaran tidak dibuka",
        f"Pendaftaran {config.instansi} dibuka {waktu(window.opens, config.timezone)} sampai "
        f"{batas(window.closes, config.timezone)}.",
        kind="notice",
        back=(f"/masuk?round={config.round_id}", "Masuk ke akun"),
        zone=config.timezone,
    )


@router.get("/daftar", response_class=HTMLResponse)
async def registration_page(round: str = "", v: Visit = Depends(visit)) -> Response:
    """The registration form of a round, while its registration is open."""
    if not round:
        return RedirectResponse("/", 303)  # the front page lists the rounds open
    found = await _round(v, round)
    if isinstance(found, HTMLResponse):
        return found
    config, state = found
    if not _registration_open(state, datetime.now(UTC)):
        return _registration_closed(v, config, state)
    return _registration_form(v, config, state, {"citizen": "ya", "category": "umum"}, {})


def _form_errors(exc: ValidationError, values: dict[str, str]) -> dict[str, list[str]]:
    """pydantic's errors of a Registration in Indonesian, by field; never echoing a value."""
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "nik"
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if not values.get(field, "").strip() or kind in {"missing", "string_too_short"}:
            text = "wajib diisi"
        elif field == "nik":
            text = "NIK terdiri dari tepat 16 angka 0-9, seperti tertulis pada KTP"
        elif kind == "string_too_long":
            text = f"terlalu panjang (paling banyak {ctx.get('max_length')} karakter)"
        elif kind.startswith("date"):
            text = "bukan tanggal yang sah (tulis sebagai TTTT-BB-HH)"
        elif field == "gpa":
            text = "tulis IPK sebagai angka antara 0 dan 4, misalnya 3,25"
        elif kind == "enum":
            text = "pilih salah satu pilihan yang tersedia"
        else:
            text = "isian tidak sah"
        errors.setdefault(field, []).append(text)
    return errors


def _birth_date_digits(nik: str, birth_date: date | None) -> set[str]:
    """The birth date as it is commonly written, in digits (DDMMYYYY, YYYYMMDD, DDMMYY, YYMMDD,
    MMDDYYYY), and the NIK's own date digits (DDMMYY, a woman's day + 40): anyone who has the
    NIK reads it there."""
    found = {nik[6:12]} if len(nik) == 16 else set()
    if birth_date is not None:
        found |= {
            birth_date.strftime(f) for f in ("%d%m%Y", "%Y%m%d", "%d%m%y", "%y%m%d", "%m%d%Y")
        }
    return found


def _password_errors(
    password: str, again: str, nik: str, birth_date: date | None = None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if len(password) < MIN_PASSWORD:
        errors.setdefault("password", []).append(f"paling sedikit {MIN_PASSWORD} karakter")
    if len(password) > MAX_PASSWORD:
        errors.setdefault("password", []).append(f"paling banyak {MAX_PASSWORD} karakter")
    if nik and len(nik) >= 8 and nik in password:
        errors.setdefault("password", []).append("tidak boleh memuat NIK")
    # The digits in the order written, so 17-05-1998 and 17/05/1998 are 17051998 too.
    digits = "".join(c for c in password if c.isdigit())
    if any(d in digits for d in _birth_date_digits(nik, birth_date)):
        errors.setdefault("password", []).append("tidak boleh memuat tanggal lahir")
    if password != again:
        errors.setdefault("password_again", []).append("tidak sama dengan kata sandi")
    return errors


_REASONS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"a NIK is exactly 16 digits"), "NIK terdiri dari tepat 16 angka 0-9"),
    (re.compile(r"the region code .* is 000000"), "kode wilayah NIK (angka 1-6) tidak sah"),
    (
        re.compile(r"digits 7-12 are not a valid DDMMYY"),
        "angka 7-12 NIK bukan tanggal lahir (HHBBTT) yang sah",
    ),
    (
        re.compile(r"its birth-date part does not match"),
        "bagian tanggal lahir pada NIK tidak sesuai dengan tanggal lahir yang diisi",
    ),
    (
        re.compile(r"does not match the NIK"),
        "tidak sesuai dengan NIK (pada NIK perempuan, tanggal lahir ditambah 40)",
    ),
    (re.compile(r"the serial part .* is 0000"), "nomor urut NIK (angka 13-16) tidak sah"),
    (
        re.compile(r"only Indonesian citizens may apply"),
        "hanya warga negara Indonesia yang dapat mendaftar",
    ),
    (re.compile(r"no such formasi"), "formasi ini tidak ada pada seleksi ini"),
    # The sanctions register's refusals (client/sanctions.py Bar.reason).
    (
        re.compile(r"barred until (\d{4}-\d{2}-\d{2}) by national list (.+?) \((.*)\)"),
        lambda m, z: (
            f"Anda tidak dapat mendaftar sampai {tanggal(date.fromisoformat(m[1]))} menurut daftar sanksi nasional "
            f"{m[2]} ({m[3]})"
        ),
    ),
    (
        re.compile(
            r"barred until the (\d+)\w\w round opening after round (\S+) is over "
            r"\(round (\S+) is the (\d+)\w\w\) by round \S+ \(APS\)"
        ),
        lambda m, z: (
            f"Anda tidak dapat mendaftar pada {m[1]} periode seleksi setelah seleksi {m[2]} "
            f"karena mengundurkan diri setelah dinyatakan lulus (APS) pada seleksi itu; seleksi {m[3]} "
            f"adalah periode ke-{m[4]}"
        ),
    ),
    (
        re.compile(
            r"barred until the (\d+)\w\w round opening after (\S+) \(the list's import\) is "
            r"over \(round (\S+) is the (\d+)\w\w\) by national list (.+?) \((.*)\)"
        ),
        lambda m, z: (
            f"Anda tidak dapat mendaftar pada {m[1]} periode seleksi setelah {tanggal(date.fromisoformat(m[2]))} menurut "
            f"daftar sanksi nasional {m[5]} ({m[6]}); seleksi {m[3]} adalah periode ke-{m[4]}"
        ),
    ),
    (
        re.compile(r"age (\d+) on (\S+) is outside (\d+)-(\d+)"),
        lambda m, z: f"usia Anda {m[1]} tahun pada {m[2]}, di luar batas usia {m[3]}-{m[4]} tahun",
    ),
    (
        re.compile(r"formasi (\S+) requires (.+)"),
        lambda m, z: f"formasi {m[1]} mensyaratkan jenjang pendidikan {m[2]}",
    ),
    (
        re.compile(r"formasi (\S+) accepts \[(.*)\]"),
        lambda m, z: f"formasi {m[1]} hanya menerima program studi {m[2].replace(chr(39), '')}",
    ),
    # An IPK is written with a decimal comma in Indonesian, as the form's own hint asks for it.
    (
        re.compile(r"below the minimum (\S+)"),
        lambda m, z: f"di bawah IPK minimum {m[1].replace('.', ',')}",
    ),
    (
        re.compile(r"formasi (\S+) is reserved for (\S+)"),
        lambda m, z: f"formasi {m[1]} khusus untuk kategori {_category_label(m[2])}",
    ),
    (
        re.compile(r"formasi (\S+) is a general \(umum\) formasi"),
        lambda m, z: f"formasi {m[1]} adalah formasi umum; pilih kategori Umum",
    ),
    # One NIK, one formasi nationwide (client/national.py): the NIK holds a formasi of another
    # instansi's round; logging in here would not find it.
    (
        re.compile(
            r"already registered in national round (\S+) through round (\S+) \(formasi (\S+)\)"
        ),
        lambda m, z: (
            f"sudah terdaftar pada seleksi nasional {m[1]} melalui seleksi {m[2]} "
            f"(formasi {m[3]}); satu NIK hanya dapat mendaftar pada satu formasi secara nasional"
        ),
    ),
    # An optimalisasi offer answered after its time (domain/sheet.py).
    (
        re.compile(r"the offer had to be answered by (\S+): it is declined"),
        lambda m, z: (
            f"penawaran ini harus dijawab paling lambat {_deadline(m[1], z)}; "
            "karena lewat waktu, penawaran dianggap ditolak"
        ),
    ),
    # The journey's own refusal: the round closed registration (early, when its quota was met)
    # while the form was on its way (domain/admission.py).
    (
        re.compile(r"after registration closed at (\S+)"),
        lambda m, z: f"pendaftaran sudah ditutup pada {_deadline(m[1], z)}",
    ),
    (
        re.compile(r"registration is open (\S+) to (\S+)"),
        lambda m, z: f"pendaftaran hanya dibuka {_moment(m[1], z)} sampai {_deadline(m[2], z)}",
    ),
    # What the journey answers to the portal's reports (domain/sheet.py, domain/administration.py).
    (
        re.compile(r"only a TMS result can be appealed"),
        "sanggah hanya dapat diajukan atas hasil TMS",
    ),
    (
        re.compile(r"the result has not been announced yet"),
        "hasil seleksi administrasi belum diumumkan",
    ),
    (re.compile(r"an appeal may be filed once"), "sanggah hanya dapat diajukan satu kali"),
    (
        re.compile(r"a sanggah against the final result may be filed once"),
        "sanggah atas hasil akhir hanya dapat diajukan satu kali",
    ),
    (
        re.compile(r"the sanggah window of the final result closed at (\S+)"),
        lambda m, z: f"masa sanggah hasil akhir sudah berakhir pada {_deadline(m[1], z)}",
    ),
    (
        re.compile(r"the round takes no sanggah against the final result now"),
        "saat ini tidak ada masa sanggah atas hasil akhir",
    ),
    (
        re.compile(r"the appeal window closed at (\S+)"),
        lambda m, z: f"masa sanggah sudah berakhir pada {_deadline(m[1], z)}",
    ),
    (
        re.compile(r"the journey has ended \(([^:()]+): (.*)\)$"),
        lambda m, z: f"proses seleksi Anda sudah berakhir: {reason_text(m[2])}",
    ),
    (
        re.compile(r"the journey has ended \((.*)\)"),
        lambda m, z: f"proses seleksi Anda sudah berakhir ({m[1]})",
    ),
    (re.compile(r"the journey has ended$"), "proses seleksi Anda sudah berakhir"),
    (
        re.compile(r"there is no optimalisasi offer"),
        "tidak ada tawaran optimalisasi yang dapat dijawab",
    ),
    (re.compile(r"the offer is already answered"), "tawaran ini sudah dijawab"),
    (
        re.compile(r"already used with different content"),
        "formulir ini sudah pernah dikirim dengan isi lain; buka kembali halaman status",
    ),
]


def _category_label(value: str) -> str:
    try:
        return CATEGORY_LABELS[Category(value)]
    except ValueError:
        return value


def _moment(iso: str, zone: str) -> str:
    return waktu(datetime.fromisoformat(iso), zone)


def _deadline(iso: str, zone: str) -> str:
    """A close or a deadline the engine names (the first moment too late): 24.00 of the day
    still in it, as the status page shows it."""
    return batas(datetime.fromisoformat(iso), zone)


def indonesian(reason: str, zone: str = JAKARTA) -> str:
    """An engine's reason in Indonesian, where its wording is known, its times in the round's zone
    `zone`; else the reason itself, marked as the system's words."""
    for pattern, text in _REASONS:
        found = pattern.search(reason)
        if found:
            return text(found, zone) if callable(text) else text
    return f"ditolak oleh sistem: {reason}"


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _refusal_errors(refusals: list[Refusal], zone: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for refusal in refusals:
        field = refusal.field if refusal.field in FIELD_LABELS else "registered_at"
        errors.setdefault(field, []).append(indonesian(refusal.reason, zone))
    return errors


# Refusals that would tell whoever filled in the anonymous form about a NIK's other registration
# (which instansi, which formasi) or its sanction (which list, why): made up around someone's
# NIK, the form would read them out. It says only that there is one, at the NIK; the applicant
# asks the committee, and each is logged as a repeat in this round is, so that a sweep shows.
_PRIVATE_REFUSALS = (
    (
        re.compile(r"already registered in national round "),
        "registered in another instansi",
        "NIK ini sudah terdaftar pada formasi lain dalam seleksi nasional ini; satu NIK hanya "
        "dapat mendaftar pada satu formasi secara nasional. Jika itu bukan pendaftaran Anda, "
        "hubungi panitia seleksi.",
    ),
    (
        re.compile(r"\bbarred until "),
        "barred by the sanctions register",
        "NIK ini tercatat dalam daftar sanksi dan tidak dapat mendaftar pada seleksi ini. Hubungi "
        "panitia seleksi atau BKN untuk keterangannya.",
    ),
)


def _form_refusal_errors(
    v: Visit, round_id: str, applicant_id: str, refusals: list[Refusal], zone: str
) -> dict[str, list[str]]:
    """The refusals as the anonymous form shows them: each at its field in Indonesian, but one
    that tells of the NIK elsewhere only that there is one (_PRIVATE_REFUSALS), logged."""
    shown: list[Refusal] = []
    private: dict[str, list[str]] = {}
    for refusal in refusals:
        hit = next((p for p in _PRIVATE_REFUSALS if p[0].search(refusal.reason)), None)
        if hit is None:
            shown.append(refusal)
            continue
        _, kind, text = hit
        log.warning(
            f"registration refused: NIK {kind}",
            round_id=round_id,
            applicant_id=applicant_id,
            source=v.source,
        )
        if text not in private.get("nik", []):
            private.setdefault("nik", []).append(text)
    errors = _refusal_errors(shown, zone)
    for field_name, texts in private.items():
        errors.setdefault(field_name, []).extend(texts)
    return errors


def _is_repeat_nik(refusals: list[Refusal]) -> bool:
    """The engine's refusal of a NIK already registered in this round with other data (not in
    another instansi's round of a national round: that one is shown at the NIK field)."""
    return any(
        r.field == "nik" and r.reason.startswith("already registered in round ") for r in refusals
    )


@router.post("/daftar", response_class=HTMLResponse)
async def register(request: Request, v: Visit = Depends(visit)) -> Response:
    """Register: the journey checks eligibility and starts; the account is made with it.

    Whether a NIK has registered is said only to a form the round would otherwise take, while
    its registration is open: the form is judged by the round's rules here first, before the
    NIK's account is looked at, so a form made up around someone's NIK learns nothing. Anyone
    can still make up a form the rules take (the birth date and gender are in the NIK): such
    answers are logged with the registration number, and the address's allowance bounds them."""
    form = await request.form()
    round_id = str(form.get("round", ""))
    if v.nonce(form, "daftar") is None:
        return forbidden(v)
    if (slow := limited(v, v.portal.register_limit, "daftar")) is not None:
        return slow
    found = await _round(v, round_id)
    if isinstance(found, HTMLResponse):
        return found
    config, state = found
    now = datetime.now(UTC)
    if not _registration_open(state, now):
        return _registration_closed(v, config, state, 409)
    values = {f: str(form.get(f, "")).strip() for f in REGISTRATION_FIELDS}
    values["citizen"] = "ya" if form.get("citizen") == "ya" else "tidak"
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    errors: dict[str, list[str]] = {}
    reg: Registration | None = None
    try:
        reg = Registration.model_validate(
            {
                **{f: values[f] for f in REGISTRATION_FIELDS if values[f]},
                "name": " ".join(values["name"].split()),
                "gpa": values["gpa"].replace(",", "."),
                "citizen": values["citizen"] == "ya",
            }
        )
    except ValidationError as exc:
        errors = _form_errors(exc, values)
    checked = (reg.nik, reg.birth_date) if reg else ("", None)
    for field, texts in _password_errors(password, again, *checked).items():
        errors.setdefault(field, []).extend(texts)
    if "password" not in errors:
        # Scored only once the cheap rules take it: one reason is enough, and a password the
        # rules refuse costs no scoring.
        known = own_words(
            values["nik"], values["name"], values["birth_date"], config.instansi, round_id
        )
        if (weak := await too_guessable(password, known)) is not None:
            errors.setdefault("password", []).append(weak)
    if errors or reg is None:
        return _registration_form(v, config, state, values, errors, 422)
    refusals = registration_refusals(config, reg, now, state.schedule.registration.closes)
    if refusals:
        log.info("registration refused", round_id=round_id, reasons=len(refusals))
        return _registration_form(
            v, config, state, values, _refusal_errors(refusals, config.timezone), 422
        )
    if v.gw.portal is None:
        return message(
            v,
            503,
            "Pendaftaran belum dapat dilayani",
            "Portal ini belum memiliki kunci tanda tangan, sehingga belum dapat mengirim pendaftaran.",
        )
    applicant_id = applicant_id_for(v.gw.api.pseudonym_key, round_id, reg.nik)
    accounts = v.portal.accounts

    def already(status: int = 409) -> HTMLResponse:
        # Logged so that a sweep of NIKs shows: many of these, from one source.
        log.warning(
            "registration refused: NIK already registered",
            round_id=round_id,
            applicant_id=applicant_id,
            source=v.source,
        )
        return _registration_form(
            v,
            config,
            state,
            values,
            {"nik": ["NIK ini sudah terdaftar pada seleksi ini"]},
            status,
            notice="NIK ini sudah terdaftar pada seleksi ini. Satu NIK hanya dapat mendaftar satu "
            "kali. Silakan masuk dengan NIK atau nomor pendaftaran Anda dan kata sandi Anda.",
        )

    # The account first, then the journey, but only for a NIK whose journey is not there yet: a
    # journey with no account was registered elsewhere (the committee's import, the service
    # API), and an account made for it by whoever knows the NIK would log them in as its
    # applicant. Its form is still judged by the engine (a refusal is shown again, a repeat or
    # other data are told the NIK is registered), with no account made.
    elsewhere = False
    created_hash: str | None = None
    if not await accounts.exists(round_id, applicant_id):
        try:
            elsewhere = await v.gw.api.journey_started(round_id, applicant_id)
        except RPCError as exc:
            return unavailable(v, f"registration in {round_id}", exc)
        if not elsewhere:
            created_hash = await accounts.hash(password)
            if not await accounts.create(round_id, applicant_id, created_hash):
                created_hash = None  # made a moment ago by a second submit of the same form
    if not elsewhere and created_hash is None:
        # The NIK's account is there: the form logs in whoever knows its password (the same form
        # sent twice). A password check like a login's by NIK, so it spends that allowance, or
        # the form would be a way to guess passwords with no limit per account.
        held = _account_held(v, round_id, applicant_id, "nik")
        if held is not None:
            return held
        if not await accounts.check_password(round_id, applicant_id, password):
            return already()
        v.portal.account_limit.refund(_account_key(round_id, applicant_id, "nik"))
    try:
        try:
            result = await v.gw.api.register(
                config,
                reg,
                v.gw.portal.identity,
                schedule_closes=state.schedule.registration.closes,
            )
        except Exception:
            # No answer: the account stays only if the journey is there (the answer was lost;
            # sending the same form again finds the account and completes). Left with no
            # journey, it would be waiting for whoever registers that NIK later (an import).
            if created_hash is not None:
                await _discard_unless_started(v, round_id, applicant_id, created_hash)
            raise
    except (RPCError, RefusedError) as exc:
        return unavailable(v, f"registration in {round_id}", exc)
    # Registered now; or registered a moment ago by the same form, sent twice (the account was
    # there and its password matched).
    done = not elsewhere and (
        result.status == "registered" or (result.status == "repeat" and created_hash is None)
    )
    if not done:
        if created_hash is not None:
            await accounts.discard(round_id, applicant_id, created_hash)
        if result.status != "refused" or _is_repeat_nik(result.refusals):
            return already()
        log.info("registration refused", round_id=round_id, reasons=len(result.refusals))
        errors = _form_refusal_errors(v, round_id, applicant_id, result.refusals, config.timezone)
        return _registration_form(v, config, state, values, errors, 422)
    log.info("registration", round_id=round_id, applicant_id=applicant_id, status=result.status)
    token, v.session = await accounts.open_session(round_id, applicant_id)
    formasi = config.formasi_by_code(reg.formasi_code)
    # Pending: the engine took the registration but its journey has not answered within the
    # client's wait (a backlog); it is recorded, and its status appears once the journey has run.
    response = page(
        v,
        "registered.html",
        {
            "config": config,
            "applicant_id": applicant_id,
            "formasi": formasi,
            "pending": result.pending,
        },
        202 if result.pending else 201 if result.status == "registered" else 200,
    )
    _cookie(response, v, SESSION_COOKIE, token, int(accounts.session_ttl.total_seconds()))
    return response


async def _discard_unless_started(
    v: Visit, round_id: str, applicant_id: str, password_hash: str
) -> None:
    """Remove the account a registration made a moment ago when its journey is not there (the
    engine failed before starting it); keep it when the journey is, or when nobody can say."""
    try:
        started = await v.gw.api.journey_started(round_id, applicant_id)
    except RPCError:
        return
    if not started:
        await v.portal.accounts.discard(round_id, applicant_id, password_hash)


# --- login and logout ---------------------------------------------------------------------------


async def _login_form(
    v: Visit,
    round_id: str,
    number: str,
    error: str = "",
    status: int = 200,
    error_fields: tuple[str, ...] = ("number", "password"),
    zone: str | None = None,
) -> HTMLResponse:
    """The login form; an `error` is shown first and tied to `error_fields`."""
    try:
        round_ids = await v.gw.rounds.round_ids()
    except RPCError as exc:
        return unavailable(v, "round list", exc)
    return page(
        v,
        "login.html",
        {
            "round_id": round_id,
            "round_ids": round_ids,
            "number": number,
            "error": error,
            "error_fields": error_fields,
            "csrf_token": v.token("masuk"),
        },
        status,
        zone,
    )


@router.get("/masuk", response_class=HTMLResponse)
async def login_page(round: str = "", v: Visit = Depends(visit)) -> Response:
    """The login form: round, registration number or NIK, password."""
    if v.session is not None:
        return RedirectResponse("/status", 303)
    return await _login_form(v, round if _ROUND_ID.fullmatch(round) else "", "")


def _applicant_id(v: Visit, round_id: str, number: str) -> str | None:
    """The registration number a login names: given as such, or the NIK's (never stored)."""
    compact = "".join(number.split())
    if compact.isdigit():  # a registration number has letters (base32); a NIK has none
        try:
            return applicant_id_for(v.gw.api.pseudonym_key, round_id, normalise_nik(compact))
        except ValueError:
            return None
    compact = compact.upper()
    return compact if _REGISTRATION_NO.fullmatch(compact) else None


def _account_key(round_id: str, applicant_id: str, named_by: str) -> str:
    """The failed-login allowance of an account named by its number or its NIK."""
    return f"masuk-akun:{round_id}/{applicant_id}/{named_by}"


def _account_held(v: Visit, round_id: str, applicant_id: str, named_by: str) -> HTMLResponse | None:
    """429 when the account, named this way, has had its failed password checks; else None,
    and one taken (given back by the caller when the password was right)."""
    return limited(
        v,
        v.portal.account_limit,
        "masuk-akun",
        _account_key(round_id, applicant_id, named_by),
        round_id=round_id,
        applicant_id=applicant_id,
        named_by=named_by,
    )


@router.post("/masuk", response_class=HTMLResponse)
async def login(request: Request, v: Visit = Depends(visit)) -> Response:
    """Log in; the same answer for an unknown number and a wrong password. Limited per client
    address and, for failures, per network (an IPv6 client's /48) and per account; a form without its token costs no allowance (it
    costs the gateway no more than a page), so nobody spends the applicants' by sending none."""
    form = await request.form()
    if v.nonce(form, "masuk") is None:
        return forbidden(v)
    if (slow := limited(v, v.portal.login_limit, "masuk")) is not None:
        return slow
    round_id = str(form.get("round", ""))
    number = str(form.get("number", ""))[:64]
    password = str(form.get("password", ""))[: MAX_PASSWORD + 1]
    if not _ROUND_ID.fullmatch(round_id):
        return await _login_form(v, "", "", "Pilih seleksi.", 422, ("round",))
    applicant_id = _applicant_id(v, round_id, number)
    shown = number if applicant_id and applicant_id == number.strip().upper() else ""
    named_by = "nik" if "".join(number.split()).isdigit() else "nomor"
    if slow := limited(v, v.portal.network_failure_limit, "masuk-jaringan", v.network_key):
        return slow
    if applicant_id is not None and (slow := _account_held(v, round_id, applicant_id, named_by)):
        v.portal.network_failure_limit.refund(v.network_key)  # no password was checked
        return slow
    if applicant_id is None or not await v.portal.accounts.check_password(
        round_id, applicant_id, password
    ):
        log.info("login refused", round_id=round_id, applicant_id=applicant_id)
        if (purged := await purged_on(v.gw.pool, round_id)) is not None:
            # Said of the round, whoever asks: it tells nothing of whether the number had an
            # account.
            zone = await _round_zone(v, round_id)
            text = purged_text(round_id, purged, zone or JAKARTA)
            return await _login_form(v, round_id, shown, text, 410, zone=zone)
        return await _login_form(v, round_id, shown, LOGIN_FAILED, 401)
    v.portal.account_limit.refund(_account_key(round_id, applicant_id, named_by))  # failures only
    v.portal.network_failure_limit.refund(v.network_key)
    token, _ = await v.portal.accounts.open_session(round_id, applicant_id)
    log.info("login", round_id=round_id, applicant_id=applicant_id)
    response = RedirectResponse("/status", 303)
    _cookie(response, v, SESSION_COOKIE, token, int(v.portal.accounts.session_ttl.total_seconds()))
    return response


@router.post("/keluar", response_class=HTMLResponse)
async def logout(request: Request, v: Visit = Depends(visit)) -> Response:
    """Log out: the session ends on the server, the cookie is cleared."""
    if v.session is None:
        return RedirectResponse("/", 303)
    form = await request.form()
    if v.nonce(form, "keluar") is None:
        return forbidden(v)
    await v.portal.accounts.close_session(v.session)
    log.info("logout", applicant_id=v.session.applicant_id)
    response = RedirectResponse("/", 303)
    response.delete_cookie(
        cookie_name(v.gw, SESSION_COOKIE),
        path="/",
        httponly=True,
        samesite="lax",
        secure=not v.gw.settings.development,
    )
    return response


# --- status and what the applicant may send -----------------------------------------------------


@router.get("/status", response_class=HTMLResponse)
async def status(v: Visit = Depends(visit)) -> Response:
    """The applicant's stage, every decision with its reasons, the deadlines in the round's zone,
    and the forms the journey would take now."""
    if v.session is None:
        return to_login()
    return await _status_page(v)


async def _status_page(
    v: Visit, appeal_error: str = "", reason: str = "", code: int = 200
) -> Response:
    """The status page; with `appeal_error`, the sanggah form sent back with the text it held,
    its field invalid and described by the error, which takes focus (WCAG 3.3.1)."""
    assert v.session is not None
    round_id, applicant_id = v.session.round_id, v.session.applicant_id
    try:
        config = await v.gw.rounds.config(round_id)
        view = await v.gw.applicant_status(round_id, applicant_id, config)
    except UnknownError:
        return message(
            v,
            404,
            "Pendaftaran tidak ditemukan",
            f"Belum ada pendaftaran dengan nomor {applicant_id} pada seleksi {round_id}. Jika Anda "
            "baru saja mendaftar, coba lagi sebentar lagi.",
        )
    except (RPCError, RefusedError) as exc:
        return unavailable(v, f"status of {applicant_id}", exc)
    surveys = await offered_stages(v.gw.pool, view)
    return page(
        v,
        "status.html",
        {
            "view": view,
            "config": config,
            "surveys": [(s, SKM_STAGE_LABELS[s]) for s in surveys],
            "sanggah_token": v.token("sanggah"),
            "offer_tokens": {"ya": v.token("tawaran"), "tidak": v.token("tawaran")},
            "appeal_error": appeal_error,
            "appeal_reason": reason,
        },
        code,
    )


async def _send(v: Visit, kind: str, build, title: str, done: str) -> HTMLResponse:
    """Send one report in the portal's name for the logged-in applicant and show the answer."""
    assert v.session is not None and v.gw.portal is not None
    round_id, applicant_id = v.session.round_id, v.session.applicant_id
    report: Report = build(v.gw.portal.identity)
    zone = await _round_zone(v, round_id)
    try:
        ack = await v.gw.api.report(round_id, applicant_id, report)
    except UnknownError:
        return message(
            v,
            404,
            "Pendaftaran tidak ditemukan",
            f"Tidak ada pendaftaran dengan nomor {applicant_id} pada seleksi {round_id}.",
            back=("/status", "Kembali ke status"),
        )
    except RefusedError as exc:
        log.info("portal report refused", kind=kind, applicant_id=applicant_id)
        return message(
            v,
            409,
            f"{title} tidak dapat diterima",
            _sentence(indonesian(str(exc), zone or JAKARTA)),
            back=("/status", "Kembali ke status"),
            zone=zone,
        )
    except RPCError as exc:
        return unavailable(v, f"{kind} for {applicant_id}", exc)
    log.info("portal report", kind=kind, report_id=ack.report_id, applicant_id=applicant_id)
    return message(
        v,
        200,
        f"{title} diterima",
        f"{done} Tercatat pada {waktu(ack.recorded_at, zone or JAKARTA)} dengan nomor bukti "
        f"{ack.report_id}.",
        kind="notice",
        back=("/status", "Kembali ke status"),
        zone=zone,
    )


async def _round_zone(v: Visit, round_id: str) -> str | None:
    """The round's zone, or None (the page then reads in WIB, and says so) when its rules cannot
    be read: a page that only reports what was sent is not refused for the want of it."""
    try:
        return (await v.gw.rounds.config(round_id)).timezone
    except (RPCError, RefusedError) as exc:
        log.info("round zone unavailable", round_id=round_id, error=type(exc).__name__)
        return None


async def _logged_in_form(request: Request, v: Visit, purpose: str) -> tuple[Any, str] | Response:
    if v.session is None:
        return to_login()
    form = await request.form()
    nonce = v.nonce(form, purpose)
    if nonce is None:
        return forbidden(v)
    # Each form sent is an update the engine's workers judge: an account's are limited as an
    # address's registrations and logins are (one account must not keep the shared workers busy).
    round_id, applicant_id = v.session.round_id, v.session.applicant_id
    if (
        slow := limited(
            v,
            v.portal.send_limit,
            "kirim",
            f"kirim:{round_id}/{applicant_id}",
            round_id=round_id,
            applicant_id=applicant_id,
        )
    ) is not None:
        return slow
    if v.gw.portal is None:
        return message(
            v, 503, "Layanan belum tersedia", "Portal ini belum memiliki kunci tanda tangan."
        )
    return form, nonce


@router.post("/sanggah", response_class=HTMLResponse)
async def file_appeal(request: Request, v: Visit = Depends(visit)) -> Response:
    """File a sanggah; the journey takes it only within its window."""
    got = await _logged_in_form(request, v, "sanggah")
    if isinstance(got, Response):
        return got
    form, nonce = got
    reason = str(form.get("reason", "")).strip()
    if not 1 <= len(reason) <= 2000:
        return await _status_page(
            v,
            "Tuliskan alasan sanggah Anda (paling banyak 2000 karakter), lalu kirim lagi.",
            str(form.get("reason", ""))[:2000],
            422,
        )
    return await _send(
        v,
        "sanggah",
        lambda by: AppealFiling(
            report_id=report_id_for("sanggah", nonce), reported_by=by, reason=reason
        ),
        "Sanggah",
        "Sanggah Anda telah diterima dan akan dijawab oleh instansi.",
    )


@router.post("/tawaran", response_class=HTMLResponse)
async def answer_offer(request: Request, v: Visit = Depends(visit)) -> Response:
    """Accept or decline an optimalisasi offer."""
    got = await _logged_in_form(request, v, "tawaran")
    if isinstance(got, Response):
        return got
    form, nonce = got
    answer = str(form.get("accept", ""))
    if answer not in {"ya", "tidak"}:
        return message(v, 422, "Jawaban tidak sah", "Pilih menerima atau menolak tawaran.")
    accept = answer == "ya"
    return await _send(
        v,
        "tawaran",
        lambda by: OfferAnswer(
            report_id=report_id_for("tawaran", nonce), reported_by=by, accept=accept
        ),
        "Jawaban tawaran",
        "Anda menerima tawaran formasi ini." if accept else "Anda menolak tawaran formasi ini.",
    )


async def _withdrawal_form(v: Visit, error: str = "", status: int = 200) -> Response:
    """The confirmation page: the sanction a withdrawal now brings, and the round's rule."""
    assert v.session is not None
    round_id, applicant_id = v.session.round_id, v.session.applicant_id
    try:
        config = await v.gw.rounds.config(round_id)
        view = await v.gw.applicant_status(round_id, applicant_id, config)
    except (RPCError, RefusedError) as exc:
        return unavailable(v, "withdrawal page", exc)
    return page(
        v,
        "withdraw.html",
        {"config": config, "view": view, "csrf_token": v.token("mundur"), "error": error},
        status,
    )


@router.get("/mundur", response_class=HTMLResponse)
async def withdrawal_page(v: Visit = Depends(visit)) -> Response:
    """The confirmation page before a withdrawal, stating its sanction."""
    if v.session is None:
        return to_login()
    return await _withdrawal_form(v)


@router.post("/mundur", response_class=HTMLResponse)
async def withdraw(request: Request, v: Visit = Depends(visit)) -> Response:
    """Withdraw, once the applicant has confirmed, on the confirmation page, that they read the
    sanction."""
    got = await _logged_in_form(request, v, "mundur")
    if isinstance(got, Response):
        return got
    form, nonce = got
    if form.get("confirm") != "ya":
        return await _withdrawal_form(
            v, "Centang pernyataan bahwa Anda memahami akibatnya, lalu kirim lagi.", 422
        )
    reason = str(form.get("reason", "")).strip()[:2000]
    return await _send(
        v,
        "mundur",
        lambda by: Withdrawal(
            report_id=report_id_for("mundur", nonce), reported_by=by, reason=reason
        ),
        "Pengunduran diri",
        "Pengunduran diri Anda telah dicatat.",
    )


# --- the satisfaction survey (SKM) ----------------------------------------------------------------
# Anonymous: the answers are stored without the registration number (client/survey.py); the
# applicant's session only decides whether the stage is open to them and not yet answered.


async def _survey_subject(
    v: Visit, stage: str
) -> tuple[RoundConfig, ApplicantView, SurveyStage] | Response:
    """The round and the applicant of a survey page, or the page saying why there is none:
    not logged in, an unknown stage, a stage not open to them yet, or answered already."""
    if v.session is None:
        return to_login()
    if stage not in SKM_STAGES:
        return message(
            v, 404, "Survei tidak ditemukan", "Tidak ada survei tahap ini.", back=_TO_STATUS
        )
    round_id, applicant_id = v.session.round_id, v.session.applicant_id
    try:
        config = await v.gw.rounds.config(round_id)
        view = await v.gw.applicant_status(round_id, applicant_id, config)
    except UnknownError:
        return message(
            v, 404, "Pendaftaran tidak ditemukan", f"Tidak ada pendaftaran {applicant_id}."
        )
    except (RPCError, RefusedError) as exc:
        return unavailable(v, f"survey of {applicant_id}", exc)
    known: SurveyStage = next(s for s in SKM_STAGES if s == stage)
    label = SKM_STAGE_LABELS[known].lower()
    if known not in open_stages(view):
        return message(
            v,
            409,
            "Survei belum dibuka",
            f"Survei kepuasan tahap ini ({label}) belum dibuka untuk Anda: survei setelah SKD "
            "dibuka setelah hasil SKD Anda diumumkan, survei akhir setelah proses seleksi Anda "
            "berakhir.",
            back=_TO_STATUS,
        )
    if known in await taken_stages(v.gw.pool, round_id, applicant_id):
        return message(
            v,
            409,
            "Survei sudah diisi",
            f"Anda sudah mengisi survei kepuasan tahap ini ({label}). Setiap tahap diisi satu "
            "kali. Terima kasih.",
            kind="notice",
            back=_TO_STATUS,
        )
    return config, view, known


def _survey_form(
    v: Visit,
    config: RoundConfig,
    stage: SurveyStage,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    return page(
        v,
        "survey.html",
        {
            "config": config,
            "stage": stage,
            "stage_label": SKM_STAGE_LABELS[stage],
            "elements": SKM_ELEMENTS,
            "values": values,
            "errors": errors,
            "csrf_token": v.token(f"survei-{stage}"),
        },
        status,
    )


@router.get("/survei/{stage}", response_class=HTMLResponse)
async def survey_page(stage: str, v: Visit = Depends(visit)) -> Response:
    """The survey of one stage: nine questions, four answers each."""
    found = await _survey_subject(v, stage)
    if isinstance(found, Response):
        return found
    config, _, known = found
    return _survey_form(v, config, known, {}, {})


@router.post("/survei/{stage}", response_class=HTMLResponse)
async def answer_survey(stage: str, request: Request, v: Visit = Depends(visit)) -> Response:
    """Store one survey's answers anonymously, once per stage, and thank the applicant."""
    if v.session is None:
        return to_login()
    form = await request.form()
    if v.nonce(form, f"survei-{stage}") is None:
        return forbidden(v)
    found = await _survey_subject(v, stage)
    if isinstance(found, Response):
        return found
    config, view, known = found
    values = {e.code: str(form.get(e.code, "")).strip()[:20] for e in SKM_ELEMENTS}
    errors: dict[str, str] = {}
    for e in SKM_ELEMENTS:
        raw = values[e.code]
        if not raw:
            errors[e.code] = f"{e.name}: pilih salah satu jawaban, 1 sampai 4."
        elif raw not in {"1", "2", "3", "4"}:
            errors[e.code] = f"{e.name}: jawaban {raw!r} tidak sah; pilih 1 sampai 4."
    if errors:
        return _survey_form(
            v, config, known, {c: x for c, x in values.items() if c not in errors}, errors, 422
        )
    async with v.gw.pool.acquire() as conn:
        stored = await record_answers(
            conn,
            round_id=view.round_id,
            instansi=config.instansi,
            applicant_id=view.applicant_id,
            stage=known,
            answers=[int(values[e.code]) for e in SKM_ELEMENTS],
        )
    if not stored:  # answered in another tab a moment ago
        return message(
            v,
            409,
            "Survei sudah diisi",
            "Anda sudah mengisi survei kepuasan tahap ini. Setiap tahap diisi satu kali.",
            kind="notice",
            back=_TO_STATUS,
        )
    log.info("survey answered", round_id=view.round_id, stage=known)
    return message(
        v,
        200,
        "Terima kasih",
        f"Jawaban survei kepuasan Anda ({SKM_STAGE_LABELS[known].lower()}) telah disimpan tanpa "
        "identitas Anda. Masukan Anda membantu instansi memperbaiki layanan seleksi.",
        kind="notice",
        back=_TO_STATUS,
    )
