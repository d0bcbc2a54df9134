"""Builders for test rounds: a compressed schedule and registrations with valid NIKs."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

from domain.config import RoundConfig, compressed, parse_round_config
from domain.messages import JourneyStart
from domain.optimalisasi import local_date
from domain.registration import Gender, Registration
from domain.signing import Keyring, Signer

OPERATOR = "panitia-test"
REPORTERS = {
    "admin": ["bkpsdm-verifikator"],
    "appeal_answer": ["bkpsdm-verifikator"],
    "skd": ["cat-bkn"],
    "cat": ["cat-bkn"],
    "praktik": ["panel-praktik"],
    "health": ["rsud"],
    "filing": ["bkpsdm-verifikator"],
    "nip": ["bkn"],
    "latsar": ["lan"],
    "operator": [OPERATOR],
    "portal": ["sscasn"],
}


DAY = 86400  # seconds
# The schedule of the time-skipping tests: windows as national rounds run them, in days from t0.
# Registration open now (for five minutes); the later windows far enough away that only the
# committee closes them.
OPEN_NOW = {
    "registration": (-60, 300),
    "administration": (300, 900),
    "skd": (900, 1200),
    "skb": (1200, 1500),
    "filing": (1500, 1800),
    "latsar": (1800, 2100),
}
SCHEDULE_IN_DAYS = {
    "registration": (0, 15 * DAY),
    "administration": (15 * DAY, 18 * DAY),
    "skd": (25 * DAY, 55 * DAY),
    "skb": (56 * DAY, 70 * DAY),
    "filing": (80 * DAY, 95 * DAY),
    "latsar": (95 * DAY, 460 * DAY),
}


def test_signer(identity: str) -> Signer:
    """The key of a test identity: the same every run (its seed is derived from the name)."""
    return Signer.from_seed(
        identity, hashlib.sha256(b"casn-test-key:" + identity.encode()).digest()
    )


# Every test identity's key: the test rounds list their public keys, the test clients sign with them.
TEST_KEYRING = Keyring(
    [test_signer(i) for i in sorted({i for ids in REPORTERS.values() for i in ids})]
)


def noon_wib_after(moment: datetime) -> datetime:
    """The first 12:00 WIB at least a minute after `moment`: a round scheduled in whole days from
    it makes its announcements at noon, so a sanggah window of days ends at 24:00 WIB, 12 hours
    after the same hour on its last day (domain.config.days_after)."""
    wib = timezone(timedelta(hours=7))
    local = (moment + timedelta(minutes=1)).astimezone(wib)
    noon = datetime.combine(local.date(), time(12), wib)
    return noon if noon >= local else noon + timedelta(days=1)


def compressed_round(
    round_id: str,
    formasi: list[dict],
    seconds: dict[str, tuple[float, float]],
    appeal_window: float = 3,
    answer_within: float = 5,
    offer_within: float = 5,
    t0: datetime | None = None,
    skb: list[dict] | None = None,
    extra: dict | None = None,
) -> RoundConfig:
    """A round whose windows are seconds long, relative to `t0` (now). In a compressed round (a
    sanggah not in whole days) the probation has ended at `t0` (`schedule.probation_ends`): its
    windows are closed early by command, and a CPNS passing Latsar is PNS at once, as before the
    probation year. In a round of days it is the rules' year from the TMT, which the time-skipping
    server skips."""
    t0 = t0 or datetime.now(UTC)

    def window(name: str) -> dict:
        a, b = seconds[name]
        return {
            "opens": (t0 + timedelta(seconds=a)).isoformat(),
            "closes": (t0 + timedelta(seconds=b)).isoformat(),
        }

    doc = {
        "round_id": round_id,
        "instansi": "Pemerintah Kabupaten Uji",
        "instansi_kind": "daerah",
        "rule_version": "2024.1",
        # Windows of seconds: registration is held to one calendar day, not the rules' 15.
        "min_registration_days": 1,
        "schedule": {
            **{
                n: window(n)
                for n in ("registration", "administration", "skd", "skb", "filing", "latsar")
            },
            "tmt": "2027-03-01",
        },
        "formasi": formasi,
        "skb": {
            "components": skb
            or [
                {"name": "cat", "kind": "score", "weight": 70, "max_score": 500},
                {"name": "praktik", "kind": "score", "weight": 30, "max_score": 100},
                {"name": "health", "kind": "gate"},
            ]
        },
        "appeal": {"window": f"PT{appeal_window}S", "answer_within": f"PT{answer_within}S"},
        "offer_answer_within": f"PT{offer_within}S",
        "reporters": REPORTERS,
        "identities": TEST_KEYRING.public_keys(),
        **(extra or {}),
    }
    config = parse_round_config(doc)
    if not compressed(config.appeal) or config.schedule.probation_ends is not None:
        return config  # a sanggah in days (`extra` may give one): the rules' year
    doc["schedule"] = {**doc["schedule"], "probation_ends": t0.isoformat()}
    return parse_round_config(doc)


def formasi(
    code: str, quota: int, jabatan: str = "Ahli Pertama - Pranata Komputer", category: str = "umum"
) -> dict:
    """A formasi for S1 Teknik Informatika."""
    return {
        "code": code,
        "jabatan": jabatan,
        "unit": "Dinas Kominfo",
        "education_level": "S1",
        "majors": ["Teknik Informatika", "Sistem Informasi"],
        "quota": quota,
        "category": category,
    }


def registration(
    serial: int,
    formasi_code: str,
    birth: date = date(1998, 5, 17),
    female: bool = False,
    gpa: float = 3.2,
    category: str = "umum",
    name: str | None = None,
) -> Registration:
    """A registration whose NIK is consistent with the birth date and gender."""
    day = birth.day + (40 if female else 0)
    nik = f"327301{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"
    return Registration(
        nik=nik,
        name=name or f"Peserta {serial}",
        birth_date=birth,
        gender=Gender.FEMALE if female else Gender.MALE,
        education_level="S1",
        major="Teknik Informatika",
        gpa=gpa,
        formasi_code=formasi_code,
        category=category,
    )


# The schedule of the real-stack round tests: registration closes on its timer three seconds in,
# the later windows are long and the committee closes each early (close_window) once its results
# are in.
CLOSED_BY_COMMITTEE = {
    "registration": (-60, 3),
    "administration": (3, 600),
    "skd": (600, 1200),
    "skb": (1200, 1800),
    "filing": (1800, 2400),
    "latsar": (2400, 3000),
}


# Registration open for ten minutes, the later windows after it: rounds whose tests register
# and read, and never leave registration.
REGISTRATION_OPEN = {
    "registration": (-60, 600),
    "administration": (700, 800),
    "skd": (800, 900),
    "skb": (900, 1000),
    "filing": (1000, 1100),
    "latsar": (1100, 1200),
}


def plain_start_api(client, task_queue: str, keys):
    """A RecruitmentApi that starts journeys plainly (confirm_registrations=False): a
    registration is answered once the journey starts, before it judges its admission."""
    from client.api import RecruitmentApi

    return RecruitmentApi(
        client, task_queue, keys.pseudonym_key, keyring=TEST_KEYRING, confirm_registrations=False
    )


async def open_registration_round(api, folder, prefix: str) -> RoundConfig:
    """A new round `prefix-xxxxxx` with formasi F1 (quota 2), registration open for ten minutes
    (REGISTRATION_OPEN), created from its file in `folder`."""
    import uuid
    from datetime import UTC, datetime

    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 2)], REGISTRATION_OPEN, t0=datetime.now(UTC))
    await create_round_file(api, config, folder)
    return config


async def registered_round(
    api, folder, prefix: str, serials, birth
) -> tuple[RoundConfig, list[str]]:
    """`open_registration_round`, with one applicant of formasi F1 registered per serial (born on
    `birth`, so that no other test's NIK is met): the round and their registration numbers."""
    config = await open_registration_round(api, folder, prefix)
    ids = []
    for serial in serials:
        result = await api.register(config, registration(serial, "F1", birth=birth), "sscasn")
        assert result.status == "registered", result
        ids.append(result.applicant_id)
    return config, ids


async def accepted_updates(handle) -> list[str]:
    """The names of the updates a workflow's history accepted, in order (a refused update leaves
    no trace)."""
    names = []
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            attrs = event.workflow_execution_update_accepted_event_attributes
            names.append(attrs.accepted_request.input.name)
    return names


async def create_round_file(api, config: RoundConfig, folder) -> None:
    """Write `config` as the round file in `folder` and create the round from it."""
    import tomli_w

    path = folder / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)


