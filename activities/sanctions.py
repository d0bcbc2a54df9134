"""Reading the sanctions register (client/sanctions.py has its rules): which entries bar a
registration, for RecruitmentApi before a journey starts and for the journey itself.

The journey asks again in its first workflow task (`check_sanctions`, a local activity in the task
that already reads the round: no engine action more), so a registrar that skipped the register, or
was given none, cannot carry a barred NIK into a round (patch sanctions-in-journey). The answer is
recorded in the journey's history with the decision it led to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from domain.messages import SanctionCheck, SanctionVerdict
from domain.protocol import CHECK_SANCTIONS

APS = "APS"
NATIONAL_LIST = "national_list"
WIB = ZoneInfo("Asia/Jakarta")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Entry:
    """One entry of the register, as `sanctions list` shows it (no NIK)."""

    subject: str
    kind: str
    origin: str
    imposed_by: str
    imposed_at: datetime
    rounds: int | None
    barred_until: date | None
    reason: str

    @property
    def term(self) -> str:
        """How long the entry bars: `2 rounds` or `until 2027-12-31`."""
        if self.barred_until is not None:
            return f"until {self.barred_until.isoformat()}"
        return f"{self.rounds} round{'s' if self.rounds != 1 else ''}"


@dataclass(frozen=True)
class Bar:
    """An entry that bars one registration, with where the registering round stands in it."""

    entry: Entry
    since: datetime  # the registration opening (or import) the rounds are counted after
    nth: int  # which of the counted rounds the registering round is (0: not one of them)

    def reason(self, round_id: str) -> str:
        """Why the registration is refused: until when, and by which round or list."""
        e = self.entry
        if e.kind == APS:
            by = f"by round {e.imposed_by} (APS)"
            after = f"round {e.imposed_by}"
        else:
            by = f"by national list {e.imposed_by} ({e.reason})"
            after = f"{self.since.astimezone(WIB).date().isoformat()} (the list's import)"
        if e.barred_until is not None:
            return f"barred until {e.barred_until.isoformat()} {by}"
        assert e.rounds is not None
        return (
            f"barred until the {_ordinal(e.rounds)} round opening after {after} is over "
            f"(round {round_id} is the {_ordinal(self.nth)}) {by}"
        )


# The entries are read through sanction_entries (migration 024_gateway_columns): the gateway's role
# may read one subject's entries, not the register whole.
# $2: the registering round's registration opening, or NULL for the one on the calendar ($3's).
# A round on neither is no counted round of any entry (nth 0); entries with an end date still bar.
# Rounds are counted by period (migration 021): the rounds of one national round count once, and
# those of the sanctioning round's own period not at all; a round of none is a period of its own.
_BARS_SQL = """
WITH opening AS (
    SELECT COALESCE($2::timestamptz,
        (SELECT registration_opens FROM sanction_calendar WHERE round_id = $3)) AS at
)
SELECT s.subject, s.kind, s.origin, s.imposed_by, s.imposed_at, s.rounds, s.barred_until, s.reason,
    since.at AS since,
    (SELECT count(DISTINCT COALESCE(k.period, k.round_id)) FROM sanction_calendar k, opening o
        WHERE k.registration_opens > since.at AND k.registration_opens <= o.at
        AND COALESCE(k.period, k.round_id) IS DISTINCT FROM since.period) AS nth
FROM sanction_entries($1) s
LEFT JOIN sanction_calendar c ON s.kind = 'APS' AND c.round_id = s.imposed_by
CROSS JOIN LATERAL (
    SELECT COALESCE(c.registration_opens, s.imposed_at) AS at,
        COALESCE(c.period, c.round_id) AS period
) since
ORDER BY s.imposed_at, s.kind, s.origin
"""


def entry_of(row) -> Entry:
    """An Entry from a row of the sanctions table."""
    return Entry(
        subject=row["subject"],
        kind=row["kind"],
        origin=row["origin"],
        imposed_by=row["imposed_by"],
        imposed_at=row["imposed_at"],
        rounds=row["rounds"],
        barred_until=row["barred_until"],
        reason=row["reason"],
    )


async def record_round(
    pool: asyncpg.Pool, round_id: str, registration_opens: datetime, period: str | None = None
) -> None:
    """Put a round on the calendar the next N rounds are counted over (the first write stays),
    with its period: the national round it joined, or None (a period of its own). A period
    learnt after the first write (the journey's check, which does not know it, came first) is
    added."""
    await pool.execute(
        "INSERT INTO sanction_calendar (round_id, registration_opens, period) VALUES ($1, $2, $3) "
        "ON CONFLICT (round_id) DO UPDATE SET period = EXCLUDED.period "
        "WHERE sanction_calendar.period IS NULL AND EXCLUDED.period IS NOT NULL",
        round_id,
        registration_opens,
        period,
    )


async def find_bars(
    pool: asyncpg.Pool,
    round_id: str,
    registration_opens: datetime | None,
    subject: str,
    applied_on: date,
) -> list[Bar]:
    """The entries that bar `subject` from registering in `round_id` on `applied_on`."""
    rows = await pool.fetch(_BARS_SQL, subject, registration_opens, round_id)
    found = []
    for row in rows:
        bar = Bar(entry_of(row), row["since"], int(row["nth"]))
        e = bar.entry
        if e.barred_until is not None and applied_on <= e.barred_until:
            found.append(bar)
        elif e.rounds is not None and 1 <= bar.nth <= e.rounds:
            found.append(bar)
    return found


class SanctionChecker:
    """The journey's own look at the register (a local activity of its first workflow task)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._calendar: set[str] = set()  # rounds whose opening this process has recorded

    @activity.defn(name=CHECK_SANCTIONS.name)
    async def check_sanctions(self, check: SanctionCheck) -> SanctionVerdict:
        """What bars the registration, as the refusal's reasons (none: not barred). Safe to repeat:
        the calendar keeps a round's first opening."""
        if check.registration_opens is not None and check.round_id not in self._calendar:
            await record_round(self.pool, check.round_id, check.registration_opens)
            self._calendar.add(check.round_id)
        bars = await find_bars(
            self.pool, check.round_id, check.registration_opens, check.subject, check.applied_on
        )
        return SanctionVerdict(reasons=[bar.reason(check.round_id) for bar in bars])
