"""Each formasi's final standing as its readers need it: winners in rank order and candidates.

A formasi that keeps its ranking as pages (patch paged-ranking, domain/pages.py) sends the round
references only; the announcements, the evaluation report and the demo read the lists here, from
the page store, each page checked against the digest the round recorded.
"""

from __future__ import annotations

import asyncpg

from activities.pages import PageStore
from domain.messages import FormasiResult
from domain.pages import CANDIDATES, LINES, Candidate, ids_of
from runtime.sealed import ColumnCipher


def page_store(
    db: asyncpg.Connection | asyncpg.Pool, cipher: ColumnCipher | None
) -> PageStore | None:
    """The page store on a connection (or pool); None without the payload keys to open it."""
    return None if cipher is None else PageStore(db, cipher)  # type: ignore[arg-type]


async def full_result(store: PageStore | None, result: FormasiResult) -> FormasiResult:
    """`result` with its winners, candidates and profiles listed (as it is, when it lists them)."""
    if not result.paged:
        return result
    if store is None:
        raise ValueError(
            f"formasi {result.formasi_code}'s result is kept as pages: reading it needs the "
            "payload keys (CASN_PAYLOAD_KEY)"
        )
    winners: list[str] = []
    for ref in result.winner_pages:
        winners.extend(ids_of(await store.get(LINES, ref)))
    candidates = [
        Candidate.model_validate(item)
        for ref in result.candidate_pages
        for item in await store.get(CANDIDATES, ref)
    ]
    return result.model_copy(
        update={
            "winners": winners,
            "candidates": [c.entry for c in candidates],
            "profiles": {c.entry.applicant_id: c.profile for c in candidates if c.profile},
        }
    )


async def full_results(
    store: PageStore | None, results: dict[str, FormasiResult]
) -> dict[str, FormasiResult]:
    """Every result of a round's state with its lists (see `full_result`)."""
    return {code: await full_result(store, r) for code, r in results.items()}
