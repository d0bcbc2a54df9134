"""Every payload of a formasi's selection at national size, kept as pages against carried whole.

`python3 run.py bench page-payloads --quota 10000 --size 100000` (issue 17 item 1). A formasi of
that size takes hours to play end to end here, so this benchmark builds what such a formasi's
workflows would send, from the real models, the real page store (embedded PostgreSQL, sealed
pages) and the real ranking activities (run in Temporal's activity environment), and encodes each
payload with the project's data converter (pydantic JSON, then the AES-GCM codec): the bytes the
Temporal server would hold. Beside each, the payload the design before paging sent in its place.
`big-formasi` plays a smaller formasi end to end on the real stack and reports its largest event.
"""

from __future__ import annotations

import random
import string
import time
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.pages import PageStore
from domain.codes import Phase
from domain.config import FOLD_PAGES_AT, Formasi
from domain.contracts import BroadcastRequest, BroadcastResult
from domain.messages import Announcement, CloseReply, FormasiResult
from domain.optimalisasi import CandidateProfile, OptimalisasiCandidate, Vacancy, allocate
from domain.pages import (
    LINES,
    REPLIES,
    AllocationRequest,
    FinalPagesRequest,
    PageFold,
    PageRead,
    PageRef,
    ResultPages,
    SkdPagesRequest,
    chunks,
    ids_of,
)
from domain.ranking import FinalEntry, SkdCutTracker, rank_final
from domain.seal import sealed
from domain.skd import SkdScores, skd_rank_key
from runtime.sealed import ColumnCipher

LIMIT = 256 * 1024  # DESIGN.md: aim under 256 KB (the server warns there, fails at 2 MB)


async def _folded(
    env: ActivityEnvironment, store: PageStore, owner: str, pages: list[PageRef]
) -> list[PageRef]:
    """`pages` as a formasi carries them: each appended, the list folded into an index page
    whenever it reaches FOLD_PAGES_AT (workflows/formasi.py, `_keep`)."""
    carried: list[PageRef] = []
    for ref in pages:
        carried.append(ref)
        if len(carried) >= FOLD_PAGES_AT:
            carried = [await env.run(store.fold_pages, PageFold(owner=owner, pages=carried))]
    return carried


def _ids(n: int, rng: random.Random) -> list[str]:
    alphabet = string.ascii_uppercase + "234567"
    return ["".join(rng.choices(alphabet, k=16)) for _ in range(n)]


def _scores(rng: random.Random) -> SkdScores:
    return SkdScores(
        twk=rng.randrange(30, 151, 5), tiu=rng.randrange(40, 176, 5), tkp=rng.randint(120, 225)
    )


async def _size(converter: Any, value: Any) -> int:
    payloads = await converter.encode([value])
    return len(payloads[0].SerializeToString())


