"""The read model's group commit (activities/readmodel.py) on the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from activities.broadcast import Broadcaster
from activities.readmodel import ReadModel
from domain.codes import Stage
from domain.contracts import CloseAnswer, JourneyProjection, Notification
from domain.messages import CloseReply, Decision, JourneyState
from runtime.db import open_pool
from runtime.embedded import owner_database_url
from runtime.sealed import ColumnCipher

CIPHER = ColumnCipher(b"k" * 32)  # seals the notifications, which these tests do not read


def projection(
    round_id: str,
    applicant: str,
    version: int,
    stage: Stage,
    *,
    skb_score: str | None = None,
    first_seq: int = 0,
) -> JourneyProjection:
    state = JourneyState(
        round_id=round_id,
        applicant_id=applicant,
        formasi_code="F1",
        stage=stage,
        skb_score=skb_score,
        tmt=date(2027, 3, 1),
    )
    decision = Decision(
        at=datetime(2027, 1, 2, tzinfo=UTC),
        stage=stage.value,
        outcome=f"v{version}",
        actor="system",
        input={"n": version},
        rule_version="2027.1",
        rules_digest="d" * 64,
    )
    return JourneyProjection(
        version=version,
        state=state,
        registration_no=applicant,
        name=f"Name {applicant}",
        category="umum",
        first_seq=first_seq,
        new_decisions=[decision],
        notifications=[Notification(key=f"k{version}", text="t")],
        reports=[(f"r-{applicant}-{version}", "admin", {"v": version})],
    )


@pytest.fixture
def round_id() -> str:
    return f"RM-{uuid.uuid4().hex[:8]}"


async def test_concurrent_projections_share_statements_and_all_land(stack, round_id):
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        await asyncio.gather(
            *(
                rm.project_journey(projection(round_id, f"A{i:03d}", 1, Stage.ADMIN_CHECK))
                for i in range(120)
            )
        )
        rows = await pool.fetchval("SELECT count(*) FROM applicants WHERE round_id = $1", round_id)
        decisions = await pool.fetchval(
            "SELECT count(*) FROM decisions WHERE round_id = $1", round_id
        )
        reports = await pool.fetchval(
            "SELECT count(*) FROM stage_reports WHERE round_id = $1", round_id
        )
        notes = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1", round_id
        )
        assert (rows, decisions, reports, notes) == (120, 120, 120, 120)
        assert rm.statements < 120  # batched: the 120 arrived while earlier writes were in flight
    finally:
        await pool.close()


async def test_a_bad_projection_fails_alone_and_an_older_version_never_wins(stack, round_id):
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        await rm.project_journey(projection(round_id, "OLD", 3, Stage.SKD, first_seq=0))
        results = await asyncio.gather(
            rm.project_journey(projection(round_id, "GOOD1", 1, Stage.ADMIN_CHECK)),
            rm.project_journey(projection(round_id, "BAD", 1, Stage.SKB, skb_score="not a number")),
            rm.project_journey(projection(round_id, "GOOD2", 1, Stage.ADMIN_CHECK)),
            rm.project_journey(projection(round_id, "OLD", 2, Stage.ADMIN_CHECK, first_seq=1)),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == [
            "NoneType",
            "InvalidTextRepresentationError",
            "NoneType",
            "NoneType",
        ]
        rows = {
            r["applicant_id"]: (r["stage"], r["version"])
            for r in await pool.fetch(
                "SELECT applicant_id, stage, version FROM applicants WHERE round_id = $1", round_id
            )
        }
        assert rows == {"GOOD1": ("admin_check", 1), "GOOD2": ("admin_check", 1), "OLD": ("skd", 3)}
        # The older projection's new decision is still appended (decisions are append-only by seq).
        seqs = [
            r["seq"]
            for r in await pool.fetch(
                "SELECT seq FROM decisions WHERE round_id = $1 AND applicant_id = 'OLD' ORDER BY seq",
                round_id,
            )
        ]
        assert seqs == [0, 1]
    finally:
        await pool.close()


async def test_a_write_interrupted_mid_batch_fails_its_activities_instead_of_leaving_them_waiting(
    stack,
):
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        model = ReadModel(pool, CIPHER)
        round_id = f"rm-{uuid.uuid4().hex[:6]}"
        # The first statement waits on a lock held here, so the batch is in flight when the drain
        # is cancelled (a stopping worker, a closing pool).
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("LOCK TABLE applicants IN ACCESS EXCLUSIVE MODE")
            first = asyncio.create_task(
                model.project_journey(projection(round_id, "A", 1, Stage.SKD))
            )
            await asyncio.sleep(0.2)
            assert model._drainer is not None and not first.done()
            model._drainer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(first, 5)
        # The next projection drains afresh and lands.
        await asyncio.wait_for(model.project_journey(projection(round_id, "A", 2, Stage.SKD)), 5)
    finally:
        await pool.close()


async def test_rows_answered_to_a_close_land_in_one_statement_and_the_formasi_gets_none(
    stack, round_id
):
    """The broadcast of a close (activities/broadcast.py) writes the rows the journeys answered
    with, a page in one statement, and hands the formasi the answers without them; a retried page
    writes the same rows again and changes nothing."""
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        broadcaster = Broadcaster(None, rm.write_rows)  # type: ignore[arg-type] # no listing here
        answers = [
            CloseAnswer(
                applicant_id=f"C{i}",
                phase="skb_closed",
                row=projection(round_id, f"C{i}", 3, Stage.FINAL_RANKING),
            )
            for i in range(40)
        ] + [CloseAnswer(applicant_id="C-old", phase="skb_closed")]  # an engine-2 journey: no row
        for attempt in (1, 2):
            replies = await broadcaster._write_close_rows(answers)
            assert rm.statements == attempt
            assert [type(r) for r in replies] == [CloseReply] * 41
        counts = await pool.fetchrow(
            """SELECT (SELECT count(*) FROM applicants WHERE round_id = $1 AND stage = 'final_ranking'),
                      (SELECT count(*) FROM decisions WHERE round_id = $1),
                      (SELECT count(*) FROM notifications WHERE round_id = $1)""",
            round_id,
        )
        assert tuple(counts) == (40, 40, 40)
    finally:
        await pool.close()


async def test_a_decision_written_again_by_a_later_attempt_takes_its_content(stack, round_id):
    """A workflow task that wrote its projection and then failed (a GC pause past the deadlock
    detector, a worker lost) is attempted again, and the attempt the history records writes the
    same decision place with its own time: that write wins, in its own statement or in one with
    the first; the same write again changes nothing."""
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        first = projection(round_id, "A", 1, Stage.ADMIN_CHECK)
        decision = first.new_decisions[0]
        later_at = decision.at.replace(second=4)
        later = first.model_copy(
            update={"new_decisions": [decision.model_copy(update={"at": later_at})]}
        )

        async def recorded():
            return await pool.fetchrow(
                "SELECT at, outcome, xmin::text AS xmin FROM decisions "
                "WHERE round_id = $1 AND applicant_id = 'A' AND seq = 0",
                round_id,
            )

        await rm.project_journey(first)
        assert (await recorded())["at"] == decision.at
        await rm.project_journey(later)
        assert (await recorded())["at"] == later_at
        await rm.write_rows([first, later])  # both in one statement: the last one is kept
        kept = await recorded()
        assert (kept["at"], kept["outcome"]) == (later_at, decision.outcome)
        await rm.write_rows([later])  # the same again: the row is not even rewritten
        assert (await recorded())["xmin"] == kept["xmin"]
        await rm.project_journey(first)  # the first attempt's write, landing late: no effect
        assert (await recorded())["xmin"] == kept["xmin"]

        # A time later than the history's (which no write lets an earlier one replace) is named
        # by check-read-model, and its repair puts the history's back.
        from auditing.readmodel import Projected, check, repair

        projected = Projected(round_id, projections={"A": [later]})
        assert (await check(pool, projected)).differences == []
        await pool.execute(
            "UPDATE decisions SET at = at + interval '1 hour' WHERE round_id = $1", round_id
        )
        found = await check(pool, projected)
        assert [(d.kind, d.detail) for d in found.differences] == [
            ("decision altered", "seq 0: at (the read model's 3600.000 s later)")
        ]
        fixed = await repair(pool, rm, projected)
        assert (fixed.differences, fixed.repaired) == ([], 1)
        assert (await recorded())["at"] == later_at
    finally:
        await pool.close()


async def test_a_revocation_written_again_by_a_later_attempt_takes_its_time(stack, round_id):
    """The same for an aftermath's revocations (activities/revocations.py)."""
    from activities.revocations import RevocationWriter
    from domain.aftermath import Revocation, RevocationRows
    from domain.codes import Terminal

    pool = await open_pool(stack.database_url, max_size=2)
    try:
        writer = RevocationWriter(pool)
        first_at = datetime(2027, 6, 1, 9, 0, 0, tzinfo=UTC)
        revocation = Revocation(
            code="DIS",
            at=first_at,
            journey_terminal=Terminal.PNS,
            reported_by="bkn",
            report_id="dis-1",
            reason="forged diploma",
        )

        def rows(r: Revocation) -> RevocationRows:
            return RevocationRows(round_id=round_id, applicant_id="A", first_seq=0, revocations=[r])

        async def recorded():
            return await pool.fetchrow(
                "SELECT at, code, xmin::text AS xmin FROM revocations "
                "WHERE round_id = $1 AND applicant_id = 'A' AND seq = 0",
                round_id,
            )

        await writer.project_revocations(rows(revocation))
        assert (await recorded())["at"] == first_at
        later = revocation.model_copy(update={"at": first_at.replace(second=5)})
        await writer.project_revocations(rows(later))
        kept = await recorded()
        assert (kept["at"], kept["code"]) == (later.at, "DIS")
        await writer.project_revocations(rows(later))
        assert (await recorded())["xmin"] == kept["xmin"]
        await writer.project_revocations(rows(revocation))  # the first attempt's, landing late
        assert (await recorded())["xmin"] == kept["xmin"]

        # Stored later than the history's time: named, and put back by the repair.
        from auditing.readmodel import Projected, check, repair

        projected = Projected(round_id, projections={"A": []}, revocations={"A": [rows(later)]})
        assert (await check(pool, projected)).differences == []
        await pool.execute(
            "UPDATE revocations SET at = at + interval '1 day' WHERE round_id = $1", round_id
        )
        found = await check(pool, projected)
        assert [(d.kind, d.detail) for d in found.differences] == [
            ("revocation altered", "seq 0: at")
        ]
        fixed = await repair(pool, ReadModel(pool, CIPHER), projected)
        assert (fixed.differences, fixed.repaired) == ([], 1)
        assert (await recorded())["at"] == later.at
    finally:
        await pool.close()


