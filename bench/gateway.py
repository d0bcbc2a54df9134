"""What the HTTP gateway costs: one registration burst through it, the same burst straight to the
engine, in one run; and the applicant's status page while the gateway takes the burst.

The gateway runs as production runs it: `serve.py` in a process of its own (uvicorn, one event
loop), on a free port, against the bench's embedded stack; the worker and the load run in the
bench process. Through HTTP, each of `clients` concurrent clients (an httpx AsyncClient each)
posts registrations one after another to `/api/v1/rounds/{round}/registrations` with the
operator's API key; straight to the engine, as many tasks call `RecruitmentApi.register` with the
same portal key. Both rounds have keys, so both paths sign every registration and every journey
checks the signature.

While the bursts run, a few applicants who registered through the portal read their status page
(GET /status with their session cookie); a build without the portal reads the public lookup, or
else `/healthz`, and says so. They read during both paths' bursts, so both carry the same extra
load; the status page's figure that counts is the one under the HTTP burst.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import tomli_w
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apps.demo import EXAMPLE
from bench.common import ROOT, CpuMeter, console, pct, print_table
from bench.rounds import applicants, bench_config, new_round_id
from client.api import RecruitmentApi
from domain.config import RoundConfig, parse_round_config
from domain.messages import CloseWindow
from domain.protocol import JOURNEY_STATE
from domain.registration import Registration
from domain.signing import Keyring, Signer
from gateway.deps import api_key_digest
from workflows.ids import journey_workflow_id

OUT = ROOT / "out" / "bench"
THROUGHPUT_TARGET = 0.85  # the gateway may cost at most 15% of the direct path's accepted/s
STATUS_TARGET_MS = 100.0
WARM_UP = 20  # registrations per path before the clock starts (connections, caches, JIT-free)


@dataclass
class Burst:
    """What the bursts of one path came to (summed over its legs)."""

    path: str
    accepted: int = 0
    refused: int = 0  # by the registration rules (ineligible, 409 through HTTP)
    errors: Counter = field(default_factory=Counter)  # anything else, by kind
    latencies_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    # The longest wait, after a leg, until the read model shows every journey admitted.
    at_rest: float = 0.0
    cpu: Counter = field(default_factory=Counter)  # process -> CPU seconds during the bursts

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else 0.0

    def add(self, leg: Burst) -> None:
        self.accepted += leg.accepted
        self.refused += leg.refused
        self.errors.update(leg.errors)
        self.latencies_ms.extend(leg.latencies_ms)
        self.elapsed += leg.elapsed

    def rows(self) -> dict[str, str]:
        lat = self.latencies_ms
        share = {
            k: f"{v:.1f} s ({100 * v / self.elapsed:.0f}% of one core)" for k, v in self.cpu.items()
        }
        return {
            "accepted / refused by the rules / errors": f"{self.accepted} / {self.refused} / "
            f"{sum(self.errors.values())}",
            "elapsed (bursts only)": f"{self.elapsed:.1f} s",
            "registrations accepted/s": f"{self.rate:.1f}",
            "latency p50 / p95 / p99": f"{pct(lat, 50):.0f} / {pct(lat, 95):.0f} / "
            f"{pct(lat, 99):.0f} ms",
            "then until every journey is admitted (read model)": f"{self.at_rest:.1f} s",
            **{f"CPU: {k}": v for k, v in share.items()},
        }


# --- the rounds and the gateway's keys ---------------------------------------------------------


def keyed_round(kind: str, keyring: Keyring) -> tuple[RoundConfig, Path]:
    """A fresh round of the bench's example (windows open now, for hours) with every identity's
    public key; each path registers the same applicants in a round of its own."""
    _, path = bench_config(new_round_id(kind), datetime.now(UTC), out_dir=OUT / "rounds")
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["identities"] = keyring.public_keys()
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return parse_round_config(doc, "bench round"), path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`serve.py` in its own process on the bench's stack and task queue; stopped by SIGTERM."""

    def __init__(self, settings, portal: Signer, operator: str, api_key: str, log_level: str):
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder = OUT / "gateway"
        self.log_path = folder / "serve.log"
        keys_file = folder / "api-keys.toml"
        portal_file = folder / f"{portal.identity}.key.json"
        _write_private(
            keys_file, f"{json.dumps(operator)} = {json.dumps(api_key_digest(api_key))}\n"
        )
        _write_private(portal_file, json.dumps(portal.jwk()))
        self.env = {
            **os.environ,
            "CASN_DATA_DIR": str(settings.data_dir),
            "CASN_TEMPORAL_PORT": str(settings.temporal_port),
            "CASN_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
            "CASN_POSTGRES_PORT": str(settings.postgres_port),
            "CASN_TASK_QUEUE": settings.task_queue,
            "CASN_HTTP_HOST": "127.0.0.1",
            "CASN_HTTP_PORT": str(self.port),
            "CASN_GATEWAY_API_KEYS_FILE": str(keys_file),
            "CASN_PORTAL_KEY_FILE": str(portal_file),
            "CASN_PORTAL_IDENTITY": portal.identity,
            # The burst comes from one address: a per-address limit would measure the limiter.
            "CASN_PORTAL_RATE_PER_MINUTE": "100000000",
            # and from one API key: the service API's per-key limit would too.
            "CASN_REGISTRATION_RATE_PER_MINUTE": "1000000",
            "CASN_LOG_LEVEL": log_level,
            "CASN_LOG_FORMAT": "json",
        }
        self.proc: subprocess.Popen | None = None

    async def __aenter__(self) -> GatewayProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "serve.py")],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as probe:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the gateway stopped (exit {self.proc.returncode}); last lines of "
                        f"{self.log_path}:\n{self._tail()}"
                    )
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not answer in 90 s:\n{self._tail()}")
                await asyncio.sleep(0.2)

    async def __aexit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self._log.close()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])


