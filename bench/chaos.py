"""Nothing lost when machines fail: a whole round played twice, once with servers SIGKILLed.

`python3 run.py bench chaos --size 200 --kills temporal,postgres,worker`. One stack of its own
(data dir out/chaos-data), worker processes (`worker.py run`) and a notification deliverer
(`worker.py deliver-notifications`) as processes. The same round (same applicants, the same
scores for each NIK) is played twice through RecruitmentApi: first unharmed, then with kills at
each of the chosen points. A kill is a SIGKILL by pid: the Temporal dev server (restarted on the
same SQLite file), the PostgreSQL postmaster and every backend at once (a machine gone, not a
clean stop; restarted on the same data dir, which recovers from its WAL), or one worker process
(a new one started, as a supervisor would). The driver retries every call that fails meanwhile,
as a client would, with the same report ids and the same registrations.

Then, per applicant (matched by NIK without its region code, see `person`): the journey's outcome in both plays; `audit.py recompute`
and `audit.py check-read-model` of the played round; one NIP per person; every notification
the read model holds delivered, none twice; no registration or report counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.common import ROOT, console, temporal_pid
from bench.fleet import Fleet, worker_env
from bench.rounds import RoundDriver, bench_config, new_round_id
from client.api import RecruitmentApi, RefusedError
from domain.messages import JourneyState
from domain.registration import Registration
from runtime import embedded
from runtime.embedded import ensure_stack
from runtime.settings import Settings
from workflows.ids import journey_workflow_id

KINDS = ("temporal", "postgres", "worker")
# Where a kill lands: the registration burst, the SKD close (its broadcast and the ranking), the
# SKB close (final ranking, its sanggah, optimalisasi offers), the filing burst (NIP issuance).
POINTS = ("registration", "skd-close", "final", "nip")
BURST_SHARE = 0.3  # a burst's kills land once this share of its calls is acknowledged
RETRY_FOR = 600.0  # s a client keeps trying one call while servers come back
CHECK_AGAIN = 10  # check-read-model runs until clean, at most this many times


@dataclass
class Kill:
    """One SIGKILL made, and what it took to get going again."""

    what: str
    point: str
    at: float  # s after the played round started
    pid: int
    down: float  # s the server stayed dead before its restart
    stall: float  # s from the kill until the round answered again (see Chaos.recovered)


@dataclass
class Supervised:
    """Processes kept running, as systemd or compose's restart policy would: restarted when dead."""

    fleet: Fleet
    deliverer: subprocess.Popen | None = None
    restarts: Counter = field(default_factory=Counter)
    replaced: set[int] = field(default_factory=set)  # exited workers already dealt with

    def start_deliverer(self) -> None:
        log = (self.fleet.log_dir / "deliverer.log").open("ab")
        self.deliverer = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "deliver-notifications"],
            cwd=ROOT,
            env=worker_env(self.fleet.settings, self.fleet.task_queue),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def revive(self) -> None:
        """Start again what has exited (a worker or the deliverer that gave up on a server)."""
        for p in list(self.fleet.procs):
            if p.poll() is not None and p.pid not in self.replaced:
                self.replaced.add(p.pid)
                if p.returncode != -signal.SIGKILL:  # our kills are replaced by Chaos.kill
                    self.restarts["worker"] += 1
                    self.fleet.start(1)
        if self.deliverer is not None and self.deliverer.poll() is not None:
            self.restarts["deliverer"] += 1
            self.start_deliverer()

    def stop(self) -> None:
        self.fleet.stop()
        if self.deliverer is not None and self.deliverer.poll() is None:
            self.deliverer.send_signal(signal.SIGTERM)
            try:
                self.deliverer.wait(30)
            except subprocess.TimeoutExpired:
                self.deliverer.kill()
                self.deliverer.wait()


