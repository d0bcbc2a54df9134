"""Notifications leave through the outbox: each once, a failed hand-over retried after its back-off;
they say what happened in the applicant's language, with every failing document's reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
from pydantic import ValidationError

from activities.notify import FileTransport, deliver_pending
from apps.fleet import build_worker
from auditing.bundle import write_bundle
from auditing.history import round_histories
from client.api import RecruitmentApi
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    Disqualification,
    FilingReport,
    GateReport,
    LatsarReport,
    SkbScoreReport,
    SkdReport,
)
from runtime.db import open_pool
from runtime.sealed import ColumnCipher
from runtime.settings import describe_settings_error, load_settings
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    OPERATOR,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FlakyTransport:
    """A transport that refuses one key once (like an SMS gateway timing out), recording the rest."""

    def __init__(self, round_id: str, refuse_once: str) -> None:
        self.round_id, self.refuse_once = round_id, refuse_once
        self.sent: list[str] = []

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        if round_id != self.round_id:
            return  # rows of other tests in the session database
        if key == self.refuse_once:
            self.refuse_once = ""
            raise ConnectionError("gateway timeout")
        self.sent.append(key)


async def test_each_notification_is_delivered_once_and_a_failure_is_retried(stack, tmp_path):
    round_id = f"notify-{uuid.uuid4().hex[:6]}"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.executemany(
            # In clear, as written before sealing began (migration 007): delivered as they are,
            # in the order written (one applicant's notices go in order, the next after the last).
            "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
            "SELECT $1, $2, $3, $4, applied_at - interval '1 day' + $5 * interval '1 ms' "
            "FROM schema_migrations WHERE version = 7",
            [
                (round_id, "APPLICANT1", k, f"text {k}", i)
                for i, k in enumerate(("registered", "admin-MS", "skd-P/L"))
            ],
        )
        transport = FlakyTransport(round_id, refuse_once="admin-MS")
        # Of this round only: the table is the worker's stack's, and with a batch's worth of
        # other rounds' rows due ahead of these, a pass of all rounds found none of them (12-07).
        # Which round goes first is test_notification_outbox's subject.
        for _ in range(3):
            await deliver_pending(pool, transport, round_id=round_id)
        # admin-MS failed and waits its minute; skd-P/L, written after it, waits for it.
        assert transport.sent == ["registered"]
        await pool.execute(
            "UPDATE notifications SET next_attempt_at = now() WHERE round_id = $1", round_id
        )
        for _ in range(2):
            await deliver_pending(pool, transport, round_id=round_id)
        assert transport.sent == ["registered", "admin-MS", "skd-P/L"]  # each once, in order
        undelivered = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1 AND delivered_at IS NULL",
            round_id,
        )
        assert undelivered == 0

        await pool.execute(
            "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
            "SELECT $1, 'A2', 'k', 't', applied_at - interval '1 day' FROM schema_migrations "
            "WHERE version = 7",
            round_id,
        )
        path = tmp_path / "out.jsonl"
        await deliver_pending(pool, FileTransport(path), round_id=round_id)
        assert f'"round_id": "{round_id}"' in path.read_text()
    finally:
        await pool.close()


# --- what the notifications say (issue 14, item 7) -----------------------------------------------
# One compressed round on the real stack: T is TMS for two documents and does not appeal, D is
# disqualified during SKD, W goes all the way to PNS. Their notifications are then delivered
# twice: with the settings' default, and with CASN_NOTIFICATION_LANGUAGE=en.

FINDINGS = {
    "ijazah": "ijazah belum dilegalisasi oleh perguruan tinggi",
    "transkrip nilai": "halaman 2 tidak terbaca",
}
DIS_REASON = "joki terbukti dari log aktivitas CAT"
HEALTH_NOTE = "tekanan darah 150/95, dalam pengobatan"


class RecordingTransport:
    """Keeps the text of each notification of one round, by (applicant, key)."""

    def __init__(self, round_id: str) -> None:
        self.round_id = round_id
        self.texts: dict[tuple[str, str], str] = {}

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        if round_id == self.round_id:
            self.texts[(applicant_id, key)] = text


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def delivered(client, stack, stack_settings, keys, tmp_path_factory):
    """The round's notifications as delivered by default and in English, and the applicants' ids."""
    from tests.flows.test_round_end_to_end import _wait_stage

    pool = await open_pool(stack.database_url, max_size=4)
    settings = stack_settings.model_copy(update={"task_queue": f"notify-{uuid.uuid4().hex[:8]}"})
    worker = await build_worker(client, settings, pool)
    try:
        async with worker:
            ids = await _drive_round(client, settings, keys, tmp_path_factory.mktemp("notify"))
            round_id = ids.pop("round_id")
            for name, terminal in (("T", "TMS"), ("D", "DIS"), ("W", "PNS")):
                state = await _wait_stage(client, round_id, ids[name], {Stage.ENDED}, timeout=40)
                assert state.terminal.value == terminal, (name, state.terminal_reason)
        out = {}
        # Delivery empties a row (its sealed value too): each language's pass gets the rows as the
        # journeys wrote them.
        written = await pool.fetch(
            "SELECT applicant_id, key, text, notice, sealed FROM notifications WHERE round_id = $1",
            round_id,
        )
        for language in ("default", "en"):
            env = {} if language == "default" else {"CASN_NOTIFICATION_LANGUAGE": "en"}
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("CASN_NOTIFICATION_LANGUAGE", raising=False)
                for k, v in env.items():
                    mp.setenv(k, v)
                chosen = load_settings().notification_language
            await pool.executemany(
                "UPDATE notifications SET delivered_at = NULL, text = $4, notice = $5, "
                "sealed = $6 WHERE round_id = $1 AND applicant_id = $2 AND key = $3",
                [(round_id, *row) for row in written],
            )
            transport = RecordingTransport(round_id)
            # A pass hands over each applicant's oldest undelivered notice: pass until none is.
            while await deliver_pending(
                pool,
                transport,
                round_id=round_id,
                cipher=ColumnCipher.from_keys(keys),
                **_language(chosen),
            ):
                pass
            out[language] = transport.texts
        yield ids, out
    finally:
        await pool.close()


def _language(chosen: str) -> dict:
    """The deliverer's language argument, as apps/fleet.py passes it ("id" is the default)."""
    return {} if chosen == "id" else {"language": chosen}


