"""What a batch of reports saves through the HTTP gateway: the same signed administrative results
sent one per request and in batches (`POST /api/v1/rounds/{round}/reports`), in one run, legs in
ABBA order (one per request, batches, batches, one per request) so that a drift in the machine's
load weighs on both.

The gateway is `serve.py` in a process of its own, as in `bench gateway`; the worker runs in the
bench process. One keyed round of the example regency; its applicants are registered straight to
the engine, registration is closed, and each leg sends the verifier's results of its own share of
applicants (each message signed by the verifier for its journey beforehand: signing is the
sender's, alike in both ways). One per request: `clients` clients, each posting one report after
another. Batches: enough clients that as many reports are in flight (the route sends 16 of a
batch at once). Between legs the Temporal server is let go quiet.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from bench.common import ROOT, CpuMeter, console, pct, print_table
from bench.gateway import (
    OUT,
    GatewayProcess,
    _process_cpu,
    _write_private,
    round_in_administration,
)
from domain.messages import AdminReport
from domain.signing import Keyring
from gateway.service_api import BATCH_CONCURRENCY, MAX_BATCH
from workflows.ids import journey_workflow_id


class Leg:
    """One leg's outcome: reports acknowledged, statuses, latencies (per request), CPU."""

    def __init__(self, way: str, reports: int) -> None:
        self.way = way
        self.reports = reports
        self.statuses: Counter = Counter()
        self.latencies_ms: list[float] = []
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}
        self.quiet = ""

    @property
    def rate(self) -> float:
        return self.statuses[200] / self.elapsed if self.elapsed else 0.0


async def _one_by_one(http: list[httpx.AsyncClient], path, items: list[dict], leg: Leg) -> None:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for it in items:
        queue.put_nowait(it)

    async def client(c: httpx.AsyncClient) -> None:
        while not queue.empty():
            it = queue.get_nowait()
            t = time.perf_counter()
            r = await c.post(
                path(it["applicant_id"]),
                json=it["message"],
                headers={"Idempotency-Key": it["message"]["report_id"]},
            )
            leg.latencies_ms.append((time.perf_counter() - t) * 1000)
            leg.statuses[r.status_code] += 1

    await asyncio.gather(*(client(c) for c in http))


async def _batched(
    http: list[httpx.AsyncClient], url: str, items: list[dict], size: int, leg: Leg
) -> None:
    queue: asyncio.Queue[list[dict]] = asyncio.Queue()
    for i in range(0, len(items), size):
        queue.put_nowait(items[i : i + size])

    async def client(c: httpx.AsyncClient) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            t = time.perf_counter()
            r = await c.post(url, json={"items": batch})
            leg.latencies_ms.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                leg.statuses[r.status_code] += len(batch)
                continue
            leg.statuses.update(item["status"] for item in r.json()["results"])

    await asyncio.gather(*(client(c) for c in http))