# --- the bursts ---------------------------------------------------------------------------------


async def _burst(
    name: str,
    regs: list[Registration],
    clients: int,
    one: Callable[[int, Registration], Awaitable[str]],
    progress: Progress | None,
) -> Burst:
    """`clients` workers take the registrations in turn; `one(worker, reg)` answers registered,
    refused or an error kind."""
    out = Burst(name)
    queue: asyncio.Queue[Registration] = asyncio.Queue()
    for reg in regs:
        queue.put_nowait(reg)
    task = progress.add_task(name, total=len(regs)) if progress else None

    async def worker(k: int) -> None:
        while True:
            try:
                reg = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            outcome = await one(k, reg)
            out.latencies_ms.append((time.perf_counter() - t) * 1000)
            if outcome == "registered":
                out.accepted += 1
            elif outcome == "refused":
                out.refused += 1
            else:
                out.errors[outcome] += 1
            if progress is not None:
                progress.advance(task)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    out.elapsed = time.perf_counter() - t0
    return out


def direct(api: RecruitmentApi, config: RoundConfig, portal: str):
    """A registration straight to the engine, as the gateway itself makes it."""

    async def one(_: int, reg: Registration) -> str:
        try:
            result = await api.register(config, reg, portal)
        except Exception as exc:  # noqa: BLE001 - counted by kind, shown after the run
            return type(exc).__name__
        return "registered" if result.status == "registered" else result.status

    return one


def through_http(http: list[httpx.AsyncClient], round_id: str, api_key: str):
    """A registration through the gateway: client `k` posts it with the operator's API key."""
    url = f"/api/v1/rounds/{round_id}/registrations"
    headers = {"Authorization": f"Bearer {api_key}"}

    async def one(k: int, reg: Registration) -> str:
        try:
            r = await http[k].post(url, json=reg.model_dump(mode="json"), headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if r.status_code == 200:
            return "registered" if r.json()["status"] == "registered" else "repeat"
        if r.status_code == 409:
            return "refused"
        return f"HTTP {r.status_code}"

    return one


async def wait_admitted(pool, round_id: str, count: int, timeout: float = 600) -> float:
    """Seconds until the read model shows `count` journeys of the round past registration."""
    t0 = time.monotonic()
    while True:
        n = await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1 AND stage = 'admin_check'",
            round_id,
        )
        if n >= count:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"round {round_id}: {n} of {count} journeys admitted in {timeout} s")
        await asyncio.sleep(0.1)


REGISTER_CONCURRENCY = 32


@dataclass
class RoundInAdministration:
    """A keyed round of the example regency in its administration phase, its applicants admitted
    (gateway-batch and announce-gateway)."""

    api: RecruitmentApi  # holds every identity's key
    keyring: Keyring
    config: RoundConfig
    ids: list[str]  # the registration numbers of those registered
    operator: str
    verifier: str
    portal: Signer


