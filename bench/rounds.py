"""Drive real rounds through the engine's own updates (a trimmed apps/demo.py, no UI)."""

from __future__ import annotations

import asyncio
import random
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import tomli_w

from apps.demo import EXAMPLE, _score, synthetic_applicants
from bench.common import CpuMeter
from client.api import RecruitmentApi, RefusedError
from domain.codes import AdminDecision
from domain.config import RoundConfig, parse_round_config
from domain.messages import (
    AdminReport,
    CloseWindow,
    FilingReport,
    GateReport,
    LatsarReport,
    SkbScoreReport,
    SkdReport,
)
from domain.registration import Registration

POLL = (
    0.05  # seconds between looks at the read model or the round's phase: the operator acts at once
)
WINDOWS = ["registration", "administration", "skd", "skb", "filing", "latsar"]
# The round's phases in the order it goes through them (workflows/round.py).
PHASE_ORDER = [
    "registration",
    "administration",
    "skd",
    "skb",
    "final_appeal",
    "optimalisasi",
    "filing",
    "latsar",
    "closed",
]
# What the committee and the services do, in order (RoundDriver.run_steps); each is a phase.
STEPS = (
    "registration",
    "administration",
    "skd",
    "skd ranking",
    "skb",
    "final ranking",
    "filing",
    "nip + appointment",
    "latsar",
)