async def _drive_round(client, settings, keys, folder) -> dict[str, str]:
    from tests.flows.test_round_end_to_end import _wait_stage

    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"notices-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        CLOSED_BY_COMMITTEE,
        appeal_window=2,
        t0=t0,
    )
    await create_round_file(api, config, folder)

    async def close(window):
        await close_window(api, round_id, window)

    people = {"W": registration(1, "F1"), "T": registration(2, "F1"), "D": registration(3, "F1")}
    ids = {
        n: (await api.register(config, r, "sscasn", now=t0)).applicant_id for n, r in people.items()
    }
    for name, a in ids.items():
        await _wait_stage(client, round_id, a, {Stage.ADMIN_CHECK})
        findings = (
            [DocumentFinding(document=d, reason=r) for d, r in FINDINGS.items()]
            if name == "T"
            else []
        )
        await api.report(
            round_id,
            a,
            AdminReport(
                report_id=f"adm-{name}", reported_by="bkpsdm-verifikator", findings=findings
            ),
        )
    await close("administration")
    for name in ("W", "D"):
        await _wait_stage(client, round_id, ids[name], {Stage.SKD})
    await api.report(
        round_id,
        ids["D"],
        Disqualification(report_id="dis-D", reported_by=OPERATOR, reason=DIS_REASON),
    )
    await api.report(
        round_id,
        ids["W"],
        SkdReport(report_id="skd-W", reported_by="cat-bkn", twk=120, tiu=140, tkp=190),
    )
    await close("skd")
    await _wait_stage(client, round_id, ids["W"], {Stage.SKB})
    for comp, who, score in (("cat", "cat-bkn", 450), ("praktik", "panel-praktik", 90)):
        await api.report(
            round_id,
            ids["W"],
            SkbScoreReport(report_id=f"{comp}-W", reported_by=who, component=comp, score=score),
        )
    await api.report(
        round_id,
        ids["W"],
        GateReport(
            report_id="h-W",
            reported_by="rsud",
            component="health",
            decision="MS",
            note=HEALTH_NOTE,
        ),
    )
    await close("skb")
    await _wait_stage(client, round_id, ids["W"], {Stage.FILING}, timeout=30)
    await api.report(
        round_id,
        ids["W"],
        FilingReport(report_id="drh-W", reported_by="bkpsdm-verifikator", complete=True),
    )
    await _wait_stage(client, round_id, ids["W"], {Stage.LATSAR}, timeout=30)
    await api.report(
        round_id, ids["W"], LatsarReport(report_id="latsar-W", reported_by="lan", passed=True)
    )
    return {**ids, "round_id": round_id}


async def test_a_tms_notification_lists_every_failing_document_with_its_reason(delivered):
    ids, texts = delivered
    for language in ("default", "en"):
        tms = texts[language][(ids["T"], "admin-TMS")]
        for document, reason in FINDINGS.items():
            assert f"{document}: {reason}" in tms, (language, tms)


async def test_notifications_are_in_indonesian_by_default(delivered):
    ids, texts = delivered
    default = texts["default"]
    assert "Tidak Memenuhi Syarat (TMS)" in default[(ids["T"], "admin-TMS")]
    assert default[(ids["W"], "admin-MS")] == "Hasil seleksi administrasi: Memenuhi Syarat (MS)."
    assert "Anda diangkat sebagai CPNS dengan NIP" in default[(ids["W"], "appointed")]
    english_words = ("Your", "Administrative check", "selection ended", "result")
    for (_, key), text in default.items():
        assert not any(w in text for w in english_words), (key, text)