async def close_window(api, round_id: str, window: str, reason: str = "done") -> None:
    """Once the round is in `window`'s phase, close it early as the committee does."""
    from domain.messages import CloseWindow
    from tests.flows.test_round_end_to_end import _wait_phase

    await _wait_phase(api, round_id, window)
    await api.command(
        round_id,
        CloseWindow(
            report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason=reason
        ),
    )


def _default_twk(i: int) -> int:
    return 120


def _default_cat(i: int) -> int:
    return 480 - 20 * i  # best final score first


async def play_to_skb(
    api, client, round_id: str, ids: list[str], *, twk: Callable[[int], int] = _default_twk
) -> None:
    """Play the registered `ids` through the administration and SKD windows as the services and
    the committee do (each MS, SKD with TWK `twk(i)`, TIU 140, TKP 190; each window closed early
    once its results are in), until each is at the SKB."""
    from domain.codes import Stage
    from domain.messages import AdminReport, SkdReport
    from tests.flows.test_round_end_to_end import _wait_stage

    for i, a in enumerate(ids):
        await _wait_stage(client, round_id, a, {Stage.ADMIN_CHECK})
        await api.report(
            round_id, a, AdminReport(report_id=f"adm{i}", reported_by="bkpsdm-verifikator")
        )
    await close_window(api, round_id, "administration")
    for i, a in enumerate(ids):
        await _wait_stage(client, round_id, a, {Stage.SKD})
        await api.report(
            round_id,
            a,
            SkdReport(report_id=f"skd{i}", reported_by="cat-bkn", twk=twk(i), tiu=140, tkp=190),
        )
    await close_window(api, round_id, "skd")
    for a in ids:
        await _wait_stage(client, round_id, a, {Stage.SKB})


