"""The public pages read what they show, not the round: anyone may ask them, without an account
or a rate limit, so a request must not cost a scan of the round's applicants (migration 019).

Each statement the gateway sends for a page is recorded and run again under EXPLAIN ANALYZE on
the session's PostgreSQL, over a round of ROUND_SIZE synthetic applicants; the rows its plan
reads are counted.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest

from client.announcements import AnnouncementStage
from client.api import RecruitmentApi
from client.publication import (
    PublishedRow,
    applicant_ending,
    late_endings,
    lookup_row_problems,
    revocations,
)
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory
from runtime.embedded import owner_database_url
from tests.web.publications import listing, store

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ROUND_SIZE = 20_000
LATE = 40  # of them DIS or APS: what a publication's page marks
OTHER_ROWS = 2_000  # published rows of another round in the same table
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _number(i: int) -> str:
    """A registration number (16 of A-Z, 2-7) for synthetic applicant i."""
    digits = []
    for _ in range(16):
        i, d = divmod(i, 32)
        digits.append(ALPHABET[d])
    return "".join(reversed(digits))


class _Recorded:
    """The gateway's pool, recording every statement it is given before the database runs it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        method = getattr(self._pool, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return method

        async def recorded(sql, *args, **kwargs):
            self.statements.append((sql, args))
            return await method(sql, *args, **kwargs)

        return recorded


def _rows_read(plan: dict) -> float:
    """Rows the plan's scans read: those they returned and those their filters dropped (a
    bitmap index scan's are its heap scan's)."""
    read = 0.0
    if "Scan" in plan["Node Type"] and plan["Node Type"] != "Bitmap Index Scan":
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return read + sum(_rows_read(child) for child in plan.get("Plans", []))


async def _most_read(conn: asyncpg.Connection, statements) -> tuple[float, str]:
    """The most rows any one statement read, and that statement."""
    worst = (0.0, "")
    for sql, args in statements:
        [[plan]] = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        plan = json.loads(plan) if isinstance(plan, str) else plan
        worst = max(worst, (_rows_read(plan[0]["Plan"]), sql))
    return worst


def _row(no: int, applicant_id: str, code: str = "MS") -> PublishedRow:
    return PublishedRow(no=no, rank=None, applicant_id=applicant_id, name="", code=code, twk=None,
                        tiu=None, tkp=None, skd_total=None, skb_score=None, final_score=None,
                        from_formasi=None)  # fmt: skip


async def _publish(conn: asyncpg.Connection, round_id: str, listed: list[str]) -> None:
    """Store publication 1 of the round listing `listed` (MS) in formasi F1, as a publisher
    stores one (not signed: nothing here checks its signature)."""
    rows = [_row(i, a) for i, a in enumerate(listed, 1)]
    await store(conn, listing(round_id, AnnouncementStage.ADMIN, rows))


@pytest.fixture
async def big_round(stack):
    """A round of ROUND_SIZE applicants, LATE of them DIS or APS, with one publication listing
    the first of them; its id and the listed applicant's number."""
    round_id = f"reads-{uuid.uuid4().hex[:6]}"
    listed = _number(1)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            """INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, admin,
                   terminal, version)
               SELECT $1, x.id, 'F' || (x.n % 20), '', 'skd', 'MS',
                   CASE WHEN x.n % $3 = 0 THEN (ARRAY['DIS', 'APS'])[1 + x.n / $3 % 2]
                        WHEN x.n % 3 = 0 THEN 'TL' END, 1
               FROM unnest($2::text[]) WITH ORDINALITY AS x(id, n)""",
            round_id,
            [_number(i) for i in range(1, ROUND_SIZE + 1)],
            ROUND_SIZE // LATE,
        )
        await _publish(conn, round_id, [listed])
        # Other rounds' published rows beside it, as in a year of rounds: a lookup that scanned
        # the table would read them (and the planner would rightly scan a table of a few rows,
        # which is what the rows of the session's earlier tests made it, 126 on 12-07).
        await _publish(conn, f"{round_id}-other", [_number(i) for i in range(1, OTHER_ROWS + 1)])
        for table in ("applicants", "revocations", "publications", "publication_rows"):
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()
    return round_id, listed


