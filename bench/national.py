"""A national round at reduced scale (issue 17 item 2): instansi rounds joining one national
schedule, a national registration burst with NIKs tried in a second instansi, and every round
played to its end in parallel, each by its own committee (bench/rounds.py's RoundDriver)."""

from __future__ import annotations

import asyncio
import random
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tomli_w
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

import bench.rounds as rounds
from auditing.history import offers_of, recorded, replay, round_histories
from bench.common import CpuMeter, pct
from bench.rounds import WINDOWS, RoundDriver, applicants, bench_config
from client.api import RecruitmentApi, RefusedError, raise_if_cancelled
from client.national import national_applicant_id, national_funnel
from domain.config import RoundConfig, parse_round_config
from domain.messages import CloseWindow
from domain.registration import Registration
from scripts.count_actions import count_run
from workflows.ids import claim_workflow_id, journey_workflow_id

# Fifty committees each looking at the read model every 50 ms would be a thousand queries a
# second; a committee of the national round looks twice a second.
NATIONAL_POLL = 0.5


def national_file(national_id: str, start: datetime, out_dir: Path) -> Path:
    """The national schedule: the bench rounds' first four windows (an hour each), as they are."""
    doc = {
        "national_id": national_id,
        "name": "Seleksi CPNS Nasional (bench)",
        "rule_version": "2024.1",
        "schedule": {
            name: {
                "opens": start + timedelta(hours=i),
                "closes": start + timedelta(hours=i + 1),
            }
            for i, name in enumerate(WINDOWS[:4])
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{national_id}.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def instansi_config(
    national_id: str, index: int, now: datetime, out_dir: Path
) -> tuple[RoundConfig, Path]:
    """The example regency round as instansi `index` of the national round."""
    _, path = bench_config(f"{national_id}-I{index:03d}", now, out_dir=out_dir)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["instansi"] = f"Pemerintah Kabupaten Bench {index:03d}"
    doc["national_round"] = national_id
    text = tomli_w.dumps(doc)
    path.write_text(text, encoding="utf-8")
    return parse_round_config(tomllib.loads(text), "bench round"), path


class Committee(RoundDriver):
    """One instansi's committee: reports go through a gate every committee of the national round
    shares, and one whose update timed out at the RPC (the worker behind under load) is sent again
    with the same report id, which the journey acknowledges once."""

    def __init__(self, *args, gate: asyncio.Semaphore, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.timeouts = 0

    async def _again(self, send) -> None:
        for _ in range(10):
            try:
                await send()
                return
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                raise_if_cancelled(exc)
                self.timeouts += 1
                await asyncio.sleep(1.0)
        await send()

    async def wait_phase(self, phase: str) -> None:
        """As RoundDriver's, with a query that times out (the worker behind) asked again."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if (await self.api.round_state(self.round_id)).phase == phase:
                    return
            except RPCError:
                self.timeouts += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench: round never reached phase {phase}")
            await asyncio.sleep(rounds.POLL)

    async def send_all(self, jobs: list[tuple[str, object]]) -> float:
        async def one(job) -> None:
            async with self.gate:
                try:
                    await self._again(lambda: self.api.report(self.round_id, *job))
                except RefusedError as exc:
                    self.refused.append(str(exc))

        t0 = time.monotonic()
        await asyncio.gather(*(one(j) for j in jobs))
        return time.monotonic() - t0

    async def close(self, window: str) -> None:
        command = CloseWindow(
            report_id=f"bench-close-{window}",
            reported_by=self.reporters["operator"],
            window=window,
            reason="bench: every result is in",
        )
        await self._again(lambda: self.api.command(self.round_id, command))


async def play_after_registration(driver: RoundDriver) -> Counter:
    """One instansi's committee, from the close of registration to the end of its round.

    As RoundDriver.play_to_skd_ranking after its registrations, with the demo's spread of SKD
    scores: some fail their threshold and most fall outside the 3 x quota cut, as in a real round.
    """
    return await driver.run_steps(rounds.STEPS)


async def run_national(
    api: RecruitmentApi,
    pool,
    out_dir: Path,
    instansi: int,
    size: int,
    again: float,
    concurrency: int,
    seed: int,
    cpu_sample=None,
    registration_only: bool = False,
) -> dict:
    """Create, register and play a national round; return its figures. With
    `registration_only`, stop once every registered journey has its read-model row."""
    rounds.POLL = NATIONAL_POLL
    rng = random.Random(seed)
    now = datetime.now(UTC)
    national_id = f"BENCH-NAT-{now:%H%M%S}-{rng.randrange(16**4):04x}"
    await api.national.create(national_file(national_id, now - timedelta(minutes=1), out_dir), "op")
    t = time.monotonic()
    configs = []
    for i in range(instansi):
        config, path = instansi_config(national_id, i, now, out_dir)
        await api.create_round(path, config.reporters["operator"][0])
        configs.append(config)
    created = time.monotonic() - t

    # The national burst: every applicant of every instansi, shuffled, then a share of them again
    # in another instansi: the same registration (every instansi has the example's formasi), so
    # that the rules would take it and only the national claim can refuse it.
    per_round = size // instansi
    regs: list[tuple[RoundConfig, Registration]] = []
    seen: set[str] = set()
    for config in configs:
        for reg in applicants(config, per_round, rng.randrange(2**32)):
            if reg.nik not in seen:  # random NIKs of two instansi may meet: keep one person
                seen.add(reg.nik)
                regs.append((config, reg))
    rng.shuffle(regs)
    elsewhere = [
        (rng.choice([c for c in configs if c is not config]), reg)
        for config, reg in rng.sample(regs, int(len(regs) * again))
    ]
    gate = asyncio.Semaphore(concurrency)
    drivers = {
        c.round_id: Committee(api, pool, c, random.Random(seed + i), concurrency, gate=gate)
        for i, c in enumerate(configs)
    }
    latencies: list[float] = []
    outcome: Counter = Counter()
    reasons: Counter = Counter()

    async def register(config: RoundConfig, reg: Registration, second: bool) -> None:
        async with gate:
            began = time.monotonic()
            result = await api.register(config, reg, "sscasn-portal")
            latencies.append(time.monotonic() - began)
        kind = "again elsewhere" if second else "first"
        outcome[f"{kind}: {result.status}"] += 1
        if result.status == "registered":
            drivers[config.round_id].ids[result.applicant_id] = reg
        elif second:
            reasons["nationwide" if "nationwide" in result.refusals[0].reason else "other"] += 1

    before = cpu_sample() if cpu_sample else {}
    t = burst_began = time.monotonic()
    await asyncio.gather(*(register(c, r, False) for c, r in regs))
    burst_s = time.monotonic() - t
    # The second tries after the first registrations: each finds its NIK claimed.
    await asyncio.gather(*(register(c, r, True) for c, r in elsewhere))
    registration_s = time.monotonic() - t
    registration_cpu = CpuMeter.between(before, cpu_sample()) if cpu_sample else {}
    registered = sum(len(d.ids) for d in drivers.values())
    # Printed now as well: a run that the machine's load stops later still shows its burst.
    print(
        f"national burst: {registered} registered of {len(regs)} in {burst_s:.1f} s "
        f"({registered / burst_s:.1f}/s); second tries {dict(outcome)}, {dict(reasons)}",
        flush=True,
    )
    rows_s = await _rows_written(pool, national_id, registered, burst_began)
    print(
        f"every registered journey's row written {rows_s:.1f} s after the burst began", flush=True
    )
    lat = [x * 1000 for x in latencies]
    burst = {
        "national round": national_id,
        "instansi rounds (5 formasi, 8 seats each)": instansi,
        "rounds created and joined": f"{created:.1f} s",
        "registrations sent (first / again in another instansi)": f"{len(regs)} / {len(elsewhere)}",
        "outcomes": ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())),
        "second tries refused as one NIK nationwide / by the rules (first refused too)": (
            f"{reasons['nationwide']} / {reasons['other']} of {len(elsewhere)}"
        ),
        "registration: elapsed (first tries / with the second)": (
            f"{burst_s:.1f} / {registration_s:.1f} s"
        ),
        "registration: accepted/s (first tries)": f"{registered / burst_s:.1f}",
        "registration: latency p50 / p95 / p99": (
            f"{pct(lat, 50):.0f} / {pct(lat, 95):.0f} / {pct(lat, 99):.0f} ms"
        ),
        "registration: CPU worker+driver / server": (
            f"{registration_cpu.get('worker', 0):.1f} / {registration_cpu.get('temporal', 0):.1f} s"
            if registration_cpu
            else "?"
        ),
        "every registered journey's read-model row, from the burst's start": (
            f"{rows_s:.1f} s: {registered / rows_s:.1f} rows/s end to end"
        ),
        "_registered": registered,
        "_registration_s": burst_s,
    }
    if registration_only:
        claims = await api.client.count_workflows(
            f"RoundId = '{national_id}' AND CasnKind = 'national-claim'"
        )
        burst["claims (one per registered NIK)"] = f"{claims.count} for {registered} registered"
        return burst

    t = time.monotonic()
    for d in drivers.values():
        d.timeout = 1800.0
    ends = await asyncio.gather(*(play_after_registration(d) for d in drivers.values()))
    played_s = time.monotonic() - t

    # Optimalisasi stays within each instansi: every offer a round made is to one of its own
    # applicants, for one of its own formasi.
    offers = outside = 0
    for config in configs:
        own = {f.code for f in config.formasi}
        for offer_id in await _round_offers(api, config.round_id):
            _, _, applicant, to_formasi = offer_id.rsplit("/", 3)
            offers += 1
            outside += to_formasi not in own or applicant not in drivers[config.round_id].ids
    t = time.monotonic()
    async with pool.acquire() as conn:
        _, lines = await national_funnel(api.national, conn, national_id)
    funnel_s = time.monotonic() - t
    codes: Counter = Counter()
    for line in lines:
        codes.update(line.codes)
    claims = await api.client.count_workflows(
        f"RoundId = '{national_id}' AND CasnKind = 'national-claim'"
    )
    claim_actions, journey_actions = await actions_per_applicant(api, national_id, drivers, 20)
    registered_figures = {k: v for k, v in burst.items() if not k.startswith("_")}
    return {
        **registered_figures,
        "claims (one per registered NIK)": f"{claims.count} for {registered} registered",
        "every round from registration's close to its end": f"{played_s:.1f} s",
        "journeys ended": f"{sum(e['ended'] for e in ends)} of {registered}",
        "outcomes (read model)": ", ".join(f"{k} {v}" for k, v in codes.most_common()),
        "engine actions per claim / per journey (20 of each, from histories)": (
            f"{claim_actions:.2f} / {journey_actions:.2f} → the claim adds "
            f"{100 * claim_actions / journey_actions:.0f}%"
        ),
        "reports, closes and phase queries sent again after an RPC timeout": sum(
            d.timeouts for d in drivers.values()
        ),
        "reports refused": sum(len(d.refused) for d in drivers.values()),
        "optimalisasi offers / outside their instansi": f"{offers} / {outside}",
        f"national funnel ({instansi} instansi lines: 1 query, 2 SQL)": f"{funnel_s * 1000:.0f} ms",
        "_registered": registered,
        "_registration_s": burst_s,
    }


async def _rows_written(pool, national_id: str, registered: int, began: float) -> float:
    """Seconds from `began` until the read model holds a row for every registered journey of the
    national round's instansi rounds (each journey's first task writes it)."""
    deadline = time.monotonic() + 1800
    while True:
        rows = await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id LIKE $1", f"{national_id}-I%"
        )
        if rows >= registered:
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: {rows} of {registered} rows after 1800 s")
        await asyncio.sleep(0.2)


async def actions_per_applicant(
    api: RecruitmentApi, national_id: str, drivers: dict[str, RoundDriver], sample: int
) -> tuple[float, float]:
    """Mean Temporal Cloud actions of a claim and of a journey (scripts/count_actions.py), from
    the histories of `sample` applicants drawn evenly over the rounds."""
    picked = [
        (round_id, applicant_id, reg)
        for round_id, d in drivers.items()
        for applicant_id, reg in d.ids.items()
    ][:: max(1, sum(len(d.ids) for d in drivers.values()) // sample)][:sample]
    claims, journeys = [], []
    for round_id, applicant_id, reg in picked:
        claim = claim_workflow_id(
            national_id, national_applicant_id(api.pseudonym_key, national_id, reg.nik)
        )
        for wid, into in ((claim, claims), (journey_workflow_id(round_id, applicant_id), journeys)):
            history = await api.client.get_workflow_handle(wid).fetch_history()
            codec = api.client.data_converter.payload_codec
            into.append(count_run(recorded(history), 0, codec).billable)
    return sum(claims) / len(claims), sum(journeys) / len(journeys)


async def _round_offers(api: RecruitmentApi, round_id: str) -> list[str]:
    """Every optimalisasi offer of the round, over its runs: a round that continued as new in
    optimalisasi (patch optimalisasi-continues) lists only its last run's offers, so its runs are
    replayed (auditing.history.offers_of); a round of one run answers its state query."""
    runs = await round_histories(api.client, round_id, "round")
    if len(runs) == 1:
        state = await _again(lambda: api.round_state(round_id))
        return list(state.offers)
    outcomes = await replay([r.history for r in runs], api.client.data_converter)
    return list(offers_of(outcomes))


async def _again(ask):
    """An answer from the engine, asked again (up to a minute) while its RPC times out."""
    for _ in range(30):
        try:
            return await ask()
        except RPCError:
            await asyncio.sleep(2.0)
    return await ask()