def _sigkill_tree(root: int) -> list[int]:
    """SIGKILL `root` and every process under it at once, by pid; the pids killed."""
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def _postmaster_pid(settings: Settings) -> int | None:
    try:
        return int(
            (settings.data_dir.resolve() / "postgres" / "postmaster.pid").read_text().split()[0]
        )
    except (OSError, ValueError, IndexError):
        return None


class Chaos:
    """Kills servers by pid and brings them back on the same data; keeps the record of each."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        pool: asyncpg.Pool,
        supervised: Supervised,
        plan: dict[str, list[str]],
        down: float,
    ) -> None:
        self.settings, self.client, self.pool = settings, client, pool
        self.supervised, self.plan, self.down = supervised, plan, down
        self.kills: list[Kill] = []
        self.started = time.monotonic()
        self.round_id = ""

    async def at(self, point: str) -> None:
        """Make the kills planned at `point`, one after another, each once the round answers."""
        for what in self.plan.get(point, []):
            await self.kill(what, point)

    async def kill(self, what: str, point: str) -> None:
        t = time.monotonic()
        if what == "temporal":
            pid = temporal_pid(self.settings)
            assert pid, "no Temporal server to kill"
            _sigkill_tree(pid)
            child = embedded._children.pop(pid, None)
            if child is not None:
                child.wait()  # reaped: not a zombie that looks alive
        elif what == "postgres":
            pid = _postmaster_pid(self.settings)
            assert pid, "no PostgreSQL to kill"
            _sigkill_tree(pid)  # the postmaster and its backends: the machine is gone
        elif what == "worker":
            live = [p for p in self.supervised.fleet.procs if p.poll() is None]
            victim = live[0]
            pid = victim.pid
            victim.kill()
            victim.wait()  # left in the fleet's list, so its replacement logs to a file of its own
        else:
            raise ValueError(f"chaos: no such kill {what!r}; one of {', '.join(KINDS)}")
        console.print(f"  [red]SIGKILL[/] {what} (pid {pid}) at {point}")
        await asyncio.sleep(self.down)
        down = time.monotonic() - t
        if what == "worker":
            self.supervised.fleet.start(1)  # the supervisor's replacement
        else:
            await ensure_stack(self.settings)  # the same SQLite file, the same data dir
        self.supervised.revive()
        await self.recovered()
        self.kills.append(Kill(what, point, t - self.started, pid, down, time.monotonic() - t))
        console.print(f"  {what} back; round answered {self.kills[-1].stall:.1f} s after the kill")

    async def recovered(self) -> None:
        """Until the round's workflow answers a query (a worker took it) and the read model a
        SELECT."""
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                handle = self.client.get_workflow_handle(f"{self.round_id}/round")
                await asyncio.wait_for(handle.query("state"), 10)
                await asyncio.wait_for(self.pool.fetchval("SELECT 1"), 10)
                return
            except Exception:  # noqa: BLE001 - anything means "not back yet"
                if time.monotonic() > deadline:
                    raise
                self.supervised.revive()
                await asyncio.sleep(0.2)


async def persist(
    call: Callable[[], Awaitable[Any]],
    retries: Counter,
    what: str,
    keep_trying: Callable[[Exception], bool] = lambda _: True,
) -> Any:
    """`call` until it succeeds, as a client with a retry policy would; a refusal is an answer,
    and so is an error `keep_trying` says is final."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await call()
        except RefusedError:
            raise
        except Exception as exc:  # noqa: BLE001 - a server down shows in many types
            if time.monotonic() > deadline or not keep_trying(exc):
                raise
            retries[f"{what}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)


class _PersistentPool:
    """The read model's pool, its reads retried while PostgreSQL is away."""

    def __init__(self, pool: asyncpg.Pool, retries: Counter) -> None:
        self._pool, self._retries = pool, retries

    async def fetch(self, *args: Any) -> list:
        return await persist(lambda: self._pool.fetch(*args), self._retries, "read model")

    async def fetchval(self, *args: Any) -> Any:
        return await persist(lambda: self._pool.fetchval(*args), self._retries, "read model")


class _PersistentApi:
    """RecruitmentApi whose calls are retried while a server is away (same arguments each time)."""

    def __init__(self, api: RecruitmentApi, retries: Counter) -> None:
        self._api, self._retries = api, retries

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        if not asyncio.iscoroutinefunction(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await persist(lambda: target(*args, **kwargs), self._retries, name)

        return call


class ChaosDriver(RoundDriver):
    """RoundDriver whose calls outlive the servers, whose scores are drawn per NIK (so two plays
    give each person the same ones whatever order the calls complete in), and which hands the
    round to `chaos` at each point."""

    def __init__(
        self,
        api: RecruitmentApi,
        pool: asyncpg.Pool,
        config,
        seed: int,
        chaos: Chaos | None,
        concurrency: int = 16,
    ) -> None:
        self.retries: Counter = Counter()
        super().__init__(
            _PersistentApi(api, self.retries),  # type: ignore[arg-type]
            _PersistentPool(pool, self.retries),  # type: ignore[arg-type]
            config,
            random.Random(seed),
            concurrency,
        )
        self.seed, self.chaos = seed, chaos
        self.answers: Counter = Counter()  # registered / repeat / refused, as the engine said

    async def _burst(self, point: str, total: int, done: Callable[[], int], work) -> Any:
        """`work` with the kills of `point` made once BURST_SHARE of its `total` calls are in."""
        task = asyncio.ensure_future(work)
        if self.chaos is not None and self.chaos.plan.get(point):
            while done() < BURST_SHARE * total and not task.done():
                await asyncio.sleep(0.05)
            await self.chaos.at(point)
        return await task

    async def register(self, regs: list[Registration]) -> dict:
        async def one(reg: Registration) -> None:
            result = await self.api.register(self.config, reg, "sscasn-portal")
            self.answers[result.status] += 1
            # a repeat: an earlier try registered it (its answer lost with a server)
            if result.status in ("registered", "repeat") and result.applicant_id:
                self.ids[result.applicant_id] = reg

        t0 = time.monotonic()
        await self._burst("registration", len(regs), lambda: len(self.ids), self._each(regs, one))
        return {"accepted": len(self.ids), "refused": self.answers["refused"],
                "elapsed": time.monotonic() - t0, "latencies": []}  # fmt: skip

    async def close(self, window: str) -> None:
        await super().close(window)
        point = {"skd": "skd-close", "skb": "final"}.get(window)
        if point and self.chaos is not None:
            await self.chaos.at(point)

    async def _step_filing(self, regs, strong):
        if not await self.closed("filing"):
            jobs = [(a, self._filing(a)) for a in await self.at_stage("filing")]
            sent = Counter()

            async def counted() -> None:
                await self._each(jobs, lambda job: self._send(job, sent))

            await self._burst("nip", len(jobs), lambda: sent["n"], counted())
            await super().close("filing")
        return Counter()

    def _filing(self, a: str):
        from domain.messages import FilingReport

        return FilingReport(
            report_id=f"drh-{a}", reported_by=self.reporters["filing"], complete=True
        )

    async def _send(self, job, sent: Counter) -> None:
        try:
            await self.api.report(self.round_id, *job)
        except RefusedError as exc:
            self.refused.append(str(exc))
        sent["n"] += 1

    def _per_person(self, stage: str, a: str) -> None:
        self.rng = random.Random(f"{self.seed}/{stage}/{person(self.ids[a])}")

    def skd_jobs(self, applicants, strong: bool) -> list:
        jobs = []
        for a in applicants:
            self._per_person("skd", a)
            jobs += super().skd_jobs([a], strong)
        return jobs

    def skb_jobs(self, applicants) -> list:
        jobs = []
        for a in applicants:
            self._per_person("skb", a)
            jobs += super().skb_jobs([a])
        return jobs


def person(reg: Registration) -> str:
    """The applicant's place in the synthetic list: the NIK without its region code, which each
    play draws afresh (a person holds one NIP across rounds, so the second play needs other
    people for its NIPs to be issued, not found held from the first)."""
    return reg.nik[6:]


def new_people(regs: list[Registration], rng: random.Random) -> list[Registration]:
    """The same applicants under one region code of their own (so NIKs no earlier play used)."""
    region = f"{rng.randint(110101, 947199):06d}"
    return [r.model_copy(update={"nik": region + r.nik[6:]}) for r in regs]


# --- after the round: what each applicant ended with, and what the stores hold ------------------


def outcome_of(state: JourneyState) -> tuple:
    """What a journey decided, without what differs between two plays of one round by design
    (ids, times, the NIP's serial: NIPs are numbered in the order they are issued)."""
    return (
        state.terminal, state.admin, state.skd_code, state.skd_total, state.skb_score,
        state.final_score, state.final_code, state.placed_formasi, state.nip is not None,
        tuple((d.stage, d.outcome) for d in state.decisions),
    )  # fmt: skip


async def outcomes(client: Client, round_id: str, ids: dict[str, Registration]) -> dict:
    """Each applicant's ended journey, by person (see `person`)."""
    out: dict[str, JourneyState] = {}
    sem = asyncio.Semaphore(16)

    async def one(a: str, reg: Registration) -> None:
        async with sem:
            handle = client.get_workflow_handle(
                journey_workflow_id(round_id, a), result_type=JourneyState
            )
            out[person(reg)] = await handle.result()

    await asyncio.gather(*(one(a, r) for a, r in ids.items()))
    return out


def audit(settings: Settings, task_queue: str, *args: str) -> tuple[int, str]:
    """`audit.py ARGS` on the stack; its exit code and its output's last lines."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "audit.py"), *args],
        cwd=ROOT,
        env=worker_env(settings, task_queue),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-6:])
    return done.returncode, tail


async def check_read_model(settings: Settings, task_queue: str, round_id: str) -> tuple[int, str]:
    """check-read-model until it finds nothing (a row written by a local activity may be ahead of
    its history for a moment: docs/AUDIT.md), at most CHECK_AGAIN times; the last answer."""
    for _ in range(CHECK_AGAIN):
        code, tail = await asyncio.to_thread(
            audit, settings, task_queue, "check-read-model", round_id
        )
        if code == 0:
            return code, tail
        await asyncio.sleep(3)
    return code, tail


async def stores(pool: asyncpg.Pool, client: Client, round_id: str, ended: dict) -> dict:
    """Counts that a duplicate or a loss would change."""
    journeys = (await client.count_workflows(
        f"RoundId = '{round_id}' AND CasnKind = 'journey'"
    )).count  # fmt: skip
    rows = await pool.fetchval("SELECT count(*) FROM applicants WHERE round_id = $1", round_id)
    reports = {
        r["kind"]: r["n"]
        for r in await pool.fetch(
            "SELECT kind, count(*) AS n FROM stage_reports WHERE round_id = $1 GROUP BY kind",
            round_id,
        )
    }
    nips = await pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT nip) AS nips, count(DISTINCT person) AS persons "
        "FROM nips WHERE round_id = $1",
        round_id,
    )
    by_applicant = {
        r["applicant_id"]: r["nip"]
        for r in await pool.fetch(
            "SELECT applicant_id, nip FROM nips WHERE round_id = $1", round_id
        )
    }
    given = {s.applicant_id: s.nip for s in ended.values() if s.nip is not None}
    return {
        "journeys": journeys,
        "applicant rows": rows,
        "reports": reports,
        "nip rows": nips["n"],
        "distinct nips": nips["nips"],
        "distinct persons": nips["persons"],
        "nips not as the journeys were told": sum(
            by_applicant.get(a) != n for a, n in given.items()
        )
        + len(set(by_applicant) - set(given)),
    }


async def delivered(pool: asyncpg.Pool, settings: Settings, round_id: str) -> dict:
    """Wait until the deliverer has handed over every notification of the round; then each
    row's lines in the transport's file: none (lost) or more than one (sent twice)."""
    deadline = time.monotonic() + 300
    while True:
        left = await persist(
            lambda: pool.fetchval(
                "SELECT count(*) FROM notifications WHERE round_id = $1 AND delivered_at IS NULL",
                round_id,
            ),
            Counter(),
            "outbox",
        )
        if left == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    keys = {
        (r["applicant_id"], r["key"])
        for r in await pool.fetch(
            "SELECT applicant_id, key FROM notifications WHERE round_id = $1", round_id
        )
    }
    lines: Counter = Counter()
    path = settings.data_dir.resolve() / "notifications.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            n = json.loads(line)
            if n["round_id"] == round_id:
                lines[(n["applicant_id"], n["key"])] += 1
    return {
        "notifications": len(keys),
        "undelivered": left,
        "lost (no line)": len(keys - set(lines)),
        "sent twice": sum(c > 1 for c in lines.values()),
        "lines without a row": len(set(lines) - keys),
    }


@dataclass
class Play:
    """One play of the round and what was found after it."""

    round_id: str
    seconds: float
    driver: ChaosDriver
    ended: dict
    stores: dict
    outbox: dict
    recompute: tuple[int, str]
    read_model: tuple[int, str]
    kills: list[Kill]


async def play(
    api: RecruitmentApi,
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    task_queue: str,
    regs_for: Callable[[Any], list[Registration]],
    seed: int,
    out_dir: Path,
    chaos: Chaos | None,
    kind: str,
    audited: bool = True,
    quota: int | None = None,
) -> Play:
    """Play one round to its end (with `chaos`' kills if given) and check what it left."""
    round_id = new_round_id(kind)
    config, path = bench_config(round_id, datetime.now(UTC), out_dir=out_dir, quota=quota)
    if chaos is not None:
        chaos.round_id, chaos.started = round_id, time.monotonic()
    driver = ChaosDriver(api, pool, config, seed, chaos)
    t0 = time.monotonic()
    await driver.api.create_round(path, config.reporters["operator"][0])
    regs = regs_for(config)
    driver.timeout = max(600.0, len(regs) * 2.0)
    await driver.run_steps(
        ["registration", "administration", "skd", "skd ranking", "skb", "final ranking",
         "filing", "nip + appointment", "latsar"],
        regs,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    ended = await outcomes(client, round_id, driver.ids)
    found = await persist(lambda: stores(pool, client, round_id, ended), Counter(), "stores")
    outbox = await delivered(pool, settings, round_id)
    recompute = read_model = (-1, "not run")
    if audited:
        recompute = await asyncio.to_thread(audit, settings, task_queue, "recompute", round_id)
        read_model = await check_read_model(settings, task_queue, round_id)
    return Play(
        round_id, seconds, driver, ended, found, outbox, recompute, read_model,
        list(chaos.kills) if chaos else [],
    )  # fmt: skip


def compare(unharmed: Play, killed: Play) -> dict:
    """Per NIK: the same outcome in both plays?"""
    a = {nik: outcome_of(s) for nik, s in unharmed.ended.items()}
    b = {nik: outcome_of(s) for nik, s in killed.ended.items()}
    differ = sorted(n for n in a.keys() & b.keys() if a[n] != b[n])
    return {
        "applicants compared": len(a.keys() & b.keys()),
        "only in one play": len(a.keys() ^ b.keys()),
        "different outcome": len(differ),
        "first differences": [(n[-4:], a[n], b[n]) for n in differ[:2]],
        "ended by terminal (unharmed)": dict(
            Counter(str(s.terminal) for s in unharmed.ended.values())
        ),
    }


def parse_plan(kills: str, points: str) -> dict[str, list[str]]:
    """Every kind of kill at every point, in the order given."""
    kinds = [k for k in kills.split(",") if k]
    where = [p for p in points.split(",") if p]
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"--kills: {k!r} is not one of {', '.join(KINDS)}")
    for p in where:
        if p not in POINTS:
            raise ValueError(f"--points: {p!r} is not one of {', '.join(POINTS)}")
    return {p: list(kinds) for p in where}


def environment_facts(settings: Settings) -> dict:
    return {
        "Temporal dev server SQLite": f"journal_mode=wal, synchronous={settings.temporal_sqlite_synchronous}",
        "PostgreSQL": "fsync=on, synchronous_commit=on",
        "pid of this driver": os.getpid(),
    }


async def run_chaos(
    client: Client,
    pool: asyncpg.Pool,
    pseudonym_key: bytes,
    settings: Settings,
    out: Path,
    size: int,
    plan: dict[str, list[str]],
    down: float,
    seed: int,
    workers: int = 2,
    audit_unharmed: bool = True,
    quota: int | None = None,
) -> tuple[Play, Play, Supervised]:
    """The round unharmed, then the same round with the kills of `plan`; both checked (the
    unharmed play's audit only with `audit_unharmed`)."""
    from apps.demo import synthetic_applicants

    queue = f"{settings.task_queue}-chaos"
    supervised = Supervised(Fleet(settings, queue, out / "chaos-logs"))
    supervised.fleet.start(workers)
    supervised.start_deliverer()
    try:
        await supervised.fleet.polling(client, workers)
        api = RecruitmentApi(client, queue, pseudonym_key)

        def regs_for(config) -> list[Registration]:
            return new_people(
                synthetic_applicants(config, size, random.Random(seed)), random.Random()
            )

        args = (api, client, pool, settings, queue, regs_for, seed, out / "rounds")
        console.print(f"chaos: the round unharmed ({size} applicants)")
        unharmed = await play(*args, chaos=None, kind="U", audited=audit_unharmed, quota=quota)
        chaos = Chaos(settings, client, pool, supervised, plan, down)
        console.print("chaos: the same round with kills")
        killed = await play(*args, chaos=chaos, kind="K", quota=quota)
        return unharmed, killed, supervised
    finally:
        supervised.stop()


def figures(unharmed: Play, killed: Play, supervised: Supervised) -> dict:
    """The table `bench chaos` prints."""
    rows: dict[str, object] = {}
    for i, k in enumerate(killed.kills, 1):
        rows[f"kill {i}: {k.what} at {k.point}"] = (
            f"{k.at:.1f} s into the round, pid {k.pid}, down {k.down:.1f} s, "
            f"round answering again {k.stall:.1f} s after the kill"
        )
    rows["round's length, unharmed / killed"] = f"{unharmed.seconds:.1f} / {killed.seconds:.1f} s"
    rows |= {f"outcomes: {k}": v for k, v in compare(unharmed, killed).items()}
    for name, p in (("unharmed", unharmed), ("killed", killed)):
        rows[f"{name}: registrations answered"] = dict(p.driver.answers)
        rows[f"{name}: refused reports"] = len(p.driver.refused)
        rows[f"{name}: stores"] = p.stores
        rows[f"{name}: outbox"] = p.outbox
        rows[f"{name}: audit.py recompute"] = f"exit {p.recompute[0]}: {p.recompute[1][-200:]}"
        rows[f"{name}: audit.py check-read-model"] = (
            f"exit {p.read_model[0]}: {p.read_model[1][-200:]}"
        )
    rows["killed: client retries (call: error)"] = dict(killed.driver.retries)
    rows["processes restarted by the supervisor"] = dict(supervised.restarts)
    return rows


# --- does a SIGKILL of the dev server lose what it acknowledged? -----------------------------------


async def _send_until(handle, lane: int, step: int, stop: asyncio.Event, acked: dict) -> None:
    """Numbers lane, lane + step, ... by update (even) or signal (odd), one at a time, each
    acknowledgement's time kept, until `stop` or the server is gone."""
    from bench.chaos_wf import Tally

    n = lane
    while not stop.is_set():
        try:
            if n % 2:
                await handle.signal(Tally.note, n)
            else:
                await handle.execute_update(Tally.add, n)
            acked[n] = time.monotonic()
        except Exception:  # noqa: BLE001 - the server is gone: this lane is done
            return
        n += step


async def _durability_trial(
    handle, settings: Settings, after: float, in_flight: int
) -> tuple[set[int], set[int]]:
    """What was acknowledged before a SIGKILL `after` seconds into the traffic, and what the
    workflow holds once the server is back on the same file."""
    from bench.chaos_wf import Tally

    acked: dict[int, float] = {}
    stop = asyncio.Event()
    lanes = [
        asyncio.create_task(_send_until(handle, i, in_flight, stop, acked))
        for i in range(in_flight)
    ]
    await asyncio.sleep(after)
    pid = temporal_pid(settings)
    assert pid, "no Temporal server to kill"
    _sigkill_tree(pid)
    killed_at = time.monotonic()
    child = embedded._children.pop(pid, None)
    if child is not None:
        child.wait()
    stop.set()
    before = {n for n, t in acked.items() if t < killed_at}
    await asyncio.gather(*lanes, return_exceptions=True)
    await ensure_stack(settings)
    try:
        await persist(handle.describe, Counter(), "describe", keep_trying=_not_lost)
    except RPCError as err:  # the workflow itself is gone with the server's last writes
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return before, set()
    await persist(lambda: handle.signal(Tally.finish), Counter(), "finish")
    return before, set(await persist(handle.result, Counter(), "result"))


def _not_lost(err: Exception) -> bool:
    """Worth trying again: anything but a workflow the server does not know."""
    return not (isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND)


async def durability_probe(
    client: Client, settings: Settings, trials: int, in_flight: int = 8
) -> dict:
    """`trials` times: a fresh Tally workflow takes updates and signals, `in_flight` at a time,
    until the dev server is SIGKILLed at a random moment; then it is restarted on the same SQLite
    file and every number whose acknowledgement reached the client before the kill is looked for
    in the workflow's result. Lost = acknowledged, then absent."""
    from temporalio.worker import Worker

    from bench.chaos_wf import Tally

    queue = f"{settings.task_queue}-durability"
    rng = random.Random(5)
    acked_total = lost_total = 0
    traffic = 0.0  # s of traffic before the kills
    lost_in: list[int] = []
    async with Worker(client, task_queue=queue, workflows=[Tally]):
        for trial in range(trials):
            handle = await persist(
                partial(
                    client.start_workflow, Tally.run, id=f"durability-{queue}-{trial}",
                    task_queue=queue,
                ),
                Counter(),
                "start",
            )  # fmt: skip
            after = rng.uniform(0.5, 1.5)
            traffic += after
            before, kept = await _durability_trial(handle, settings, after, in_flight)
            lost = before - kept
            acked_total += len(before)
            lost_total += len(lost)
            if lost:
                lost_in.append(trial)
            console.print(
                f"  durability trial {trial + 1}/{trials}: {len(before)} acknowledged before the "
                f"kill, {len(lost)} of them lost"
            )
    return {
        "trials (SIGKILL of the dev server mid-traffic)": trials,
        "updates and signals acknowledged before a kill": acked_total,
        "of them absent after the restart": lost_total,
        "acknowledged per second before the kills (8 in flight)": f"{acked_total / traffic:.0f}",
        "trials that lost any": lost_in,
        "SQLite synchronous": settings.temporal_sqlite_synchronous,
    }