@pytest.fixture
async def recorded_gateway(client, keys, stack, stack_settings):
    """The gateway's app over a pool that records what it is asked (no worker: these pages ask
    the read model only)."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    recorded = _Recorded(pool)
    api = RecruitmentApi(client, "no-worker", keys.pseudonym_key)
    gw = Gateway(
        settings=stack_settings,
        api=api,
        pool=recorded,  # type: ignore[arg-type]
        api_keys=ApiKeys({}),
        portal=None,
        rounds=RoundDirectory(api, state_ttl=0.0),
    )
    transport = httpx.ASGITransport(app=create_app(gw), client=("203.0.113.9", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http, recorded
    finally:
        await pool.close()


async def test_a_lookup_by_registration_number_reads_that_applicants_rows_only(
    big_round, recorded_gateway, stack
):
    round_id, listed = big_round
    http, recorded = recorded_gateway

    page = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": listed})

    assert page.status_code == 200, page.text
    conn = await asyncpg.connect(stack.database_url)
    try:
        most, sql = await _most_read(conn, recorded.statements)
    finally:
        await conn.close()
    assert most <= 10, f"{most:.0f} rows read of a round of {ROUND_SIZE} by:\n{sql}"


async def test_a_publications_page_reads_the_rounds_late_endings_not_its_applicants(
    big_round, recorded_gateway, stack
):
    round_id, _ = big_round
    http, recorded = recorded_gateway

    page = await http.get(f"/pengumuman/{round_id}/1.csv")

    assert page.status_code == 200, page.text
    conn = await asyncpg.connect(stack.database_url)
    try:
        most, sql = await _most_read(conn, recorded.statements)
    finally:
        await conn.close()
    assert most <= LATE, f"{most:.0f} rows read of a round of {ROUND_SIZE} by:\n{sql}"


async def test_one_applicants_ending_is_what_the_rounds_endings_say_of_them(big_round, stack):
    """The lookup's one-applicant read gives what the publication page's round-wide reads give:
    a late DIS or APS, a revocation after the end over it, nothing for the others."""
    round_id, _ = big_round
    late = ROUND_SIZE // LATE
    dis, aps, plain, dismissed = _number(2 * late), _number(late), _number(2), _number(4)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            """INSERT INTO revocations (round_id, applicant_id, seq, code, at, journey_terminal,
                   reported_by, report_id)
               VALUES ($1, $2, 0, 'DIS', now(), 'PNS', 'operator', 'r-1'),
                      ($1, $2, 1, 'DIBERHENTIKAN', now(), 'PNS', 'operator', 'r-2'),
                      ($1, $3, 0, 'DIS', now(), 'APS', 'operator', 'r-3')""",
            round_id,
            dismissed,
            aps,
        )
        endings = await late_endings(conn, round_id)
        revoked = await revocations(conn, round_id)
        each = {a: await applicant_ending(conn, round_id, a) for a in (dis, aps, plain, dismissed)}
    finally:
        await conn.close()

    assert each == {a: (endings.get(a), revoked.get(a)) for a in each}
    assert {a: e for a, (e, _) in each.items()} == {
        dis: "DIS",
        aps: "DIS",
        plain: None,
        dismissed: "DIBERHENTIKAN",
    }


async def test_a_lookup_row_no_signed_publication_holds_is_named_by_the_audit(
    stack, stack_settings
):
    """The tables refuse UPDATE and DELETE but take an INSERT into a publication already stored,
    and their owner can turn the refusal off: the lookup would show what was never published."""
    round_id = f"rows-{uuid.uuid4().hex[:6]}"
    a, b, c = _number(1), _number(2), _number(3)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await _publish(conn, round_id, [a, b])
        untouched = await lookup_row_problems(conn, round_id)
        forged = _row(3, c, code="MS").model_dump(mode="json")
        await conn.execute(
            "INSERT INTO publication_rows (round_id, seq, applicant_id, formasi_code, row) "
            "VALUES ($1, 1, $2, 'F1', $3::jsonb)",
            round_id,
            c,
            json.dumps(forged),
        )
        owner = await asyncpg.connect(owner_database_url(stack_settings))
        try:
            async with owner.transaction():  # as the tables' owner can (the processes cannot)
                await owner.execute("ALTER TABLE publication_rows DISABLE TRIGGER USER")
                await owner.execute(
                    "UPDATE publication_rows SET row = jsonb_set(row, '{code}', '\"TMS\"') "
                    "WHERE round_id = $1 AND applicant_id = $2",
                    round_id,
                    a,
                )
                await owner.execute(
                    "DELETE FROM publication_rows WHERE round_id = $1 AND applicant_id = $2",
                    round_id,
                    b,
                )
                await owner.execute("ALTER TABLE publication_rows ENABLE TRIGGER USER")
        finally:
            await owner.close()
        found = await lookup_row_problems(conn, round_id)
    finally:
        await conn.close()

    assert untouched == []
    assert found == [
        f"publication 1: the lookup's row for {a} differs from the publication's: "
        "publication_rows was changed after publication",
        f"publication 1: the lookup shows a row for {c} (formasi F1, code 'MS') that the "
        "publication does not list: added to publication_rows after publication",
        f"publication 1: the publication lists {b}, but the lookup has no row for them: "
        "removed from publication_rows",
    ]