async def test_notifications_are_in_english_by_the_setting(delivered):
    ids, texts = delivered
    english = texts["en"]
    assert english.keys() == texts["default"].keys()  # the same notifications, other words
    assert english[(ids["W"], "admin-MS")] == "Administrative check: meets the requirements (MS)."
    assert "You are appointed CPNS with NIP" in english[(ids["W"], "appointed")]


@pytest.mark.parametrize(
    ("name", "code", "recorded"),
    [("D", "DIS", f"DIS: {DIS_REASON}"), ("W", "PNS", "PNS: passed Latsar")],
)
async def test_an_ending_names_its_outcome_once(delivered, name, code, recorded):
    # The journey's recorded reason carries its code ("PNS: passed Latsar"); pasted after the
    # message's own outcome it said the outcome twice ("...ended: PNS: passed Latsar").
    ids, texts = delivered
    for language in ("default", "en"):
        text = texts[language][(ids[name], f"end-{code}")]
        assert text.count(code) == 1 and recorded not in text, (language, text)
    assert DIS_REASON in texts["default"][(ids["D"], "end-DIS")]


async def test_the_notification_language_setting_is_validated(monkeypatch):
    monkeypatch.setenv("CASN_NOTIFICATION_LANGUAGE", "jv")
    with pytest.raises(ValidationError) as refused:
        load_settings()
    assert describe_settings_error(refused.value).startswith("CASN_NOTIFICATION_LANGUAGE='jv': ")
    monkeypatch.setenv("CASN_NOTIFICATION_LANGUAGE", "en")
    assert load_settings().notification_language == "en"


# --- what the read model keeps of the same round (issue 14, item 8) -----------------------------


async def _round_rows(pool, round_id: str) -> dict[tuple[str, str], list[str]]:
    """(table, column) -> the round's values in that column, as text, for every table of the read
    model that holds rows of the round (by round id, or by an origin naming it)."""
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    out: dict[tuple[str, str], list[str]] = {}
    for t in tables:
        name = t["table_name"]
        rows = await pool.fetch(
            f'SELECT to_jsonb(x) AS j FROM "{name}" x WHERE to_jsonb(x)::text LIKE $1',
            f"%{round_id}%",
        )
        for r in rows:
            row = json.loads(r["j"])
            for column, value in row.items():
                out.setdefault((name, column), []).append(json.dumps(value, ensure_ascii=False))
    return out


async def _round_id(stack, ids) -> str:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return await conn.fetchval(
            "SELECT round_id FROM applicants WHERE applicant_id = $1", ids["W"]
        )
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def read_model(delivered, stack):
    ids, _ = delivered
    round_id = await _round_id(stack, ids)
    pool = await open_pool(stack.database_url, max_size=1)
    try:
        yield await _round_rows(pool, round_id)
    finally:
        await pool.close()


PEOPLE = [registration(n, "F1") for n in (1, 2, 3)]
SECRETS = {
    **{f"NIK of {p.name}": p.nik for p in PEOPLE},
    "birth date": PEOPLE[0].birth_date.isoformat(),
    **{f"finding on {d}": reason for d, reason in FINDINGS.items()},
    "DIS reason": DIS_REASON,
    "health note": HEALTH_NOTE,
}


async def test_the_read_model_holds_no_nik_and_no_report_contents_in_clear(read_model):
    found = [
        (what, table, column)
        for (table, column), values in read_model.items()
        for what, secret in SECRETS.items()
        if any(secret in v for v in values)
    ]
    assert found == []
    assert ("notifications", "sealed") in read_model  # the deliverer still has what it needs


async def test_names_are_kept_only_in_the_column_the_announcements_read(read_model):
    names = [registration(n, "F1").name for n in (1, 2, 3)]
    holding = sorted(
        {
            (table, column)
            for (table, column), values in read_model.items()
            if any(name in v for v in values for name in names)
        }
    )
    assert holding == [("applicants", "name")]


async def test_an_exported_audit_bundle_holds_no_nik_name_or_report_content_in_clear(
    delivered, client, keys, stack, tmp_path
):
    ids, _ = delivered
    round_id = await _round_id(stack, ids)
    histories = await round_histories(client, round_id)
    write_bundle(histories, round_id, tmp_path / "bundle", keys.signing_key)
    text = "\n".join(
        f.read_text(encoding="utf-8", errors="replace")
        for f in (tmp_path / "bundle").rglob("*")
        if f.is_file()
    )
    secrets = {**SECRETS, **{f"name {p.name}": p.name for p in PEOPLE}}
    assert len(histories) > 3 and ids["W"] in text  # the round, its formasi and the journeys
    assert [what for what, secret in secrets.items() if secret in text] == []