async def round_in_administration(ctx, kind: str, count: int, seed: int) -> RoundInAdministration:
    """A fresh keyed round (`kind` in its id) with `count` applicants registered straight to the
    engine (the rules refuse a few), every one admitted, and registration closed by its operator:
    the round's administration phase has begun. `ctx` is bench.py's stack context."""
    reporters = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["reporters"]
    keyring = Keyring(
        [Signer.generate(i) for i in sorted({i for v in reporters.values() for i in v})]
    )
    config, path = keyed_round(kind, keyring)
    round_id = config.round_id
    operator = config.reporters["operator"][0]
    portal = keyring.signers[config.reporters["portal"][0]]
    api = RecruitmentApi(
        ctx.app.client, ctx.settings.task_queue, ctx.app.keys.pseudonym_key, keyring=keyring
    )
    await api.create_round(path, operator)
    console.print(f"registering {count} applicants straight to the engine ...")
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(reg) -> str | None:
        async with gate:
            result = await api.register(config, reg, portal.identity)
        return result.applicant_id if result.status == "registered" else None

    found = await asyncio.gather(*(one(r) for r in applicants(config, count, seed)))
    ids = [a for a in found if a]
    await wait_admitted(ctx.pool, round_id, len(ids))
    await api.command(
        round_id,
        CloseWindow(
            report_id="bench-close-registration",
            reported_by=operator,
            window="registration",
            reason="bench: every applicant registered",
        ),
    )
    deadline = time.monotonic() + 180
    while (await api.round_state(round_id)).phase != "administration":
        if time.monotonic() > deadline:
            raise RuntimeError(f"round {round_id} never reached its administration phase")
        await asyncio.sleep(0.5)
    return RoundInAdministration(
        api, keyring, config, ids, operator, config.reporters["admin"][0], portal
    )


# --- the status page under load -----------------------------------------------------------------


@dataclass
class StatusProbe:
    """What is read as "the applicant's status page", and how."""

    label: str
    get: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


PORTAL_PASSWORD = "kata-sandi-bench-2027"


async def portal_session(http: httpx.AsyncClient, round_id: str, reg: Registration) -> bool:
    """Register `reg` through the portal's form (which opens a session) and read /status once:
    True when the portal answered the status page to this client's session cookie."""
    try:
        form_page = await http.get("/daftar", params={"round": round_id})
        token = re.search(r'name="csrf_token" value="([^"]*)"', form_page.text)
        if form_page.status_code != 200 or token is None:
            return False
        fields = {
            "csrf_token": html.unescape(token.group(1)),
            "round": round_id,
            "nik": reg.nik,
            "name": reg.name,
            "birth_date": reg.birth_date.isoformat(),
            "gender": reg.gender.value,
            "education_level": reg.education_level,
            "major": reg.major,
            "gpa": str(reg.gpa),
            "formasi_code": reg.formasi_code,
            "category": reg.category.value,
            "citizen": "ya",
            "password": PORTAL_PASSWORD,
            "password_again": PORTAL_PASSWORD,
        }
        registered = await http.post("/daftar", data=fields)
        if registered.status_code not in (200, 201):
            return False
        return (await http.get("/status")).status_code == 200
    except httpx.HTTPError:
        return False


async def choose_status_probe(
    viewers: list[httpx.AsyncClient],
    round_id: str,
    applicant: str,
    candidates: list[Registration],
) -> StatusProbe:
    """The portal's status page (GET /status with the session of an applicant who registered
    through the portal) if this build has one; else the public lookup by registration number;
    else the gateway's readiness check (one read-model query through the same process), named
    as the stand-in it is."""
    pending = iter(candidates)  # a few are ineligible: the next one is tried
    sessions = 0
    for viewer in viewers:
        for reg in pending:
            if await portal_session(viewer, round_id, reg):
                sessions += 1
                break
        if sessions == 0:
            break  # the first viewer found no portal: the others would not either
    if sessions == len(viewers):
        return StatusProbe("GET /status (the portal, logged in)", lambda c, a: c.get("/status"))
    lookup = f"/pengumuman/{round_id}/cari"
    r = await viewers[0].get(lookup, params={"nomor": applicant})
    if r.status_code == 200:
        return StatusProbe(
            f"GET {lookup}?nomor=... (public lookup)",
            lambda c, a: c.get(lookup, params={"nomor": a}),
        )
    return StatusProbe(
        "GET /healthz (stand-in: no status page or lookup in this build)",
        lambda c, a: c.get("/healthz"),
    )


