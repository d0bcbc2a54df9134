"""The demo: two rounds end to end, at the same time, with every external service played for real.

It starts (or reuses) the embedded stack and a worker, and creates two rounds with their
schedules compressed to minutes: a regency's (examples/round-kabupaten.toml: sanggah,
optimalisasi, a disqualification, a withdrawal) and a ministry's (examples/round-kementerian.toml:
an interview scored by panels drawn from a pool, with a declared conflict of interest and a
planted outlier score that the committee reviews, apps/demo_panels.py). It registers synthetic
applicants, plays the administrative check, the CAT system, the practical-test examiners, the
interview panellists, the hospital, BKN and the training agency through the same updates a real
service sends, and closes each window early (with a recorded reason) as soon as its results are
in. It ends by writing each round's evaluation report (apps/evaluation.py).
"""

from __future__ import annotations

import asyncio
import random
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from activities.notify import FileTransport, deliver_pending
from apps.demo_panels import PanelPlay, PanelStory, panel_components
from client.announcements import AnnouncementStage
from client.api import RecruitmentApi, RefusedError
from client.publication import publish_announcement, write_files
from domain.administration import DocumentFinding
from domain.codes import AdminDecision
from domain.config import ComponentKind, RoundConfig, parse_round_config
from domain.messages import (
    AdminReport,
    AppealAnswer,
    AppealFiling,
    CloseWindow,
    Disqualification,
    FilingReport,
    GateReport,
    LatsarReport,
    OfferAnswer,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.notices import Language
from domain.registration import Gender, Registration
from domain.signing import Keyring, Signer
from runtime.db import open_pool
from runtime.sealed import ColumnCipher
from runtime.settings import Settings
from runtime.terminal import console as console_for

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "round-kabupaten.toml"
CENTRAL_EXAMPLE = EXAMPLE.with_name("round-kementerian.toml")
FIRST = [
    "Budi",
    "Siti",
    "Agus",
    "Dewi",
    "Rizky",
    "Putri",
    "Andi",
    "Nur",
    "Fajar",
    "Ayu",
    "Dimas",
    "Indah",
    "Hendra",
    "Ratna",
    "Yusuf",
    "Wulan",
    "Arif",
    "Lestari",
    "Bayu",
    "Fitri",
    "Eko",
    "Rina",
    "Teguh",
    "Maya",
]
LAST = [
    "Santoso",
    "Wijaya",
    "Saputra",
    "Lestari",
    "Hidayat",
    "Pratama",
    "Nugroho",
    "Kusuma",
    "Siregar",
    "Nasution",
    "Simanjuntak",
    "Wibowo",
    "Setiawan",
    "Rahmawati",
    "Susanto",
    "Halim",
    "Manurung",
    "Tanjung",
]
CONCURRENCY = 24


def demo_keyring(doc: dict) -> Keyring:
    """A new key pair for every identity of the round file: the demo plays each service."""
    identities = sorted({i for ids in doc["reporters"].values() for i in ids})
    return Keyring([Signer.generate(i) for i in identities])


def demo_config(
    round_id: str, now: datetime, keyring: Keyring | None = None, example: Path = EXAMPLE
) -> tuple[RoundConfig, str]:
    """An example round (the regency's unless `example` names another) with its windows starting
    now, an hour each (closed early), taking only reports signed by `keyring`'s keys when one is
    given."""
    doc = tomllib.loads(example.read_text(encoding="utf-8"))
    doc["round_id"] = round_id
    if keyring is not None:
        doc["identities"] = keyring.public_keys()
    names = ["registration", "administration", "skd", "skb", "filing", "latsar"]
    start = now - timedelta(minutes=1)
    for i, name in enumerate(names):
        doc["schedule"][name] = {
            "opens": start + timedelta(hours=i),
            "closes": start + timedelta(hours=i + 1),
        }
    # A demo cannot wait a CPNS's year of probation (its windows are closed early): it has ended.
    doc["schedule"]["probation_ends"] = start
    doc["appeal"] = {"window": "PT10S", "answer_within": "PT20S"}
    doc["min_registration_days"] = 1  # a registration of an hour, not the rules' 15 days
    doc["offer_answer_within"] = "PT20S"
    import tomli_w

    text = tomli_w.dumps(doc)
    return parse_round_config(tomllib.loads(text), "demo round"), text


def _nik(rng: random.Random, birth: date, female: bool, serial: int) -> str:
    day = birth.day + (40 if female else 0)
    return f"{rng.randint(110101, 947199):06d}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial % 9999 + 1:04d}"


def synthetic_applicants(config: RoundConfig, size: int, rng: random.Random) -> list[Registration]:
    """Applicants spread over the formasi by quota, most eligible, a few not."""
    weights = [max(f.quota, 1) * 3 for f in config.formasi]
    out = []
    for serial in range(size):
        f = rng.choices(config.formasi, weights)[0]
        female = rng.random() < 0.5
        age = rng.randint(22, f.max_age + (2 if rng.random() < 0.03 else 0))
        birth = date(2026 - age, rng.randint(1, 12), rng.randint(1, 28))
        gpa = round(min(4.0, max(2.5, rng.gauss(3.35, 0.25))), 2)
        if f.category.value == "cumlaude":
            gpa = max(gpa, 3.51)
        out.append(
            Registration(
                nik=_nik(rng, birth, female, serial),
                name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                birth_date=birth,
                gender=Gender.FEMALE if female else Gender.MALE,
                education_level=f.education_level,
                major=rng.choice(f.majors),
                gpa=gpa,
                formasi_code=f.code,
                category=f.category,
            )
        )
    return out


def _score(rng: random.Random, mean: float, sd: float, top: int, step: int = 1) -> int:
    value = int(round(min(top, max(0, rng.gauss(mean, sd))) / step) * step)
    return min(top, value)


class Demo:
    """Plays every service of one round against the engine."""

    def __init__(
        self,
        api: RecruitmentApi,
        pool: asyncpg.Pool,
        config: RoundConfig,
        console: Console,
        rng: random.Random,
        label: str = "",
        progress: Progress | None = None,
        out_dir: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.api, self.pool, self.config, self.console, self.rng = api, pool, config, console, rng
        self.round_id = config.round_id
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.refused: list[str] = []
        self.reporters = {k: v[0] for k, v in config.reporters.items()}
        self.label, self.progress, self.seed = label, progress, seed
        self.out_dir = out_dir or Path("out/demo") / self.round_id
        self.panels: list[PanelStory] = []

    def say(self, text: str) -> None:
        """A line of the demo's story, marked with its round when two rounds run at once."""
        prefix = f"[cyan]{self.label}[/] " if self.label else ""
        self.console.print(f"{prefix}{text}", highlight=False)

    @contextmanager
    def progress_task(self, label: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar while a batch is sent (one live display shared by the rounds)."""
        if self.progress is None:
            with Progress(console=self.console, transient=True) as progress:
                task = progress.add_task(label, total=total)
                yield lambda: progress.advance(task)
            return
        progress = self.progress
        task = progress.add_task(f"{self.label} {label}".strip(), total=total)
        try:
            yield lambda: progress.advance(task)
        finally:
            progress.remove_task(task)

    async def stages(self) -> dict[str, str]:
        rows = await self.pool.fetch(
            "SELECT applicant_id, stage FROM applicants WHERE round_id = $1", self.round_id
        )
        return {r["applicant_id"]: r["stage"] for r in rows}

    async def wait_until(self, ready, what: str, timeout: float = 300) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            stages = await self.stages()
            if ready(stages):
                return stages
            if time.monotonic() > deadline:
                raise TimeoutError(f"demo: timed out waiting for {what}")
            await asyncio.sleep(0.5)

    async def wait_phase(self, phase: str, timeout: float = 120) -> None:
        """Wait for the round itself to enter `phase` (its windows close in the round's order)."""
        deadline = time.monotonic() + timeout
        while (await self.api.round_state(self.round_id)).phase != phase:
            if time.monotonic() > deadline:
                raise TimeoutError(f"demo: the round never reached phase {phase}")
            await asyncio.sleep(0.2)

    async def send(self, applicant_id: str, message) -> None:
        async with self.gate:
            try:
                await self.api.report(self.round_id, applicant_id, message)
            except RefusedError as exc:
                self.refused.append(str(exc))

    async def send_all(self, label: str, jobs: list[tuple[str, object]]) -> None:
        with self.progress_task(label, len(jobs)) as advance:

            async def one(job):
                await self.send(*job)
                advance()

            await asyncio.gather(*(one(j) for j in jobs))
        self.say(f"  {label}: {len(jobs)} sent")

    async def close(self, window: str, reason: str) -> None:
        await self.api.command(
            self.round_id,
            CloseWindow(
                report_id=f"demo-close-{window}",
                reported_by=self.reporters["operator"],
                window=window,
                reason=reason,
            ),
        )
        self.say(f"[bold]{window}[/] window closed: {reason}")


def _central_size(size: int) -> int:
    """The ministry's applicants beside `size` of the regency: enough for several panels."""
    return max(16, size // 10)


async def run_demo(
    size: int = 300,
    seed: int = 2027,
    out_dir: Path = Path("out/demo"),
    settings: Settings | None = None,
    central_size: int | None = None,
) -> int:
    """Run the demo rounds at the same time (`size` applicants in the regency's, `central_size`
    in the ministry's), then evaluate them; 0 only when every applicant of both reached a
    terminal outcome, every announcement was published and the auditor's recompute of each round
    matches what it announced."""
    from apps.fleet import build_worker
    from runtime.app import open_app

    console = console_for(markup=True)  # the story's own words are styled; outside text is escaped
    app = await open_app(settings)
    console.print(f"Temporal: {app.stack.temporal_address}   Web UI: {app.stack.ui_url}")
    pool = await open_pool(app.stack.database_url, max_size=10)
    worker = await build_worker(app.client, app.settings, pool)
    now = datetime.now(UTC)
    plans = [
        ("kabupaten", f"DEMO-{now:%Y%m%d-%H%M%S}", EXAMPLE, size, seed),
        (
            "kementerian",
            f"DEMO-KEMENTERIAN-{now:%Y%m%d-%H%M%S}",
            CENTRAL_EXAMPLE,
            central_size if central_size is not None else _central_size(size),
            seed + 1,
        ),
    ]
    started = time.monotonic()
    ok = False
    demos: list[Demo] = []
    try:
        async with worker:
            with Progress(console=console, transient=True) as progress:
                for label, round_id, example, _, round_seed in plans:
                    keyring = demo_keyring(tomllib.loads(example.read_text(encoding="utf-8")))
                    config, text = demo_config(round_id, now, keyring, example)
                    round_dir = out_dir / round_id
                    round_dir.mkdir(parents=True, exist_ok=True)
                    (round_dir / "round.toml").write_text(text, encoding="utf-8")
                    api = RecruitmentApi(
                        app.client, app.settings.task_queue, app.keys.pseudonym_key, keyring=keyring
                    )
                    await api.create_round(
                        round_dir / "round.toml", config.reporters["operator"][0]
                    )
                    rng = random.Random(round_seed)
                    demos.append(
                        Demo(
                            api, pool, config, console, rng, label, progress, round_dir, round_seed
                        )
                    )
                    demos[-1].say(
                        f"Round [bold]{round_id}[/] ({config.instansi}, {config.instansi_kind.value}) "
                        f"created: {len(config.formasi)} formasi, "
                        f"{sum(f.quota for f in config.formasi)} seats"
                    )
                # Each round is published and evaluated as soon as it has ended, while the other
                # may still be running: replaying every history for the report takes a while.
                done = await asyncio.gather(
                    *(
                        _round(d, app, synthetic_applicants(d.config, n, d.rng))
                        for d, (_, _, _, n, _) in zip(demos, plans, strict=True)
                    )
                )
            ok = all(done)
    finally:
        await pool.close()
    elapsed = time.monotonic() - started
    first = demos[0].round_id if demos else "ROUND"
    console.print(
        f"\nDone in {elapsed:.0f} s. Look next at:\n"
        f"  Temporal Web UI   {app.stack.ui_url}/namespaces/{app.settings.temporal_namespace}/workflows\n"
        f"  decoded there     .venv/bin/python audit.py serve-codec, then log in at\n"
        f"                    {app.settings.codec_endpoint}/login with the token in\n"
        f"                    {app.settings.data_dir / 'keys' / 'auditors.local.toml'}; in the Web UI,\n"
        f"                    Codec Server (the glasses): use my browser setting,\n"
        f"                    endpoint {app.settings.codec_endpoint}, cross-origin credentials on\n"
        + "".join(
            f"  round {d.round_id}\n"
            f"    evaluation      {d.out_dir / 'evaluation' / 'index.html'}\n"
            f"    announcements   {d.out_dir}/{d.round_id}-{{admin,skd,final}}.{{csv,html}}\n"
            f"    notifications   {d.out_dir}/notifications.jsonl\n"
            for d in demos
        )
        + "".join(
            f"    panel sheets    {d.out_dir / 'panel-sheets'} (as the panellists sent them)\n"
            for d in demos
            if d.panels
        )
        + f"  an applicant      .venv/bin/python audit.py trail {first} <registration-no>\n"
        f"  the read model    .venv/bin/python audit.py check-read-model {first}\n"
        f"  the page store    .venv/bin/python audit.py check-pages {first}\n"
        f"  stop the servers  python3 run.py stop",
        highlight=False,
    )
    return 0 if ok else 1


async def _round(demo: Demo, app, applicants: list[Registration]) -> bool:
    """One round end to end: played, published, evaluated, and recomputed as an auditor would."""
    ok = await _play(demo, applicants)
    ok = await _publish(demo, app) and ok
    ok = await _evaluate(demo, app) and ok
    return await _recompute(demo, app) and ok


async def _recompute(demo: Demo, app) -> bool:
    """`audit.py recompute` of the round: every formasi's SKD cut and final ranking worked out
    again from its applicants' histories alone, against what it announced (docs/AUDIT.md)."""
    from auditing.history import round_histories
    from auditing.recompute import recompute
    from runtime.connection import data_converter

    histories = await round_histories(app.client, demo.round_id)
    differences = (await recompute(histories, data_converter(app.keys))).differences()
    for d in differences:
        demo.say(f"[red]recompute: {escape(str(d))}[/]")
    if not differences:
        demo.say(
            f"recomputed from {len(histories)} histories (audit.py recompute): every formasi's "
            "SKD cut and final ranking match what it announced"
        )
    return not differences


async def _publish(demo: Demo, app) -> bool:
    """The round's funnel, its signed announcements (files beside it) and its notifications."""
    console, round_id, out_dir = demo.console, demo.round_id, demo.out_dir
    console.print(await _funnel(demo.pool, round_id))
    ok = True
    operator = demo.api.keyring.signers[demo.config.reporters["operator"][0]]
    conn = await asyncpg.connect(app.stack.database_url)
    try:
        for stage in AnnouncementStage:  # signed, chained, on the public pages
            try:
                published = await publish_announcement(
                    demo.api,
                    conn,
                    round_id,
                    stage,
                    operator,
                    cipher=ColumnCipher.from_keys(app.keys),
                )
            except RefusedError as exc:
                demo.say(f"[red]announcement {stage.value} not published[/]: {escape(str(exc))}")
                ok = False
                continue
            write_files(
                published.publication,
                demo.config.skd.cut_multiplier,
                out_dir,
                demo.config.timezone,
            )
    finally:
        await conn.close()
    # A pass hands over each applicant's oldest undelivered notice (in the order recorded): pass
    # until one delivers nothing.
    sent = 0
    while passed := await deliver_pending(
        demo.pool,
        FileTransport(out_dir / "notifications.jsonl"),
        batch=100_000,
        round_id=round_id,
        language=Language(app.settings.notification_language),
        cipher=ColumnCipher.from_keys(app.keys),
    ):
        sent += passed
    demo.say(f"{sent} notifications delivered to applicants (file transport)")
    return ok


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


async def _evaluate(demo: Demo, app) -> bool:
    """`starter.py evaluate` for the round: each section's summary, every panel's agreement and
    every flagged score with the committee's review, and where the report is."""
    from apps.evaluation import evaluate

    written = await evaluate(
        app.client, app.stack.database_url, demo.round_id, demo.out_dir / "evaluation"
    )
    demo.say(f"[bold]Evaluation of round {demo.round_id}[/]: {written.index}")
    for section in written.evaluation.sections:
        demo.say(f"  {section.heading}: {section.note or section.summary}")
        tables = {t.name: t for t in section.tables}
        if section.key != "panels" or "panel_agreement" not in tables:
            continue
        for row in tables["panel_agreement"].rows:
            r = dict(zip(tables["panel_agreement"].columns, row, strict=True))
            alpha = "undefined" if r["alpha"] is None else f"{float(r['alpha']):.2f}"
            demo.say(
                f"    {r['formasi']} {r['component']}: {r['applicants']} applicants, "
                f"{r['scores']} scores, alpha {alpha}; flagged {r['flagged']}, reviewed "
                f"{r['reviews']}, conflicts declared {r['conflicts declared']}, scores struck "
                f"{r['scores struck']}"
            )
        for row in tables["panel_flags"].rows:
            r = dict(zip(tables["panel_flags"].columns, row, strict=True))
            mean = r["others' mean"]
            demo.say(
                f"    flagged: {r['panellist']} gave {r['registration no']} {_g(r['score'])} "
                f"(the rest of the panel {_g(mean)} on average, margin "
                f"{_g(r['margin'])}); committee review: {r['committee review']}"
            )
    demo.say(f"  {len(written.csvs)} CSV files beside the report")
    return written.index.exists()


async def _play(demo: Demo, applicants: list[Registration]) -> bool:
    rng, cfg = demo.rng, demo.config
    ids: dict[str, Registration] = {}
    refused = 0
    with demo.progress_task("registering", len(applicants)) as advance:

        async def register(reg: Registration) -> None:
            nonlocal refused
            async with demo.gate:
                result = await demo.api.register(cfg, reg, "sscasn-portal")
            if result.status == "registered":
                ids[result.applicant_id] = reg
            else:
                refused += 1
            advance()

        await asyncio.gather(*(register(r) for r in applicants))
    demo.say(f"  registrations: {len(ids)} accepted, {refused} refused (age, GPA or education)")
    await demo.wait_until(
        lambda s: sum(v == "admin_check" for v in s.values()) == len(ids), "registrations"
    )
    await demo.close("registration", "demo: registration complete")

    tms = {a for a in ids if rng.random() < 0.08}
    await demo.send_all(
        "administrative check",
        [
            (
                a,
                AdminReport(
                    report_id=f"adm-{a}",
                    reported_by=demo.reporters["admin"],
                    findings=[DocumentFinding(document="ijazah", reason="not legalised")]
                    if a in tms
                    else [],
                ),
            )
            for a in ids
        ],
    )
    await demo.close("administration", "demo: every application verified")
    await demo.wait_until(
        lambda s: all(s.get(a) in ("admin_appeal", "ended") for a in tms), "TMS announcements"
    )
    appellants = [a for a in sorted(tms) if rng.random() < 0.5]
    await demo.send_all(
        "appeals filed",
        [
            (
                a,
                AppealFiling(
                    report_id=f"sanggah-{a}",
                    reported_by="sscasn-portal",
                    reason="the ijazah was legalised",
                ),
            )
            for a in appellants
        ],
    )
    await demo.send_all(
        "appeals answered",
        [
            (
                a,
                AppealAnswer(
                    report_id=f"jawab-{a}",
                    reported_by=demo.reporters["appeal_answer"],
                    accepted=rng.random() < 0.5,
                    note="checked against the original",
                ),
            )
            for a in appellants
        ],
    )
    stages = await demo.wait_until(
        lambda s: not any(v in ("admin_check", "admin_appeal", "registered") for v in s.values()),
        "appeal windows",
    )

    sitting = [a for a in ids if stages.get(a) == "skd" and rng.random() > 0.04]
    await demo.send_all(
        "SKD results (CAT)",
        [
            (
                a,
                SkdReport(
                    report_id=f"skd-{a}",
                    reported_by=demo.reporters["skd"],
                    session_id=f"S{i // 40 + 1:03d}",
                    twk=_score(rng, 85, 18, 150, 5),
                    tiu=_score(rng, 100, 22, 175, 5),
                    tkp=_score(rng, 172, 14, 225),
                ),
            )
            for i, a in enumerate(sitting)
        ],
    )
    await demo.close("skd", "demo: every SKD session reported")
    stages = await demo.wait_until(
        lambda s: not any(v in ("skd", "skd_ranking") for v in s.values()), "SKD ranking"
    )

    skb = [a for a in ids if stages.get(a) == "skb"]
    sitting = [a for a in skb if rng.random() >= 0.03]  # the rest are absent from SKB: TH
    involved: set[str] = set()
    for component in panel_components(cfg):  # the interviews first: a TMS health result ends
        play = PanelPlay(  # the journey, and its panel with it
            demo.api,
            demo.pool,
            cfg,
            component,
            demo.reporters["operator"],
            demo.seed,
            demo.out_dir / "panel-sheets",
            demo.say,
        )
        demo.panels.append(await play.play(sitting))
        involved |= play.involved
    jobs: list[tuple[str, object]] = []
    for a in sitting:
        for component in cfg.skb.components:
            name = component.name
            if component.kind == ComponentKind.GATE:
                jobs.append(
                    (
                        a,
                        GateReport(
                            report_id=f"{name}-{a}",
                            reported_by=demo.reporters[name],
                            component=name,
                            decision=AdminDecision.TMS if rng.random() < 0.04 else AdminDecision.MS,
                        ),
                    )
                )
            elif component.kind == ComponentKind.SCORE:
                mean, sd = (0.68, 0.11) if name == "cat" else (0.72, 0.12)
                top = int(component.max_score)
                jobs.append(
                    (
                        a,
                        SkbScoreReport(
                            report_id=f"{name}-{a}",
                            reported_by=demo.reporters[name],
                            component=name,
                            score=_score(rng, mean * top, sd * top, top),
                        ),
                    )
                )
    scored = [c.name for c in cfg.skb.components if c.kind != ComponentKind.PANEL]
    await demo.send_all(f"SKB results ({', '.join(scored)})", jobs)
    cheat = next((a for a in reversed(skb) if a not in involved), None)
    if cheat is not None:
        await demo.send(
            cheat,
            Disqualification(
                report_id=f"dis-{cheat}",
                reported_by=demo.reporters["operator"],
                reason="remote-access cheating found in the CAT activity log",
            ),
        )
        demo.say("  one SKB participant disqualified (DIS) after an audit of the CAT log")
    await demo.close("skb", "demo: every SKB component reported")
    stages = await demo.wait_until(
        lambda s: not any(v in ("skb", "final_ranking") for v in s.values()), "final ranking"
    )
    # During the final appeal window a winner of a formasi whose jabatan another formasi shares
    # withdraws: the seat goes to optimalisasi (the first offer is declined, the next accepted).
    shared = {f.code for f in cfg.formasi if sum(g.jabatan == f.jabatan for g in cfg.formasi) > 1}
    winners = {
        r["applicant_id"]
        for r in await demo.pool.fetch(
            "SELECT applicant_id FROM applicants WHERE round_id = $1 AND final_code = 'P/L'",
            demo.round_id,
        )
    }
    leavers = sorted(
        a
        for a in winners
        if stages.get(a) in ("final_appeal", "filing") and ids[a].formasi_code in shared
    )
    if leavers:
        await demo.send(
            leavers[0],
            Withdrawal(
                report_id=f"aps-{leavers[0]}",
                reported_by="sscasn-portal",
                reason="accepted another position",
            ),
        )
        demo.say(
            "  a winner withdrew after the final announcement (APS, barred from the next 2 rounds);"
            " the seat goes to optimalisasi"
        )

    answered: set[str] = set()
    declined_one = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = await demo.api.round_state(demo.round_id)
        pending = [o for o, s in state.offers.items() if s == "pending" and o not in answered]
        for offer_id in pending:
            applicant = offer_id.split("/offer/")[1].split("/")[0]
            accept = declined_one
            declined_one = True
            await demo.send(
                applicant,
                OfferAnswer(
                    report_id=f"jawab-{offer_id}", reported_by="sscasn-portal", accept=accept
                ),
            )
            answered.add(offer_id)
        if state.phase not in ("final_appeal", "optimalisasi"):
            break
        await asyncio.sleep(0.5)
    demo.say(
        f"  optimalisasi: {len(answered)} offers answered ({'one' if answered else 'none'} declined)"
    )

    # Optimalisasi has settled when the round opens filing; those who lost on rank wait in it
    # until filing closes (a seat given up while filing is open is offered again), while those
    # who accepted an offer move on to filing.
    await demo.wait_phase("filing")
    accepted = {
        o.split("/offer/")[1].split("/")[0]
        for o, s in (await demo.api.round_state(demo.round_id)).offers.items()
        if s == "accepted"
    }
    stages = await demo.wait_until(
        lambda s: all(s.get(a) != "optimalisasi" for a in accepted), "optimalisasi"
    )
    filing = sorted(a for a in ids if stages.get(a) == "filing")
    await demo.send_all(
        "filing (DRH)",
        [
            (
                a,
                FilingReport(
                    report_id=f"drh-{a}", reported_by=demo.reporters["filing"], complete=True
                ),
            )
            for a in filing
        ],
    )
    await demo.close("filing", "demo: every DRH verified")
    stages = await demo.wait_until(
        lambda s: not any(v in ("filing", "nip", "appointment") for v in s.values()),
        "NIP and appointment",
    )
    await demo.wait_phase("latsar")
    latsar = sorted(a for a in ids if stages.get(a) == "latsar")
    await demo.send_all(
        "Latsar results",
        [
            (
                a,
                LatsarReport(
                    report_id=f"latsar-{a}", reported_by=demo.reporters["latsar"], passed=i != 0
                ),
            )
            for i, a in enumerate(latsar)
        ],
    )
    await demo.close("latsar", "demo: the Latsar cohort is complete")
    try:
        await demo.wait_until(
            lambda s: all(v == "ended" for v in s.values()), "every journey to end", timeout=120
        )
    except TimeoutError as exc:
        demo.say(f"[red]{escape(str(exc))}[/]")
        return False
    if demo.refused:
        demo.say(
            f"[yellow]{len(demo.refused)} reports refused by the engine, e.g. "
            f"{escape(str(demo.refused[0]))}[/]"
        )
    return True


async def _funnel(pool: asyncpg.Pool, round_id: str) -> Table:
    rows = await pool.fetch(
        "SELECT formasi_code, coalesce(terminal, stage) AS outcome, count(*) AS n FROM applicants "
        "WHERE round_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
        round_id,
    )
    outcomes = sorted({r["outcome"] for r in rows})
    table = Table(title=f"Outcomes of round {round_id} (from the read model)")
    table.add_column("formasi")
    for o in outcomes:
        table.add_column(o, justify="right")
    table.add_column("total", justify="right")
    by_formasi: dict[str, dict[str, int]] = {}
    for r in rows:
        by_formasi.setdefault(r["formasi_code"], {})[r["outcome"]] = r["n"]
    for code, counts in by_formasi.items():
        table.add_row(code, *[str(counts.get(o, "")) for o in outcomes], str(sum(counts.values())))
    totals = {o: sum(c.get(o, 0) for c in by_formasi.values()) for o in outcomes}
    table.add_row("[bold]all[/]", *[str(totals[o]) for o in outcomes], str(sum(totals.values())))
    return table