async def test_an_aps_sanction_altered_in_the_register_is_named_and_made_good(stack, round_id):
    """The sanctions register's APS entry follows from the journey that ended in APS: a ban
    shortened in the register (rounds 3 to 1) is a difference check-read-model names, and its
    repair writes the journey's entry back (the write now updates an entry that differs)."""
    from auditing.readmodel import Projected, check, repair
    from domain.codes import Terminal

    written = projection(round_id, "A", 2, Stage.ENDED)
    withdrawn = written.new_decisions[0].model_copy(update={"outcome": Terminal.WITHDRAWN.value})
    aps = written.model_copy(
        update={
            "state": written.state.model_copy(
                update={
                    "terminal": Terminal.WITHDRAWN,
                    "terminal_reason": "withdrew after the final announcement",
                    "sanction_rounds": 3,
                }
            ),
            "new_decisions": [withdrawn],
            "sanction_key": "a" * 64,
        }
    )
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        await rm.write_rows([aps])
        projected = Projected(round_id, projections={"A": [aps]})
        assert (await check(pool, projected)).differences == []
        origin = f"{round_id}/A"
        await pool.execute("UPDATE sanctions SET rounds = 1 WHERE origin = $1", origin)
        found = await check(pool, projected)
        assert [(d.kind, d.applicant_id, d.detail) for d in found.differences] == [
            ("sanction altered", "A", "APS: rounds")
        ]
        fixed = await repair(pool, rm, projected)
        assert fixed.differences == [] and fixed.repaired == 1
        assert await pool.fetchval("SELECT rounds FROM sanctions WHERE origin = $1", origin) == 3
    finally:
        await pool.close()


