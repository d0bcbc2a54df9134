"""A person holds one NIP, whatever the round (DOMAIN.md: issued once per person, never twice).

A registration number is a pseudonym of the NIK within one round, so keying NIPs by round and
number let a person appointed in two rounds be given two. The request names the person by the
NIK's round-independent pseudonym; a second round's request is given the NIP the person holds.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import ActivityEnvironment

from activities.readmodel import NipSerialsBehind, ReadModel
from domain.contracts import NipRequest
from domain.registration import Gender
from runtime.db import open_pool
from runtime.embedded import owner_database_url
from runtime.sealed import ColumnCipher

ENV = ActivityEnvironment()

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def nips(stack, stack_settings):
    """The read model's NIP activity on a pool of this test's own, and the rounds it issued in."""
    pool = await open_pool(stack.database_url, max_size=4)
    rounds: list[str] = []
    try:
        yield ReadModel(pool, ColumnCipher(b"n" * 32)), pool, rounds
    finally:
        await pool.close()
        owner = await asyncpg.connect(owner_database_url(stack_settings))  # the register's rows
        try:  # are the processes' to add, never to delete
            await owner.execute("DELETE FROM nips WHERE round_id = ANY($1)", rounds)
        finally:
            await owner.close()


def _request(round_id: str, applicant_id: str, person: str, tmt: date) -> NipRequest:
    return NipRequest(
        round_id=round_id,
        applicant_id=applicant_id,
        birth_date=date(1996, 4, 2),
        tmt=tmt,
        gender=Gender.MALE,
        person=person,
    )


async def test_a_person_appointed_in_a_second_round_keeps_the_nip_they_hold(nips):
    model, pool, rounds = nips
    first, second = (f"nip-{uuid.uuid4().hex[:6]}" for _ in range(2))
    rounds += [first, second]
    person = uuid.uuid4().hex  # the NIK's keyed pseudonym, the same in every round

    given = await ENV.run(model.issue_nip, _request(first, "AAAA", person, date(2027, 3, 1)))
    again = await ENV.run(model.issue_nip, _request(first, "AAAA", person, date(2027, 3, 1)))
    later = await ENV.run(model.issue_nip, _request(second, "BBBB", person, date(2028, 3, 1)))

    assert given.newly_issued and not again.newly_issued and again.nip == given.nip
    assert (later.nip, later.newly_issued, later.held_from_round) == (given.nip, False, first)
    held = await pool.fetchval("SELECT count(*) FROM nips WHERE person = $1", person)
    assert held == 1  # one row: the second round's registration holds no NIP of its own


async def test_two_rounds_asking_at_once_give_the_person_one_nip(nips):
    model, _, rounds = nips
    a, b = (f"nip-{uuid.uuid4().hex[:6]}" for _ in range(2))
    rounds += [a, b]
    person = uuid.uuid4().hex
    answers = await asyncio.gather(
        ENV.run(model.issue_nip, _request(a, "CCCC", person, date(2027, 3, 1))),
        ENV.run(model.issue_nip, _request(b, "DDDD", person, date(2027, 3, 1))),
    )
    assert answers[0].nip == answers[1].nip
    assert sorted(x.newly_issued for x in answers) == [False, True]


async def test_a_request_without_the_person_is_judged_by_round_and_number_as_before(nips):
    model, _, rounds = nips
    r = f"nip-{uuid.uuid4().hex[:6]}"
    rounds.append(r)
    one = await ENV.run(model.issue_nip, _request(r, "EEEE", "", date(2027, 3, 1)))
    two = await ENV.run(model.issue_nip, _request(r, "FFFF", "", date(2027, 3, 1)))
    assert one.newly_issued and two.newly_issued and one.nip != two.nip


async def test_a_serial_counter_behind_the_register_is_named_without_the_nip(nips, stack_settings):
    """After a restore of `nip_serials` older than `nips`, the next serial is taken: the failure
    names the registration and what to mend, never the NIP (the driver's DETAIL quotes it, and
    the SDK logs an activity's failure with its causes on every retry); the mend in
    docs/OPERATIONS.md 4 lets the same request through."""
    model, pool, rounds = nips
    r = f"nip-{uuid.uuid4().hex[:6]}"
    rounds.append(r)
    # A prefix of this test's own: a birth date no other test asks for.
    born = date(1950, 1, 1) + timedelta(days=uuid.uuid4().int % 3000)
    ask = _request(r, "GGGG", uuid.uuid4().hex, date(2031, 1, 1)).model_copy(
        update={"birth_date": born}
    )
    first = await ENV.run(model.issue_nip, ask)
    owner = await asyncpg.connect(owner_database_url(stack_settings))
    try:
        await owner.execute(
            "UPDATE nip_serials SET last_serial = last_serial - 1 WHERE prefix = $1", first.nip[:15]
        )
        second = ask.model_copy(update={"applicant_id": "HHHH", "person": uuid.uuid4().hex})
        with pytest.raises(NipSerialsBehind) as caught:
            await ENV.run(model.issue_nip, second)
        said = str(caught.value)
        assert "HHHH" in said and "nip_serials is behind nips" in said, said
        assert first.nip not in said and caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        mend = docs_sql()
        await owner.execute(mend)
        issued = await ENV.run(model.issue_nip, second)
        assert issued.newly_issued and issued.nip[:15] == first.nip[:15] != issued.nip
    finally:
        await owner.close()


def docs_sql() -> str:
    """The mend docs/OPERATIONS.md gives, as written there."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md").read_text()
    [sql] = re.findall(r"```sql\n(INSERT INTO nip_serials.*?)```", text, re.S)
    return sql