def bench_config(
    round_id: str,
    now: datetime,
    *,
    quota: int | None = None,
    single_formasi: bool = False,
    out_dir: Path,
    window: timedelta = timedelta(hours=1),
    engine: dict[str, int] | None = None,
    quotas: dict[str, int] | None = None,
    example: Path = EXAMPLE,
) -> tuple[RoundConfig, Path]:
    """The example regency round (or `example`), windows opening now (closed early by the driver).

    quota=None keeps the example's quotas; a number sets every formasi's quota.
    single_formasi keeps only the first (general) formasi.
    window is each window's length on the calendar: a run that stops between steps and resumes
    later needs windows that are still open when it comes back.
    engine sets the round file's engine tuning (broadcast_page_size, fold_pages_at); the round
    file validates them.
    quotas sets the named formasi's quotas (after `quota`).
    """
    doc = tomllib.loads(example.read_text(encoding="utf-8"))
    doc["round_id"] = round_id
    start = now - timedelta(minutes=1)
    for i, name in enumerate(WINDOWS):
        doc["schedule"][name] = {
            "opens": start + i * window,
            "closes": start + (i + 1) * window,
        }
    # A bench round cannot wait a CPNS's year of probation (its windows are closed early): ended.
    doc["schedule"]["probation_ends"] = start
    doc["appeal"] = {"window": "PT0.2S", "answer_within": "PT5S"}
    doc["min_registration_days"] = 1  # a registration of minutes, not the rules' 15 days
    doc["offer_answer_within"] = "PT5S"
    if single_formasi:
        doc["formasi"] = doc["formasi"][:1]
    if quota is not None:
        for f in doc["formasi"]:
            f["quota"] = quota
    for f in doc["formasi"]:
        f["quota"] = (quotas or {}).get(f["code"], f["quota"])
    doc.update(engine or {})
    text = tomli_w.dumps(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{round_id}.toml"
    path.write_text(text, encoding="utf-8")
    return parse_round_config(tomllib.loads(text), "bench round"), path


class RoundDriver:
    """Plays the services of one round; every report goes through RecruitmentApi like a real service."""

    def __init__(
        self,
        api: RecruitmentApi,
        pool: asyncpg.Pool,
        config: RoundConfig,
        rng: random.Random,
        concurrency: int = 32,
    ) -> None:
        self.api, self.pool, self.config, self.rng = api, pool, config, rng
        self.round_id = config.round_id
        self.concurrency = concurrency
        self.reporters = {k: v[0] for k, v in config.reporters.items()}
        self.ids: dict[str, Registration] = {}
        self.refused: list[str] = []
        self.phases: dict[str, float] = {}
        self.phase_cpu: dict[str, dict[str, float]] = {}  # phase -> process -> CPU seconds
        self.cpu_sample = None  # set by the harness: a CpuMeter's snapshot
        self.timeout = 600.0  # per wait; raised with the round's size (see play_to_skd_ranking)
        self.step_seed: str | None = None  # see run_steps
        self.found_closed: list[str] = []  # windows a step found closed already (see closed)
        self.registration: dict | None = None  # register()'s figures, once registration ran

    # --- registration ---------------------------------------------------------------------------

    async def _each(self, items, play) -> None:
        """`play` each item, `concurrency` at a time: that many coroutines take turns at one
        iterator. (A task per item waiting at a semaphore would hold 100,000 pending tasks at the
        start of a 100,000-applicant round, which every full garbage collection walks while the
        worker in this process waits.)"""
        items = iter(items)

        async def taker() -> None:
            for item in items:
                await play(item)

        await asyncio.gather(*(taker() for _ in range(self.concurrency)))

    async def register(self, regs: list[Registration]) -> dict:
        latencies: list[float] = []
        refused = 0

        async def one(reg: Registration) -> None:
            nonlocal refused
            t = time.monotonic()
            result = await self.api.register(self.config, reg, "sscasn-portal")
            latencies.append(time.monotonic() - t)
            if result.status == "registered":
                self.ids[result.applicant_id] = reg
            else:
                refused += 1

        t0 = time.monotonic()
        await self._each(regs, one)
        elapsed = time.monotonic() - t0
        return {
            "accepted": len(self.ids),
            "refused": refused,
            "elapsed": elapsed,
            "latencies": latencies,
        }

    # --- read model -------------------------------------------------------------------------------

    async def stage_counts(self) -> Counter:
        rows = await self.pool.fetch(
            "SELECT stage, count(*) AS n FROM applicants WHERE round_id = $1 GROUP BY stage",
            self.round_id,
        )
        return Counter({r["stage"]: r["n"] for r in rows})

    async def stages(self) -> dict[str, str]:
        rows = await self.pool.fetch(
            "SELECT applicant_id, stage FROM applicants WHERE round_id = $1", self.round_id
        )
        return {r["applicant_id"]: r["stage"] for r in rows}

    async def wait(self, ready, what: str) -> Counter:
        deadline = time.monotonic() + self.timeout
        while True:
            counts = await self.stage_counts()
            if ready(counts):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench: timed out waiting for {what}: {dict(counts)}")
            await asyncio.sleep(POLL)

    async def wait_phase(self, phase: str) -> None:
        """Until the round is in `phase` or past it (a step played again may find it later)."""
        deadline = time.monotonic() + self.timeout
        target = PHASE_ORDER.index(phase)
        while PHASE_ORDER.index((await self.api.round_state(self.round_id)).phase) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench: round never reached phase {phase}")
            await asyncio.sleep(POLL)

    # --- reports -----------------------------------------------------------------------------------

    async def send_all(self, jobs: list[tuple[str, object]]) -> float:
        async def one(job) -> None:
            try:
                await self.api.report(self.round_id, *job)
            except RefusedError as exc:
                self.refused.append(str(exc))

        t0 = time.monotonic()
        await self._each(jobs, one)
        return time.monotonic() - t0

    async def close(self, window: str) -> None:
        await self.api.command(
            self.round_id,
            CloseWindow(
                report_id=f"bench-close-{window}",
                reported_by=self.reporters["operator"],
                window=window,
                reason="bench: every result is in",
            ),
        )

    def admin_jobs(self) -> list:
        return [
            (a, AdminReport(report_id=f"adm-{a}", reported_by=self.reporters["admin"]))
            for a in self.ids
        ]

    def skd_jobs(self, applicants, strong: bool) -> list:
        rng = self.rng
        if strong:  # everyone clears every threshold and the cut is wide: a full journey for all

            def scores():
                return (
                    _score(rng, 130, 8, 150, 5),
                    _score(rng, 155, 8, 175, 5),
                    _score(rng, 205, 8, 225),
                )
        else:  # the demo's spread: some fail their threshold, most fall outside the 3 x quota cut

            def scores():
                return (
                    _score(rng, 85, 18, 150, 5),
                    _score(rng, 100, 22, 175, 5),
                    _score(rng, 172, 14, 225),
                )

        jobs = []
        for i, a in enumerate(applicants):
            twk, tiu, tkp = scores()
            jobs.append(
                (
                    a,
                    SkdReport(
                        report_id=f"skd-{a}",
                        reported_by=self.reporters["skd"],
                        session_id=f"S{i // 40 + 1:03d}",
                        twk=twk,
                        tiu=tiu,
                        tkp=tkp,
                    ),
                )
            )
        return jobs

    def skb_jobs(self, applicants) -> list:
        rng, r = self.rng, self.reporters
        jobs = []
        for a in applicants:
            jobs.append(
                (
                    a,
                    SkbScoreReport(
                        report_id=f"cat-{a}",
                        reported_by=r["cat"],
                        component="cat",
                        score=_score(rng, 380, 40, 500),
                    ),
                )
            )
            jobs.append(
                (
                    a,
                    SkbScoreReport(
                        report_id=f"praktik-{a}",
                        reported_by=r["praktik"],
                        component="praktik",
                        score=_score(rng, 75, 8, 100),
                    ),
                )
            )
            jobs.append(
                (
                    a,
                    GateReport(
                        report_id=f"health-{a}",
                        reported_by=r["health"],
                        component="health",
                        decision=AdminDecision.MS,
                    ),
                )
            )
        return jobs

    async def _phase(self, name: str, coro):
        t = time.monotonic()
        before = self.cpu_sample() if self.cpu_sample else {}
        result = await coro
        self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - t
        if self.cpu_sample:
            spent = self.phase_cpu.setdefault(name, {})
            for proc, seconds in CpuMeter.between(before, self.cpu_sample()).items():
                spent[proc] = spent.get(proc, 0.0) + seconds
        return result

    # --- whole plays ---------------------------------------------------------------------------------

    # --- the round, step by step ----------------------------------------------------------------------

    async def run_steps(
        self, steps, regs: list[Registration] | None = None, strong: bool = False
    ) -> Counter:
        """Play the named steps of STEPS in order, each timed as a phase; return the last counts.

        Each step ends where the round waits for the committee (a window closed, an announcement
        read in the read model), so a run stopped between two steps resumes at the next with
        nothing half done. A step stopped part way is played again: before its window closed, it
        sends its reports again, and with `step_seed` set (each step draws its scores from its own
        seeded generator) they are the same reports, which the journeys take as repeats; after
        its window closed, it only waits for what follows (`closed`).
        """
        counts: Counter = Counter()
        for name in steps:
            if self.step_seed is not None:
                self.rng = random.Random(f"{self.step_seed}/{name}")
            play = getattr(self, "_step_" + name.replace(" + ", "_").replace(" ", "_"))
            counts = await self._phase(name, play(regs, strong))
        return counts

    async def _step_registration(self, regs, strong) -> Counter:
        if regs is not None:  # a national round registers across its instansi itself
            self.registration = await self.register(regs)
        n = len(self.ids)
        counts = await self.wait(lambda c: c["admin_check"] == n, "registrations")
        await self.close("registration")
        return counts

    async def _step_administration(self, regs, strong) -> Counter:
        if not await self.closed("administration"):
            await self.send_all(self.admin_jobs())
            await self.close("administration")
        n = len(self.ids)
        return await self.wait(lambda c: c["skd"] == n, "administration announcement")

    async def _step_skd(self, regs, strong) -> Counter:
        if not await self.closed("skd"):
            await self.send_all(self.skd_jobs(list(self.ids), strong))
            await self.close("skd")
        return Counter()

    async def _step_skd_ranking(self, regs, strong) -> Counter:
        return await self.wait(lambda c: c["skd"] == 0 and c["skd_ranking"] == 0, "SKD ranking")

    async def _step_skb(self, regs, strong) -> Counter:
        if not await self.closed("skb"):
            await self.send_all(self.skb_jobs(await self.at_stage("skb")))
            await self.close("skb")
        return Counter()

    async def _step_final_ranking(self, regs, strong) -> Counter:
        counts = await self.wait(
            lambda c: c["skb"] == 0 and c["final_ranking"] == 0 and c["final_appeal"] == 0,
            "final ranking and its sanggah",
        )
        # Those who lost on rank wait in optimalisasi until filing closes (a seat given up during
        # filing still goes to the next of them); the winners file meanwhile.
        await self.wait_phase("filing")
        return counts

    async def _step_filing(self, regs, strong) -> Counter:
        await self._report_stage(
            "filing",
            lambda a: FilingReport(
                report_id=f"drh-{a}", reported_by=self.reporters["filing"], complete=True
            ),
        )
        return Counter()

    async def _step_nip_appointment(self, regs, strong) -> Counter:
        counts = await self.wait(
            lambda c: c["filing"] + c["nip"] + c["appointment"] == 0, "NIP and appointment"
        )
        await self.wait_phase("latsar")
        return counts

    async def _step_latsar(self, regs, strong) -> Counter:
        await self._report_stage(
            "latsar",
            lambda a: LatsarReport(
                report_id=f"latsar-{a}", reported_by=self.reporters["latsar"], passed=True
            ),
        )
        return await self.wait(lambda c: c["ended"] == len(self.ids), "every journey to end")

    async def _report_stage(self, stage: str, report) -> None:
        """One report to each applicant at `stage` (whose window has the same name), then the
        window's close; nothing once the round has closed it."""
        if not await self.closed(stage):
            await self.send_all([(a, report(a)) for a in await self.at_stage(stage)])
            await self.close(stage)

    async def closed(self, window: str) -> bool:
        """True once the round has closed `window`: a step played again after its close (a run
        stopped while the round announced) only waits for what follows; its reports would come
        too late anyway."""
        state = await self.api.round_state(self.round_id)
        # The round lists the selection windows it closed; filing and latsar are over once it
        # has moved past them.
        if window in state.closed or PHASE_ORDER.index(state.phase) > PHASE_ORDER.index(window):
            self.found_closed.append(window)
            return True
        return False

    async def at_stage(self, stage: str) -> list[str]:
        """The applicants whose read-model row is at `stage`, in a stable order."""
        return sorted(a for a, s in (await self.stages()).items() if s == stage)

    async def play_to_skd_ranking(self, regs: list[Registration], strong: bool) -> Counter:
        """Registration, administrative check and SKD, up to the SKD announcement."""
        self.timeout = max(600.0, len(regs) * 0.1)
        return await self.run_steps(STEPS[: STEPS.index("skd ranking") + 1], regs, strong)

    async def play_full(self, regs: list[Registration]) -> Counter:
        """Every applicant through every stage to PNS (quotas wide enough for all)."""
        counts = await self.play_to_skd_ranking(regs, strong=True)
        if counts["skb"] != len(self.ids):  # strong scores + wide quotas: everyone goes on
            raise RuntimeError(f"bench: not every applicant reached SKB: {dict(counts)}")
        return await self.play_after_skd()

    async def play_after_skd(self) -> Counter:
        """SKB for those in the cut, the final ranking, optimalisasi, filing, NIP and Latsar, to the end."""
        return await self.run_steps(STEPS[STEPS.index("skb") :])


def new_round_id(kind: str) -> str:
    return f"BENCH-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{random.randrange(16**4):04x}"


def applicants(config: RoundConfig, size: int, seed: int) -> list[Registration]:
    return synthetic_applicants(config, size, random.Random(seed))
