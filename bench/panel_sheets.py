"""`bench panel-sheets`: a panellist's blind sheet in a round of SIZE applicants at SKB, read the
way `client/panels.py` reads it now (one query of the read model's panel_seats) against the way
it was read before migration 016 (every running journey of the round asked for its panel by
query), in the same run, for every panellist of the pool.

The round is the central example (`examples/round-kementerian.toml`: an interview panel of 3
drawn from a pool of 5), its quotas wide enough that every applicant goes on to SKB. The two
reads must give the same sheet, panellist by panellist: the bench fails otherwise, so it checks
the read model against the journeys' own state too.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime

from apps.demo import CENTRAL_EXAMPLE
from bench.common import console, print_table
from bench.gateway import OUT
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from client.panels import PanelSheetRow, panel_sheet
from domain.config import ComponentKind
from domain.events import recorded_panels
from domain.panels import candidate_code
from domain.protocol import JOURNEY_STATE
from workflows.ids import journey_workflow_id

QUERY_CONCURRENCY = 32  # journeys asked at once by the read before (it asked one at a time)


async def sheet_by_queries(api, round_id: str, panellist: str) -> list[PanelSheetRow]:
    """The sheet as it was read before panel_seats: list the round's running journeys, ask each
    for its state, keep those whose panel (the last draw or change) holds `panellist`."""
    query = f"CasnKind = 'journey' AND RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    prefix = journey_workflow_id(round_id, "")
    ids = sorted(
        {wf.id async for wf in api.client.list_workflows(query) if wf.id.startswith(prefix)}
    )
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(workflow_id: str) -> list[PanelSheetRow]:
        async with gate:
            state = await JOURNEY_STATE.ask(api.client.get_workflow_handle(workflow_id))
        panels = recorded_panels(state.decisions)
        code = candidate_code(api.pseudonym_key, round_id, workflow_id.removeprefix(prefix))
        return [
            PanelSheetRow(candidate=code, formasi_code=state.formasi_code, component=c)
            for c, members in panels.items()
            if panellist in members and state.terminal is None
        ]

    rows = [r for found in await asyncio.gather(*(one(w) for w in ids)) for r in found]
    return sorted(rows, key=lambda r: (r.component, r.candidate))


async def _timed(call, times: int) -> tuple[float, object]:
    """The median seconds of `times` calls, and the last call's answer."""
    spent, answer = [], None
    for _ in range(times):
        t0 = time.perf_counter()
        answer = await call()
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent), answer


async def run_panel_sheets(ctx, size: int, seed: int, reads: int) -> dict:
    """The figures of one run (see the module's docstring)."""
    round_id = new_round_id("PS")
    config, path = bench_config(
        round_id, datetime.now(UTC), quota=size, out_dir=OUT / "rounds", example=CENTRAL_EXAMPLE
    )
    await ctx.api.create_round(path, config.reporters["operator"][0])
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed))
    console.print(f"playing {size} applicants to SKB ...")
    counts = await driver.play_to_skd_ranking(applicants(config, size, seed), strong=True)
    at_skb = counts["skb"]
    deadline = time.monotonic() + 600
    while (
        drawn := await ctx.pool.fetchval(
            "SELECT count(DISTINCT applicant_id) FROM panel_seats WHERE round_id = $1", round_id
        )
    ) < at_skb:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {drawn} of {at_skb} panels reached the read model")
        await asyncio.sleep(1)
    pool_ids = next(
        c.panellists for c in config.skb.components if c.kind == ComponentKind.PANEL and c.assign
    )
    key = ctx.api.pseudonym_key
    read_now, read_before, lengths = [], [], []
    for panellist in pool_ids:
        now_s, now_rows = await _timed(
            lambda p=panellist: panel_sheet(ctx.pool, key, round_id, p), reads
        )
        before_s, before_rows = await _timed(
            lambda p=panellist: sheet_by_queries(ctx.api, round_id, p), 1
        )
        if now_rows != before_rows:
            raise RuntimeError(
                f"{panellist}: the read model's sheet ({len(now_rows)} rows) is not the journeys' "
                f"({len(before_rows)} rows)"
            )
        read_now.append(now_s)
        read_before.append(before_s)
        lengths.append(len(now_rows))
    now_med, before_med = statistics.median(read_now), statistics.median(read_before)
    rows = {
        "applicants at SKB, each with a panel drawn": f"{at_skb:,}",
        "panellists in the pool / rows a sheet (median)": (
            f"{len(pool_ids)} / {statistics.median(lengths):,.0f}"
        ),
        f"sheet from panel_seats, median of {reads} reads, median over panellists": (
            f"{now_med * 1000:.1f} ms"
        ),
        f"sheet by a query to each running journey ({QUERY_CONCURRENCY} at a time)": (
            f"{before_med:.2f} s"
        ),
        "before ÷ now": f"{before_med / now_med:,.0f}" if now_med else "n/a",
        "sheets equal, panellist by panellist": "yes",
    }
    print_table(f"A panellist's sheet in a round of {at_skb:,} at SKB", rows)
    return {"size": size, "at_skb": at_skb, **rows}