async def run_page_payloads(ctx: Any, quota: int, size: int, page: int, seed: int) -> dict:
    """Build the formasi's messages at `quota`/`size` both ways and measure each encoded payload."""
    rng = random.Random(seed)
    converter = ctx.app.client.data_converter
    store = PageStore(ctx.pool, ColumnCipher.from_keys(ctx.app.keys))
    env = ActivityEnvironment()
    owner = f"BENCH-PAGES-{seed}/formasi/F1"
    round_id, code = f"BENCH-PAGES-{seed}", "F1"
    secret = "b" * 64
    ids = _ids(size, rng)
    capacity = 3 * quota

    # SKD: every applicant answers the close; about half pass and carry a key.
    t = time.monotonic()
    skd_replies = [
        CloseReply(
            applicant_id=a,
            phase=Phase.SKD_CLOSED,
            key=skd_rank_key(_scores(rng)) if rng.random() < 0.5 else None,
        )
        for a in ids
    ]
    skd_pages = [
        await store.put(REPLIES, owner, [r for r in chunk if r.key is not None])
        for chunk in chunks(skd_replies, page)
    ]
    build_skd = time.monotonic() - t
    # What the formasi carries of them (patch folded-page-references): folded into an index page
    # whenever the list reaches FOLD_PAGES_AT, as FormasiSelection._keep does.
    skd_folded = await _folded(env, store, owner, skd_pages)
    t = time.monotonic()
    cut = await env.run(
        store.rank_skd_pages, SkdPagesRequest(owner=owner, capacity=capacity, pages=skd_folded)
    )
    rank_skd = time.monotonic() - t
    flat_cut = await env.run(
        store.rank_skd_pages, SkdPagesRequest(owner=owner, capacity=capacity, pages=skd_pages)
    )
    assert flat_cut == cut, "the cut over folded pages differs from the cut over every page"
    tracker = SkdCutTracker(capacity=capacity)
    for r in skd_replies:
        if r.key is not None:
            tracker.add(r.applicant_id, r.key)
    assert tracker.cut_key() == cut.cut_key, "the paged cut differs from the tracker's"

    # SKB: the cut (3 x quota) go on; nearly all complete it with an entry and a profile.
    entrants = [e[4] for e in tracker.entries]
    entries = {
        a: FinalEntry(
            applicant_id=a,
            formasi_code=code,
            final_score=Fraction(rng.randint(4000, 9000), 100),
            skd=_scores(rng),
            gpa=round(rng.uniform(2.75, 4.0), 2),
            birth_date=date(1990, 1, 1) + timedelta(days=rng.randrange(4000)),
        )
        for a in entrants
    }
    profile = CandidateProfile(major="S-1 Teknik Informatika", applied_on=date(2026, 12, 1))
    skb_replies = [
        CloseReply(applicant_id=a, phase=Phase.SKB_CLOSED, entry=e, profile=profile)
        for a, e in entries.items()
    ]
    entry_pages = [await store.put(REPLIES, owner, chunk) for chunk in chunks(skb_replies, page)]
    entry_folded = await _folded(env, store, owner, entry_pages)
    t = time.monotonic()
    ranked = await env.run(
        store.rank_final_pages,
        FinalPagesRequest(
            owner=owner,
            quota=quota,
            pages=entry_folded,
            page_items=min(page, 1000),
            fold_at=FOLD_PAGES_AT,
        ),
    )
    rank_final_s = time.monotonic() - t
    reference = rank_final(list(entries.values()), quota)
    winner_leaves = await env.run(store.leaf_refs, LINES, ranked.winners)
    winners: list[str] = []
    for ref in winner_leaves:
        winners.extend(ids_of(await env.run(store.read_page, PageRead(kind=LINES, page=ref))))
    assert winners == reference.winners, "the paged ranking differs from rank_final"

    now = datetime.now(UTC)
    result_id = f"{round_id}/skb_closed/9/result"
    biggest_winner_page = max(winner_leaves, key=lambda r: r.count)
    lines_page = await env.run(store.read_page, PageRead(kind=LINES, page=biggest_winner_page))
    candidate_leaves = await env.run(store.leaf_refs, "candidates", ranked.candidates)
    candidates_page = await store.get("candidates", max(candidate_leaves, key=lambda r: r.count))
    profiles = {a: profile for a in reference.others}
    rows: list[tuple[str, int | None, int]] = []

    async def row(what: str, before: Any, after: Any) -> None:
        rows.append(
            (
                what,
                None if before is None else await _size(converter, before),
                await _size(converter, after),
            )
        )

    await row(
        "broadcast result of a close page (SKB)",
        BroadcastResult(delivered=page, replies=skb_replies[:page]),
        BroadcastResult(delivered=page, kept=entry_pages[0], replied=page),
    )
    await row(
        "final result announcement to a journey (and its broadcast input)",
        sealed(
            Announcement(
                announcement_id=result_id,
                phase=Phase.FINAL_RESULT,
                at=now,
                winners=reference.winners,
            ),
            secret,
        ),
        BroadcastRequest(
            round_id=round_id,
            formasi_code=code,
            announcement=sealed(
                Announcement(
                    announcement_id=result_id,
                    phase=Phase.FINAL_RESULT,
                    at=now,
                    winners=ids_of(lines_page),
                ),
                secret,
            ),
            page_size=len(lines_page),
            workflow_ids=[f"{round_id}/applicant/{a}" for a in ids_of(lines_page)],
        ),
    )
    await row(
        "formasi result to the round",
        sealed(
            FormasiResult(
                formasi_code=code,
                vacancies=quota - len(reference.winners),
                candidates=[entries[a] for a in reference.others],
                winners=reference.winners,
                profiles=profiles,
            ),
            secret,
        ),
        sealed(
            FormasiResult(
                formasi_code=code,
                vacancies=quota - ranked.n_winners,
                candidates=[],
                winners=[],
                winner_pages=ranked.winners,
                candidate_pages=ranked.candidates,
                winners_count=ranked.n_winners,
                candidates_count=ranked.n_others,
                fold_at=ranked.fold_at,
            ),
            secret,
        ),
    )
    await row(
        "the formasi's state carried across continue-as-new (during the SKD close), every page's "
        "reference (before: paged-ranking without folding)",
        {"skd_pages": [p.model_dump() for p in skd_pages]},
        {"skd_pages": [p.model_dump() for p in skd_folded]},
    )
    await row(
        "the SKD cut's decision: its pages' digests (before: paged-ranking without folding)",
        {"pages": [p.digest for p in skd_pages]},
        {"pages": [p.digest for p in skd_folded]},
    )
    await row(
        "the formasi's state carried across continue-as-new (after SKB closed)",
        {
            "tracker": tracker.model_dump(mode="json"),
            "final_entries": [e.model_dump(mode="json") for e in entries.values()],
            "profiles": {a: profile.model_dump(mode="json") for a in entries},
        },
        {
            "skd_cut": cut.model_dump(mode="json"),
            "entry_pages": [p.model_dump() for p in entry_folded],
            "ranked": ranked.model_dump(mode="json"),
        },
    )
    await row(
        "the final ranking's decision",
        {
            "winners": [[a, str(entries[a].final_score)] for a in reference.winners],
            "others": [[a, str(entries[a].final_score)] for a in reference.others],
        },
        {
            "winner_pages": [p.digest for p in ranked.winners],
            "other_pages": [p.digest for p in ranked.others],
            "winners_count": ranked.n_winners,
            "others_count": ranked.n_others,
        },
    )
    await row(
        "rank_skd_pages input (the pages of SKD answers; before: every page's reference)",
        SkdPagesRequest(owner=owner, capacity=capacity, pages=skd_pages),
        SkdPagesRequest(owner=owner, capacity=capacity, pages=skd_folded),
    )
    await row(
        "rank_final_pages result (before: every page's reference, unfolded)",
        ranked.model_copy(
            update={
                "winners": winner_leaves,
                "others": await env.run(store.leaf_refs, LINES, ranked.others),
                "candidates": candidate_leaves,
                "fold_at": None,
            }
        ),
        ranked,
    )
    await row("read_page result: a page of ranking lines", None, lines_page)
    await row(
        "read_page result: a page of candidates (rounds before allocation-over-pages read these)",
        None,
        candidates_page,
    )

    # Optimalisasi with 1% of the seats given up: the allocation over pages (patch
    # allocation-over-pages) against the same allocation over the candidates in memory.
    formasi = Formasi(
        code=code,
        jabatan="Ahli Pertama - Pranata Komputer",
        unit="Bench",
        education_level="S1",
        majors=["S-1 Teknik Informatika"],
        quota=quota,
    )
    seats = max(1, quota // 100)
    vacancies = [
        Vacancy(
            formasi_code=code,
            jabatan=formasi.jabatan,
            education_level=formasi.education_level,
            seats=seats,
        )
    ]
    request = AllocationRequest(
        round_id=round_id,
        formasi=[formasi],
        results=[
            ResultPages(
                formasi_code=code, winner_pages=ranked.winners, candidate_pages=ranked.candidates
            )
        ],
        vacancies=vacancies,
        placed=[],
        declined=reference.others[: seats // 2],  # half as many declines as seats, the best
        judged_on=None,
        pool=False,
    )
    t = time.monotonic()
    allocated = await env.run(store.allocate_pages, request)
    allocate_s = time.monotonic() - t
    in_memory = allocate(
        vacancies,
        [
            OptimalisasiCandidate(
                entry=entries[a], jabatan=formasi.jabatan, education_level=formasi.education_level
            )
            for a in reference.others
        ],
        request.declined,
    )
    assert allocated.offers == in_memory, "the allocation over pages differs from allocate's"
    await row(
        f"allocate_pages input ({len(candidate_leaves)} candidate pages under "
        f"{len(ranked.candidates)} references, {seats} seats)",
        None,
        request,
    )
    await row("allocate_pages result (the offers)", None, allocated)

    largest = max(after for _, _, after in rows)
    return {
        "quota / applicants / page": f"{quota:,} / {size:,} / {page}",
        "SKD answers kept": (
            f"{sum(p.count for p in skd_pages):,} in {len(skd_pages)} pages, carried as "
            f"{len(skd_folded)} references"
        ),
        "final entries kept": (
            f"{len(skb_replies):,} in {len(entry_pages)} pages, carried as "
            f"{len(entry_folded)} references"
        ),
        "build + keep SKD pages": f"{build_skd:.1f} s",
        "rank_skd_pages": f"{rank_skd:.2f} s (cut {cut.cut_key}, equal to the tracker's)",
        "rank_final_pages": f"{rank_final_s:.2f} s (winners equal to rank_final's)",
        "allocate_pages": (
            f"{allocate_s:.2f} s over {allocated.candidates:,} candidates: "
            f"{len(allocated.offers)} offers, equal to allocate's in memory"
        ),
        "rows": rows,
        "largest paged payload": largest,
        "under 256 KiB": largest < LIMIT,
    }
