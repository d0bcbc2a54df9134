"""`bench announce-gateway`: an announcement of a round of SIZE applicants published through the
HTTP gateway, drafted there and signed here (docs/ANNOUNCEMENTS.md), against the same
announcement built in-process by the code `starter.py announce` runs, in the same run.

What it measures: the draft's request time and size, the signature's time (in a process of its
own, as on the operator's machine), the signed
publication's request time (the gateway builds the announcement again to check it), and the
in-process build of the same announcement (`draft_announcement`, the build `publish_announcement`
does before it signs), each a few times. The gateway is `serve.py` in its own process, as a
deployment runs it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import time

import httpx

from bench.common import ROOT, console, print_table
from bench.gateway import (
    OUT,
    GatewayProcess,
    RoundInAdministration,
    _write_private,
    round_in_administration,
)
from client.announcements import AnnouncementStage
from client.publication import draft_announcement, from_document
from domain.messages import AdminReport, CloseWindow
from domain.signing import Signer

REPORT_CONCURRENCY = 32


async def _admin_ready(ctx, size: int, seed: int) -> RoundInAdministration:
    """A keyed round of `size` applicants (about), every administrative result in the read
    model and the administration closed."""
    opened = await round_in_administration(ctx, "GA", size, seed)
    api, round_id = opened.api, opened.config.round_id
    console.print(f"{len(opened.ids)} administrative results ...")
    gate = asyncio.Semaphore(REPORT_CONCURRENCY)

    async def one(aid: str) -> None:
        report = AdminReport(report_id=f"adm-{aid}", reported_by=opened.verifier)
        async with gate:
            await api.report(round_id, aid, report)

    await asyncio.gather(*(one(a) for a in opened.ids))
    await api.command(
        round_id,
        CloseWindow(
            report_id="bench-close-administration",
            reported_by=opened.operator,
            window="administration",
            reason="bench: every administrative result in",
        ),
    )
    deadline = time.monotonic() + 300
    while await ctx.pool.fetchval(
        "SELECT count(*) FROM applicants WHERE round_id = $1 AND admin IS NULL AND terminal IS NULL",
        round_id,
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the administrative results never all reached the read model")
        await asyncio.sleep(1)
    return opened


async def _signed_elsewhere(document: dict, signer: Signer) -> tuple[float, dict]:
    """The operator's part in a process of its own (bench/sign_draft.py), as on their machine:
    not in this process, whose worker's large heap makes every collection long. Its own seconds
    (parse, sign, hash) and the signature to send."""
    folder = OUT / "announce-gateway"
    draft, key, out = folder / "draft.json", folder / "operator.key.json", folder / "signed.json"
    folder.mkdir(parents=True, exist_ok=True)
    draft.write_text(json.dumps(document), encoding="utf-8")
    _write_private(key, json.dumps(signer.jwk()))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bench.sign_draft", str(draft), str(key), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    key.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"signing the draft failed: {done.stderr[-500:]}")
    return float(done.stdout.strip()), json.loads(out.read_text(encoding="utf-8"))


async def run_announce_gateway(ctx, size: int, seed: int, builds: int) -> dict:
    """The figures of one run (see the module's docstring)."""
    opened = await _admin_ready(ctx, size, seed)
    api, round_id, operator = opened.api, opened.config.round_id, opened.operator
    signer = opened.keyring.signers[operator]
    stage = AnnouncementStage.ADMIN

    async def build_here() -> float:
        async with ctx.pool.acquire() as conn:
            t0 = time.perf_counter()
            await draft_announcement(api, conn, round_id, stage, operator)
            return time.perf_counter() - t0

    here_before = [await build_here() for _ in range(builds)]
    api_key = secrets.token_urlsafe(32)
    async with GatewayProcess(ctx.settings, opened.portal, operator, api_key, "WARNING") as gw:
        headers = {"Authorization": f"Bearer {api_key}"}
        base = f"/api/v1/rounds/{round_id}/announcements/{stage.value}"
        async with httpx.AsyncClient(base_url=gw.url, timeout=600, headers=headers) as http:
            t0 = time.perf_counter()
            drafted = await http.post(f"{base}/drafts", json={})
            draft_s = time.perf_counter() - t0
            drafted.raise_for_status()
            draft_bytes = len(drafted.content)
            draft = from_document(drafted.json()["publication"])
            sign_s, body = await _signed_elsewhere(drafted.json()["publication"], signer)
            t0 = time.perf_counter()
            stored = await http.post(base, json=body)
            publish_s = time.perf_counter() - t0
            stored.raise_for_status()
            if not stored.json()["stored"]:
                raise RuntimeError(f"the signed draft was not stored: {stored.text[:300]}")
            t0 = time.perf_counter()
            again = await http.post(f"{base}/drafts", json={})
            again_s = time.perf_counter() - t0
            again.raise_for_status()
    here_after = [await build_here() for _ in range(builds)]
    rows_published = sum(len(f.rows) for f in draft.formasi)
    here = statistics.median(here_before + here_after)
    through = draft_s + sign_s + publish_s
    rows = {
        "applicants with an administrative result (rows published)": f"{rows_published:,}",
        "draft: request time / answer size": f"{draft_s:.2f} s / {draft_bytes / 1024:.0f} KiB",
        "signature, in a process of its own (parse the draft, sign, hash)": f"{sign_s * 1000:.0f} ms",
        "signed publication: request (built again, checked, stored)": f"{publish_s:.2f} s",
        "a draft once published (answers the stored publication)": f"{again_s:.2f} s",
        "through the gateway, draft + sign + publish": f"{through:.2f} s",
        f"in-process build (draft_announcement), median of {len(here_before + here_after)}": (
            f"{here:.2f} s ({', '.join(f'{x:.2f}' for x in here_before + here_after)})"
        ),
        "through the gateway ÷ one in-process build": f"{through / here:.2f}" if here else "n/a",
    }
    print_table(f"The admin announcement of {rows_published:,} rows through the gateway", rows)
    return {"size": size, "rows": rows_published, **rows}