CLI_CONCURRENCY = 100  # rows in flight of the operator's CLI: fills its batches of 100


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the CLI's run, once it ends)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _through_cli(
    url: str, round_id: str, verifier: str, keyring: Keyring, api_key: str, items, k: int, leg: Leg
) -> None:
    """The operator's way: the leg's reports as a CSV file, sent by `starter.py report admin
    --gateway` in a process of its own (it signs each row itself, as an operator's run does)."""
    folder = OUT / "gateway" / f"cli-leg-{k}"
    folder.mkdir(parents=True, exist_ok=True)
    sheet = folder / "admin.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["report_id", "applicant_id", "findings"])
        writer.writerows([it["message"]["report_id"], it["applicant_id"], ""] for it in items)
    key_file = folder / "verifier.key.json"
    _write_private(key_file, json.dumps(keyring.signers[verifier].jwk()))
    api_key_file = folder / "api-key"
    _write_private(api_key_file, api_key)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env |= {"CASN_DATA_DIR": str(folder / "data"), "CASN_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "starter.py"), "report", "admin", round_id, str(sheet),
        "--as", verifier, "--key", str(key_file), "--errors", str(folder / "refused.csv"),
        "--gateway", url, "--api-key-file", str(api_key_file),
        "--concurrency", str(CLI_CONCURRENCY),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(
            f"starter.py report --gateway exited {proc.returncode}:\n{out.decode()[-2000:]}\n"
            f"{err.decode()[-2000:]}"
        )
    leg.statuses[200] += len(items)  # exit 0: every row accepted (a refusal exits 1)


async def run_gateway_batch(
    ctx,
    size: int,
    clients: int,
    batch: int,
    repeat: int,
    seed: int,
    quiet: Callable[[], Awaitable[str]],
    gateway_log_level: str = "INFO",
    cli: bool = False,
) -> dict:
    """Every leg, then the comparison; `ctx` is bench.py's stack context, `quiet` its wait for a
    quiet server."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"--batch {batch} is not between 1 and {MAX_BATCH}")
    settings = ctx.settings
    ways = ("one", "batch", "cli") if cli else ("one", "batch")
    legs = [w for i in range(repeat) for w in (ways if i % 2 == 0 else ways[::-1])]
    wanted = size * len(legs)
    # About 3% of the example's applicants are refused by the rules: register a few more.
    opened = await round_in_administration(ctx, "GR", math.ceil(wanted * 1.08) + 10, seed)
    keyring, round_id, ids = opened.keyring, opened.config.round_id, opened.ids
    verifier, portal = opened.verifier, opened.portal
    if len(ids) < wanted:
        raise RuntimeError(f"only {len(ids)} of the {wanted} applicants needed were registered")
    items = []
    for aid in ids[:wanted]:
        message = AdminReport(report_id=f"adm-{aid}", reported_by=verifier)
        signed = keyring.sign(message, journey_workflow_id(round_id, aid))
        items.append(
            {"applicant_id": aid, "kind": "admin", "message": signed.model_dump(mode="json")}
        )

    api_key = secrets.token_urlsafe(32)
    batch_clients = max(1, math.ceil(clients / BATCH_CONCURRENCY))
    results: list[Leg] = []
    async with GatewayProcess(settings, portal, verifier, api_key, gateway_log_level) as gw:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        headers = {"Authorization": f"Bearer {api_key}"}
        http = [
            httpx.AsyncClient(base_url=gw.url, timeout=300, limits=limits, headers=headers)
            for _ in range(clients)
        ]
        try:
            single = f"/api/v1/rounds/{round_id}/applicants/{{}}/admin".format
            url = f"/api/v1/rounds/{round_id}/reports"
            for k, way in enumerate(legs):
                share = items[k * size : (k + 1) * size]
                leg = Leg(way, len(share))
                leg.quiet = await quiet()
                with CpuMeter(settings) as cpu:
                    gw0 = _process_cpu(gw.pid())
                    t0 = time.perf_counter()
                    cli0 = _children_cpu()
                    if way == "one":
                        await _one_by_one(http, single, share, leg)
                    elif way == "batch":
                        await _batched(http[:batch_clients], url, share, batch, leg)
                    else:
                        await _through_cli(
                            gw.url, round_id, verifier, keyring, api_key, share, k, leg
                        )
                    leg.elapsed = time.perf_counter() - t0
                    gw_cpu = _process_cpu(gw.pid()) - gw0
                    cli_cpu = _children_cpu() - cli0
                deltas = cpu.deltas()
                leg.cpu = {
                    "gateway process": gw_cpu,
                    "worker + load process": deltas["worker"] + cli_cpu,
                    "Temporal server": deltas["temporal"],
                    "PostgreSQL": deltas["postgres"],
                }
                results.append(leg)
                console.print(
                    f"leg {k + 1} ({way}): {leg.statuses[200]} of {leg.reports} acknowledged in "
                    f"{leg.elapsed:.1f} s, {leg.rate:.1f}/s"
                )
        finally:
            for c in http:
                await c.aclose()

    def summed(way: str) -> dict:
        mine = [r for r in results if r.way == way]
        acked = sum(r.statuses[200] for r in mine)
        elapsed = sum(r.elapsed for r in mine)
        cpu: Counter = Counter()
        for r in mine:
            cpu.update(r.cpu)
        statuses: Counter = Counter()
        for r in mine:
            statuses.update(r.statuses)
        lat = [x for r in mine for x in r.latencies_ms]
        return {
            "acked": acked,
            "rate": acked / elapsed if elapsed else 0.0,
            "elapsed": elapsed,
            "cpu": dict(cpu),
            "statuses": dict(statuses),
            "latency": (pct(lat, 50), pct(lat, 95)) if lat else (0.0, 0.0),
            "requests": len(lat),
            "rates": [f"{r.rate:.1f}" for r in mine],
            "quiet": [r.quiet for r in mine],
        }

    one, many = summed("one"), summed("batch")
    rows = {}
    labelled = [("one per request", one), (f"batches of {batch}", many)]
    if cli:
        labelled.append(
            (f"starter.py report --gateway, --concurrency {CLI_CONCURRENCY}", summed("cli"))
        )
    for label, s in labelled:
        per = {k: 1000 * v / max(s["acked"], 1) for k, v in s["cpu"].items()}
        rows[f"{label}: acknowledged / statuses"] = f"{s['acked']} / {s['statuses']}"
        rows[f"{label}: reports/s (each leg)"] = f"{s['rate']:.1f} ({', '.join(s['rates'])})"
        rows[f"{label}: request latency p50 / p95"] = (
            f"{s['latency'][0]:.0f} / {s['latency'][1]:.0f} ms"
            if s["requests"]
            else "not timed (the CLI's own requests)"
        )
        rows[f"{label}: CPU per report, gateway / worker+load / Temporal / PostgreSQL"] = (
            " / ".join(f"{per.get(k, 0.0):.2f}" for k in s["cpu"]) + " ms"
        )
        rows[f"{label}: CPU per report, all processes"] = f"{sum(per.values()):.2f} ms"
        rows[f"{label}: wait for a quiet server before each leg"] = "; ".join(s["quiet"])
    gw_one = one["cpu"]["gateway process"] / max(one["acked"], 1)
    gw_many = many["cpu"]["gateway process"] / max(many["acked"], 1)
    all_one = sum(one["cpu"].values()) / max(one["acked"], 1)
    all_many = sum(many["cpu"].values()) / max(many["acked"], 1)
    rows["batches ÷ one per request: reports/s"] = (
        f"{many['rate'] / one['rate']:.2f}" if one["rate"] else "n/a"
    )
    rows["batches ÷ one per request: gateway CPU per report"] = (
        f"{gw_many / gw_one:.2f}" if gw_one else "n/a"
    )
    rows["batches ÷ one per request: CPU per report, all processes"] = (
        f"{all_many / all_one:.2f}" if all_one else "n/a"
    )
    if cli:
        by_cli = summed("cli")
        rows["starter.py --gateway ÷ one per request: reports/s"] = (
            f"{by_cli['rate'] / one['rate']:.2f}" if one["rate"] else "n/a"
        )
    rows["clients: one per request / batches"] = f"{clients} / {batch_clients}"
    rows["order"] = ", ".join(legs)
    print_table(f"{size} reports a leg through the gateway: one per request and in batches", rows)
    return {"size": size, "batch": batch, "one": one, "batches": many, **rows}
