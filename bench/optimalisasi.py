"""Optimalisasi with many empty seats: what the round's history and state hold per offer.

`python3 run.py bench optimalisasi --seats 300 --accept 0.8`. One regency round, played on the
real stack through RecruitmentApi: every applicant registers for the source formasi
(PK-AP-DISKOMINFO), whose quota is the number of seats, so its SKB cut (3 x quota) sends 3 x
seats to SKB and the final ranking leaves twice the seats lost on rank. PK-AP-BAPPEDA (the
same jabatan, education and majors) has `--seats` seats and no applicant, so every one of them
goes to optimalisasi; the example's other three formasi keep their one seat each, which no
candidate can take (other jabatan), as a real round has seats nobody qualifies for. The bench then answers each offer as it arrives, one
answer every 1/`--answer-rate` s as applicants answer over days (accept with probability
`--accept`, else decline: the seat passes to the next in rank), until no offer is pending and no
new one comes, and reads the round's history and state.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

from bench.common import console, largest_event
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from client.api import RefusedError
from domain.messages import OfferAnswer
from workflows.ids import round_workflow_id

SOURCE, TARGET = "PK-AP-DISKOMINFO", "PK-AP-BAPPEDA"
QUIET = 6  # polls with nothing pending and no new offer: optimalisasi has settled
LOST_AFTER = 60.0  # s an offer's answer is refused before it counts as never taken


async def run_optimalisasi(
    ctx,
    out_dir: Path,
    seats: int,
    accept: float,
    rate: float,
    seed: int,
    concurrency: int,
    history_budget: int | None = None,
    offers_per_run: int | None = None,
    fold_pages_at: int | None = None,
) -> dict:
    from datetime import UTC, datetime

    rng = random.Random(seed)
    round_id = new_round_id("O")
    source_quota = seats  # 2 x seats lose on rank: a declined seat passes to the next
    config, path = bench_config(
        round_id,
        datetime.now(UTC),
        out_dir=out_dir,
        quotas={SOURCE: source_quota, TARGET: seats},
        engine={
            "offer_answer_within": "PT120S",
            **({} if history_budget is None else {"optimalisasi_history_budget": history_budget}),
            **({} if offers_per_run is None else {"optimalisasi_offers_per_run": offers_per_run}),
            **({} if fold_pages_at is None else {"fold_pages_at": fold_pages_at}),
        },
    )
    await ctx.api.create_round(path, config.reporters["operator"][0])
    source = next(f for f in config.formasi if f.code == SOURCE)
    regs = [
        r.model_copy(
            update={
                "formasi_code": SOURCE,
                "major": source.majors[0],  # one PK-AP-BAPPEDA's pool takes too
                "education_level": source.education_level,
                "category": source.category,
                "gpa": max(r.gpa, source.min_gpa),
            }
        )
        for r in applicants(config, 3 * source_quota, seed)
    ]
    driver = RoundDriver(ctx.api, ctx.pool, config, rng, concurrency)
    t0 = time.monotonic()
    counts = await driver.play_to_skd_ranking(regs, strong=True)
    await driver.run_steps(["skb"])  # the offers come with the final ranking: answered below
    played = time.monotonic() - t0
    console.print(f"to the SKB close in {played:.1f} s: {dict(counts)}")

    # Answer every offer as it comes, until optimalisasi settles.
    t1 = time.monotonic()
    answered: dict[str, bool] = {}
    refused_since: dict[str, float] = {}
    quiet, seen = 0, 0
    sem = asyncio.Semaphore(concurrency)

    async def answer(offer_id: str) -> None:
        applicant = offer_id.split("/offer/")[1].split("/")[0]
        yes = rng.random() < accept
        async with sem:
            try:
                await ctx.api.report(
                    round_id,
                    applicant,
                    OfferAnswer(
                        report_id=f"offer-{applicant}",
                        reported_by=config.reporters["portal"][0],
                        accept=yes,
                    ),
                )
                answered[offer_id] = yes
            except RefusedError:
                # The journey has not taken the offer yet: answered at a later poll, or, refused
                # for LOST_AFTER, counted as an offer the journey never took.
                refused_since.setdefault(offer_id, time.monotonic())

    while quiet < QUIET:
        state = await ctx.api.round_state(round_id)
        now = time.monotonic()
        pending = [
            o
            for o, s in state.offers.items()
            if s == "pending" and o not in answered and now - refused_since.get(o, now) < LOST_AFTER
        ]
        quiet = quiet + 1 if state.offers and not pending and len(state.offers) == seen else 0
        seen = len(state.offers)
        tasks = []
        for o in pending:
            tasks.append(asyncio.create_task(answer(o)))
            await asyncio.sleep(1.0 / rate)
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
    settled = time.monotonic() - t1 - QUIET * 1.0

    state = await ctx.api.round_state(round_id)
    # Every run of the round (patch optimalisasi-continues), its decisions re-derived by replay.
    from auditing.history import decisions_of, offers_of, replay, round_histories

    converter = ctx.api.client.data_converter
    runs = [r.history for r in await _round_runs(ctx.api.client, round_id)]
    events = [e for h in runs for e in h.events]
    kinds = Counter(e.event_type for e in events)
    activities = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    )
    size, which = max(largest_event(h) for h in runs)
    allocation_inputs = [
        e.activity_task_scheduled_event_attributes.input.ByteSize()
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "allocate_pages"
    ]
    # Who was offered, as the last run's start carried it (folded past fold_pages_at references).
    last_carry = None
    if len(runs) > 1:
        from domain.messages import RoundCarry, RoundStart

        [last_start] = await converter.decode(
            runs[-1].events[0].workflow_execution_started_event_attributes.input.payloads,
            [RoundStart],
        )
        last_carry = RoundCarry.model_validate(last_start.carry)
    carries = [
        h.events[-1].workflow_execution_continued_as_new_event_attributes.input.ByteSize()
        for h in runs
        if h.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    ]
    state_bytes = len((await converter.encode([state]))[0].SerializeToString())
    outcomes = await replay(runs, converter)
    # Each run's state as it ended, replayed: what its state query answered at its largest.
    run_states = [
        (len((await converter.encode([o.state]))[0].SerializeToString()), len(o.state.offers))
        for o in outcomes
        if o.state is not None
    ]
    decisions = decisions_of(outcomes)
    every_offer = offers_of(outcomes)  # a continued run lists only its own and those pending
    allocated = [d for d in decisions if d.stage == "optimalisasi" and d.outcome == "allocated"]
    statuses = Counter(every_offer.values())
    stopped = next(
        (d.input for d in decisions if (d.stage, d.outcome) == ("optimalisasi", "offers stopped")),
        None,
    )
    stop = (
        "no (within the budget)"
        if stopped is None
        else f"at {stopped['history_length']:,} events, {stopped['offers_made']:,} offers made, "
        f"{sum(stopped['seats_not_offered'].values()):,} seats not offered"
    )
    offers = len(every_offer)
    from temporalio.api.enums.v1 import EventType

    signalled = kinds[EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED]
    from domain.protocol import SEND_OFFERS
    from scripts.record_histories import local_activities

    senders = [
        (run, task)
        for run, h in enumerate(runs)
        for task, kind in local_activities(h)
        if kind == SEND_OFFERS.name
    ]
    tasks = kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    # The auditor's check of the allocations, cuts included (audit.py recompute).
    from auditing.recompute import recompute

    t2 = time.monotonic()
    checked = await recompute(await round_histories(ctx.api.client, round_id), converter)
    differences = checked.differences()
    for line in differences[:5]:
        console.print(f"recompute: {line}")
    cuts = [d.input for d in allocated if "cut_at" in d.input]
    return {
        "round": round_id,
        "applicants registered / to SKB": f"{len(driver.ids):,} / {3 * source_quota:,}",
        "empty seats (+3 nobody can take)": f"{seats:,}",
        "registration to the SKB close": f"{played:.1f} s",
        "offers made": f"{offers:,} (accepted {statuses['accepted']:,}, declined "
        f"{statuses['declined']:,}, pending {statuses['pending']:,})",
        "offers the journey never took (pending for nobody)": f"{statuses['pending']:,}",
        "SKB close to optimalisasi settled": f"{settled:.1f} s",
        "optimalisasi history budget": f"{config.optimalisasi_history_budget:,} events",
        "offers stopped (patch optimalisasi-budget)": stop,
        "allocations cut (offers kept / found; 'share': at the run's share)": ", ".join(
            f"{c['cut_at']}/{c['cut_at'] + sum(c['not_offered'].values())}"
            + (" share" if "share" in c else "")
            for c in cuts
        )
        or "none",
        "optimalisasi offers per run (the rules')": f"{config.optimalisasi_offers_per_run:,}",
        "offered pages carried to the last run (references; offered listed)": (
            "none (one run)"
            if last_carry is None
            else f"{len(last_carry.offered_pages)}; {len(last_carry.offered_tail)} "
            f"(fold_pages_at {config.fold_pages_at})"
        ),
        "each run's offers in its state, at its end": ", ".join(f"{n:,}" for _, n in run_states),
        "each run's state at its end (replayed), largest": (
            f"{max((b for b, _ in run_states), default=0) / 1024:.1f} KiB"
        ),
        "allocations (allocate_pages activities)": f"{activities['allocate_pages']:,}",
        "'allocated' decisions": f"{len(allocated):,}",
        "round runs (continued as new: patch optimalisasi-continues)": f"{len(runs)}",
        "round history: events, every run (the longest run)": (
            f"{len(events):,} ({max(len(h.events) for h in runs):,})"
        ),
        "round history: events per offer": f"{len(events) / max(offers, 1):.2f}",
        "round history: bytes, every run (the largest run)": (
            f"{sum(e.ByteSize() for e in events) / 2**20:.2f} MiB "
            f"({max(sum(e.ByteSize() for e in h.events) for h in runs) / 2**20:.2f} MiB)"
        ),
        "largest allocation input (allocate_pages)": f"{max(allocation_inputs, default=0) / 1024:.1f} KiB",
        "round history: workflow tasks": f"{tasks:,}",
        "round history: signals sent": f"{signalled:,}",
        "offers sent by local activity (patch offers-by-local-activity): markers / tasks": (
            f"{len(senders):,} / {len(set(senders)):,}"
        ),
        "largest event of the round": f"{size / 1024:.1f} KiB ({which})",
        "carried to the next run (continue-as-new input), each": (
            ", ".join(f"{b / 1024:.1f} KiB" for b in carries) or "none"
        ),
        "round's state (query, and its result at the end)": f"{state_bytes / 1024:.1f} KiB",
        "recompute (audit.py) of the round": f"{checked.allocations} allocations, "
        f"{len(differences)} differences, {time.monotonic() - t2:.1f} s",
        "round's decisions, encoded JSON (all runs / the last run's state)": (
            f"{sum(len(d.model_dump_json()) for d in decisions) / 1024:.1f} / "
            f"{sum(len(d.model_dump_json()) for d in state.decisions) / 1024:.1f} KiB"
        ),
        "_offers": offers,
    }


async def _round_runs(client, round_id: str) -> list:
    """The round's runs, once visibility lists the one running now (the last to start)."""
    from auditing.history import round_histories

    handle = client.get_workflow_handle(round_workflow_id(round_id))
    current = (await handle.describe()).run_id
    deadline = time.monotonic() + 30
    while True:
        runs = await round_histories(client, round_id, "round")
        if any(r.run_id == current for r in runs) or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.5)