async def play_to_skb_close(
    api,
    client,
    round_id: str,
    ids: list[str],
    *,
    twk: Callable[[int], int] = _default_twk,
    cat: Callable[[int], int] = _default_cat,
    praktik: int = 90,
) -> None:
    """Play the registered `ids` through the administration, SKD and SKB windows as the services
    and the committee do: each MS, SKD with TWK `twk(i)` (TIU 140, TKP 190), SKB CAT `cat(i)`,
    praktik `praktik` and health MS; each window closed early once its results are in. The
    defaults rank `ids` best first by their SKB CAT score."""
    await play_to_skb(api, client, round_id, ids, twk=twk)
    await report_skb(api, round_id, ids, cat=cat, praktik=praktik)
    await close_window(api, round_id, "skb")


async def report_skb(
    api,
    round_id: str,
    ids: list[str],
    *,
    cat: Callable[[int], int] = _default_cat,
    praktik: int = 90,
) -> None:
    """Each of `ids`' SKB results as the services report them: CAT `cat(i)`, praktik `praktik`,
    health MS."""
    from domain.messages import GateReport, SkbScoreReport

    for i, a in enumerate(ids):
        for comp, who, score in (("cat", "cat-bkn", cat(i)), ("praktik", "panel-praktik", praktik)):
            await api.report(
                round_id,
                a,
                SkbScoreReport(
                    report_id=f"{comp}{i}", reported_by=who, component=comp, score=score
                ),
            )
        await api.report(
            round_id,
            a,
            GateReport(report_id=f"h{i}", reported_by="rsud", component="health", decision="MS"),
        )