async def test_an_aps_sanction_takes_its_withdrawal_time_from_the_attempt_the_history_records(
    stack, round_id
):
    """The register's imposed_at is the time of the journey's Withdrew decision, as its history
    records it: a later attempt of the task that decided it writes its own time over the first's;
    a projection after it (no withdrawal decision of its own) leaves the time alone, also in one
    statement with the first (one statement cannot update a row twice); and a time altered in the
    register is named by check-read-model and written back by its repair."""
    from auditing.readmodel import Projected, check, repair
    from domain.codes import Terminal

    ended = projection(round_id, "A", 2, Stage.ENDED)
    first_at = datetime(2027, 5, 3, 8, 0, 0, tzinfo=UTC)
    withdrew = ended.new_decisions[0].model_copy(
        update={"outcome": Terminal.WITHDRAWN.value, "at": first_at}
    )
    state = ended.state.model_copy(
        update={
            "terminal": Terminal.WITHDRAWN,
            "terminal_reason": "APS: withdrew; barred from the next 2 rounds",
            "sanction_rounds": 2,
        }
    )
    decided = ended.model_copy(
        update={"state": state, "new_decisions": [withdrew], "sanction_key": "b" * 64}
    )
    after = decided.model_copy(
        update={
            "version": 3,
            "first_seq": 1,
            "new_decisions": [],
            "notifications": [Notification(key="k-after", text="t")],
            "reports": [],
        }
    )
    origin = f"{round_id}/A"
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)

        async def imposed_at():
            return await pool.fetchval("SELECT imposed_at FROM sanctions WHERE origin = $1", origin)

        await rm.write_rows([decided, after])
        assert await imposed_at() == first_at
        later_at = first_at.replace(second=6)
        retried = decided.model_copy(
            update={"new_decisions": [withdrew.model_copy(update={"at": later_at})]}
        )
        await rm.project_journey(retried)
        assert await imposed_at() == later_at
        await rm.project_journey(after)
        assert await imposed_at() == later_at
        await rm.project_journey(decided)  # the first attempt's write, landing late: no effect
        assert await imposed_at() == later_at

        projected = Projected(round_id, projections={"A": [retried, after]})
        assert (await check(pool, projected)).differences == []
        # Altered to an earlier time, or to a later one (which no write replaces with an
        # earlier): named, and put back by the repair.
        for altered in (first_at, later_at + timedelta(hours=1)):
            await pool.execute(
                "UPDATE sanctions SET imposed_at = $2 WHERE origin = $1", origin, altered
            )
            found = await check(pool, projected)
            assert [(d.kind, d.applicant_id, d.detail) for d in found.differences] == [
                ("sanction altered", "A", "APS: imposed_at")
            ]
            fixed = await repair(pool, rm, projected)
            assert fixed.differences == [] and fixed.repaired == 1
            assert await imposed_at() == later_at
    finally:
        await pool.close()