async def _probe_loop(
    probe: StatusProbe,
    http: httpx.AsyncClient,
    targets: list[str],
    stop: asyncio.Event,
    out: list[float],
    failures: Counter,
    interval: float,
) -> None:
    """One applicant refreshing their status page every `interval` seconds while the burst runs."""
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        try:
            r = await probe.get(http, targets[i % len(targets)])
            if r.status_code == 200:
                out.append((time.perf_counter() - t) * 1000)
            else:
                failures[f"HTTP {r.status_code}"] += 1
        except httpx.HTTPError as exc:
            failures[type(exc).__name__] += 1
        i += 1
        await asyncio.sleep(interval)


async def _state_loop(
    client,
    round_id: str,
    targets: list[str],
    stop: asyncio.Event,
    out: list[float],
    interval: float,
) -> None:
    """The journey's state as a status page reading the engine would ask for it."""
    i = 0
    while not stop.is_set():
        handle = client.get_workflow_handle(
            journey_workflow_id(round_id, targets[i % len(targets)])
        )
        t = time.perf_counter()
        await JOURNEY_STATE.ask(handle)
        out.append((time.perf_counter() - t) * 1000)
        i += 1
        await asyncio.sleep(interval)


# --- the run ------------------------------------------------------------------------------------


async def run_gateway(
    ctx,
    size: int,
    clients: int,
    seed: int,
    status_clients: int,
    http_first: bool,
    gateway_log_level: str,
    repeat: int = 1,
    status_interval: float = 0.5,
) -> dict:
    """Both bursts in one run, then the comparison. `ctx` is bench.py's stack context."""
    client, settings, pool = ctx.app.client, ctx.settings, ctx.pool
    reporters = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["reporters"]
    keyring = Keyring(
        [Signer.generate(i) for i in sorted({i for v in reporters.values() for i in v})]
    )
    direct_config, direct_path = keyed_round("GD", keyring)
    http_config, http_path = keyed_round("GH", keyring)
    operator = direct_config.reporters["operator"][0]
    portal = keyring.signers[direct_config.reporters["portal"][0]]
    api = RecruitmentApi(
        client, settings.task_queue, ctx.app.keys.pseudonym_key, keyring=Keyring([portal])
    )
    operator_api = RecruitmentApi(
        client, settings.task_queue, ctx.app.keys.pseudonym_key, keyring=keyring
    )
    await operator_api.create_round(direct_path, operator)
    await operator_api.create_round(http_path, operator)
    order = ["http", "direct"] if http_first else ["direct", "http"]
    # ABBA...: each repetition reverses the order, so that a drift in the machine's load
    # weighs on both paths alike.
    legs = [name for i in range(repeat) for name in (order if i % 2 == 0 else order[::-1])]
    regs = applicants(direct_config, WARM_UP + size * repeat + 4 * status_clients, seed)
    warm = regs[:WARM_UP]
    api_key = secrets.token_urlsafe(32)

    async with GatewayProcess(settings, portal, operator, api_key, gateway_log_level) as gw:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        http = [
            httpx.AsyncClient(base_url=gw.url, timeout=120, limits=limits) for _ in range(clients)
        ]
        viewers = [httpx.AsyncClient(base_url=gw.url, timeout=30) for _ in range(status_clients)]
        try:
            paths = {
                "direct": (direct_config, direct(api, direct_config, portal.identity)),
                "http": (http_config, through_http(http, http_config.round_id, api_key)),
            }
            admitted: dict[str, int] = {}
            for name in order:  # warm-up: not counted
                config, one = paths[name]
                warm_run = await _burst(f"{name} warm-up", warm, min(clients, WARM_UP), one, None)
                admitted[name] = warm_run.accepted
                await wait_admitted(pool, config.round_id, admitted[name])
            warm_ids = [
                r["applicant_id"]
                for r in await pool.fetch(
                    "SELECT applicant_id FROM applicants WHERE round_id = $1",
                    http_config.round_id,
                )
            ]
            # The viewers' own registrations come after every burst's: no NIK is used twice.
            viewer_regs = regs[WARM_UP + size * repeat :]
            probe = await choose_status_probe(
                viewers, http_config.round_id, warm_ids[0], viewer_regs
            )

            results = {name: Burst(name) for name in order}
            # The viewers read during both paths' bursts, so that both carry the same extra load.
            status_ms: dict[str, list[float]] = {name: [] for name in order}
            state_ms: dict[str, list[float]] = {name: [] for name in order}
            status_failures: Counter = Counter()
            done = Counter()
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress:
                for name in legs:
                    config, one = paths[name]
                    batch = regs[WARM_UP + size * done[name] : WARM_UP + size * (done[name] + 1)]
                    done[name] += 1
                    stop = asyncio.Event()
                    watchers = [
                        asyncio.create_task(
                            _probe_loop(
                                probe,
                                v,
                                warm_ids,
                                stop,
                                status_ms[name],
                                status_failures,
                                status_interval,
                            )
                        )
                        for v in viewers
                    ] + [
                        asyncio.create_task(
                            _state_loop(
                                client,
                                http_config.round_id,
                                warm_ids,
                                stop,
                                state_ms[name],
                                status_interval,
                            )
                        )
                    ]
                    with CpuMeter(settings) as cpu:
                        gw_cpu0 = _process_cpu(gw.pid())
                        leg = await _burst(
                            f"{name}: {len(batch)} registrations, {clients} clients",
                            batch,
                            clients,
                            one,
                            progress,
                        )
                        gw_cpu = _process_cpu(gw.pid()) - gw_cpu0
                    stop.set()
                    await asyncio.gather(*watchers)
                    result = results[name]
                    result.add(leg)
                    deltas = cpu.deltas()
                    result.cpu.update(
                        {
                            "worker + load process": deltas["worker"],
                            "Temporal server": deltas["temporal"],
                            "PostgreSQL": deltas["postgres"],
                            "gateway process": gw_cpu,
                        }
                    )
                    admitted[name] += leg.accepted
                    result.at_rest = max(
                        result.at_rest, await wait_admitted(pool, config.round_id, admitted[name])
                    )
        finally:
            for c in [*http, *viewers]:
                await c.aclose()

    d, h = results["direct"], results["http"]
    for r in (d, h):
        print_table(f"registration burst, {r.path}", r.rows())
        if r.errors:
            console.print(f"[yellow]{r.path} errors: {dict(r.errors)}[/]")
    ratio = h.rate / d.rate if d.rate else float("nan")
    status_p95 = pct(status_ms["http"], 95)
    # CPU of every process per accepted registration: steadier than rates on a shared machine,
    # and what the throughput ratio comes to when the machine's cores are the limit.
    cpu_d = 1000 * sum(d.cpu.values()) / max(d.accepted, 1)
    cpu_h = 1000 * sum(h.cpu.values()) / max(h.accepted, 1)
    viewers_note = (
        f"{status_clients} viewers, each reading every {status_interval:g} s after its last answer"
    )
    summary = {
        "registrations per path (after a warm-up of 20)": f"{size * repeat}"
        + (f" ({repeat} bursts of {size})" if repeat > 1 else ""),
        "concurrent clients": clients,
        "order": ", ".join(legs),
        "direct: accepted/s, p95": f"{d.rate:.1f}/s, {pct(d.latencies_ms, 95):.0f} ms",
        "HTTP: accepted/s, p95": f"{h.rate:.1f}/s, {pct(h.latencies_ms, 95):.0f} ms",
        "HTTP ÷ direct throughput (target ≥ 0.85)": f"{ratio:.2f} "
        f"({'met' if ratio >= THROUGHPUT_TARGET else 'not met'})",
        "CPU per accepted registration, all processes: direct / HTTP": (
            f"{cpu_d:.1f} / {cpu_h:.1f} ms (HTTP +{100 * (cpu_h / cpu_d - 1):.0f}%; the ratio "
            f"where cores are the limit: {cpu_d / cpu_h:.2f})"
        ),
        "status page": f"{probe.label}; {viewers_note}",
        "status page p50 / p95 while the gateway takes the HTTP burst (target p95 < 100 ms)": (
            f"{pct(status_ms['http'], 50):.0f} / {status_p95:.0f} ms "
            f"({'met' if status_p95 < STATUS_TARGET_MS else 'not met'}; "
            f"{len(status_ms['http'])} reads)"
        ),
        "status page p50 / p95 during the direct burst (the gateway idle but for the viewers)": (
            f"{pct(status_ms['direct'], 50):.0f} / {pct(status_ms['direct'], 95):.0f} ms"
        ),
        "status page failures": dict(status_failures) or "none",
        "journey state query (from the bench process) p50 / p95, HTTP burst / direct burst": (
            f"{pct(state_ms['http'], 50):.0f} / {pct(state_ms['http'], 95):.0f} ms, "
            f"{pct(state_ms['direct'], 50):.0f} / {pct(state_ms['direct'], 95):.0f} ms"
        ),
    }
    print_table("gateway vs straight to the engine", summary)
    return {
        "direct": {**d.rows(), "rate": d.rate},
        "http": {**h.rows(), "rate": h.rate},
        "ratio": ratio,
        "status_p95_ms": status_p95,
        **summary,
    }


def _process_cpu(pid: int | None) -> float:
    import psutil

    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0