class UnreadableQuery:
    """Stands for a protocol query (JOURNEY_STATE, ROUND_STATE, ...) whose answer fails as the SDK
    reports a workflow its worker could not replay: monkeypatch it over the query's name."""

    async def ask(self, handle, *args, **options):
        from temporalio.client import WorkflowQueryFailedError

        raise WorkflowQueryFailedError("the worker could not replay the workflow")


class SilentQuery:
    """Stands for a protocol query no worker answers before the client's deadline
    (CASN_QUERY_SECONDS): the SDK raises what the operator CLI's test meets for real
    (tests/flows/test_cli_gaps.py), an RPCError CANCELLED "Timeout expired"."""

    async def ask(self, handle, *args, **options):
        from temporalio.service import RPCError, RPCStatusCode

        raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")


class BrokenQuery:
    """Stands for a protocol query that fails in a way nothing expects."""

    async def ask(self, handle, *args, **options):
        raise RuntimeError("nothing expected this")


def command_env(temporal: str, database: str, keys, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of `starter.py` or `audit.py` run as a process against a deployment's
    servers (CASN_TEMPORAL_ADDRESS, CASN_DATABASE_URL) with the test session's keys."""
    return {
        **os.environ,
        "CASN_TEMPORAL_ADDRESS": temporal,
        "CASN_DATABASE_URL": database,
        "CASN_DATA_DIR": str(data_dir),
        "CASN_LOG_FORMAT": "json",
        "CASN_PAYLOAD_KEY": base64.b64encode(keys.payload_key).decode(),
        "CASN_PSEUDONYM_KEY": base64.b64encode(keys.pseudonym_key).decode(),
        **extra,
    }


def journey_start(config: RoundConfig, applicant_id: str, serial: int, **changes) -> JourneyStart:
    """A journey's start input for formasi F1, as RecruitmentApi makes it (unsigned), with
    `changes`: for tests that start a journey themselves."""
    from workflows.applicant import ENGINE_VERSION  # noqa: PLC0415 - the workflows import late
    from workflows.round import journey_rules  # noqa: PLC0415

    start = JourneyStart(
        round_id=config.round_id,
        applicant_id=applicant_id,
        registration=registration(serial, "F1"),
        formasi=config.formasi_by_code("F1"),
        rules=journey_rules(config),
        registered_by="sscasn",
        tmt=config.schedule.tmt,
        engine_version=ENGINE_VERSION,
        # The opening's date in the round's zone, as RecruitmentApi dates a registration made
        # then: the journey judges on its own start date (patch applied-on-its-start-date).
        applied_on=local_date(config.schedule.registration.opens, config.timezone),
        sanction_key=f"key-of-{applicant_id}",
    )
    return start.model_copy(update=changes)


def keep_histories(directory: Path, histories, payload_key: bytes) -> None:
    """Keep recorded histories (synthetic data only) and their payload key in `directory`, for a
    replay test: what the tests that record a set on purpose write (CASN_RECORD_AFTERMATH=1)."""
    import base64

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "payload_key.b64").write_text(base64.b64encode(payload_key).decode() + "\n")
    for h in histories:
        name = f"{h.workflow_id.replace('/', '__')}__{h.run_id}.json"
        (directory / name).write_text(h.history.to_json())


def sigkill_postgres(data_dir: Path) -> None:
    """SIGKILL the embedded PostgreSQL under `data_dir` (its postmaster and every backend at once,
    by the pids it recorded): the machine lost, for the outage tests and
    scripts/kill_postgres_mid_pass.py."""
    import psutil

    pid_file = data_dir.resolve() / "postgres" / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    processes = [postmaster, *postmaster.children(recursive=True)]
    for p in processes:
        p.kill()
    psutil.wait_procs(processes, timeout=10)