async def test_a_nip_altered_or_lost_in_the_register_is_named(stack, stack_settings, round_id):
    """The NIP register (table nips) is where a person appointed again, in any round, gets the NIP
    they hold: a NIP its owner altered there would be handed on, and one lost would let the person
    be given a second. The journey's state, as its history records it, holds the NIP it was given
    and told: check-read-model holds the register to it. Not repaired: a person puts it back."""
    from auditing.readmodel import Projected, check, repair

    def appointed(applicant: str, nip: str | None, person: str = "") -> JourneyProjection:
        p = projection(round_id, applicant, 4, Stage.APPOINTMENT)
        state = p.state.model_copy(update={"nip": nip})
        return p.model_copy(update={"state": state, "sanction_key": person})

    serial = int(round_id.encode().hex(), 16) % 10**3  # the round's own NIPs (a unique column)
    nip_a, nip_b = (f"19990101202703{g}{serial:03d}" for g in (1, 2))
    nip_e, nip_f = (f"19980101202703{g}{serial:03d}" for g in (1, 2))
    held = f"19990101202503{1}{serial:03d}"  # C's, held from an earlier round
    person_e, person_f = "e" * 64, "f" * 64
    projected = Projected(
        round_id,
        projections={
            "A": [appointed("A", nip_a)],
            "B": [appointed("B", nip_b)],
            "C": [appointed("C", held)],
            "D": [appointed("D", None)],
            "E": [appointed("E", nip_e, person_e)],
            "F": [appointed("F", nip_f, person_f)],
        },
    )
    pool = await open_pool(stack.database_url, max_size=4)
    try:
        rm = ReadModel(pool, CIPHER)
        await rm.write_rows([p for ps in projected.projections.values() for p in ps])
        await pool.executemany(
            "INSERT INTO nips (round_id, applicant_id, nip) VALUES ($1, $2, $3)",
            [(round_id, "A", nip_a), (round_id, "B", nip_b), (f"{round_id}-before", "C", held)],
        )
        await pool.executemany(
            "INSERT INTO nips (round_id, applicant_id, nip, person) VALUES ($1, $2, $3, $4)",
            [(round_id, "E", nip_e, person_e), (round_id, "F", nip_f, person_f)],
        )
        clean = await check(pool, projected)
        owner = await asyncpg.connect(owner_database_url(stack_settings))  # the processes may not
        try:
            await owner.execute(
                "UPDATE nips SET nip = $3 WHERE round_id = $1 AND applicant_id = $2",
                round_id,
                "A",
                nip_a[:-3] + f"{(serial + 1) % 1000:03d}",
            )
            await owner.execute(
                "DELETE FROM nips WHERE round_id = $1 AND applicant_id = 'B'", round_id
            )
            # E's row given to another person, F's moved to an applicant nobody is (review of
            # 12-07): only the NIP's value was compared, and any row holding it was taken.
            await owner.execute(
                "UPDATE nips SET person = $2 WHERE round_id = $1 AND applicant_id = 'E'",
                round_id,
                "9" * 64,
            )
            await owner.execute(
                "UPDATE nips SET applicant_id = 'Z' WHERE round_id = $1 AND applicant_id = 'F'",
                round_id,
            )
        finally:
            await owner.close()
        await pool.execute(
            "INSERT INTO nips (round_id, applicant_id, nip) VALUES ($1, 'D', $2)",
            round_id,
            f"19990101202703{3}{serial:03d}",
        )
        found = await check(pool, projected)
        repaired = await repair(pool, rm, projected)
    finally:
        await pool.close()

    assert clean.differences == []
    assert [(d.kind, d.applicant_id, d.detail) for d in found.differences] == [
        ("nip altered", "A", "the register's differs from the one the journey was given"),
        ("nip missing", "B", "no row of it in the register"),
        ("nip without history", "D", "the journey was given none"),
        (
            "nip altered",
            "E",
            "the register names another person for it than the journey asked it for",
        ),
        ("nip missing", "F", "no row of it in the register"),
        ("nip without history", "Z", "no journey of the round has it"),
    ]
    assert repaired.differences == found.differences and repaired.repaired == 0
