"""The columnar SKD ranking (domain/columnar.py) against a bare NumPy filter + lexsort and against
rank_skd, in one process per size (so the ratios share the machine's load of that moment).

    python -m bench.columnar --size 1000000 --rank-skd
prints one JSON line. `python3 run.py bench columnar-ranking` runs it for each size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import numpy as np

from domain.columnar import CATEGORIES, rank_skd_columns, skd_columns
from domain.config import Category, SkdRules
from domain.ranking import SkdEntry, rank_skd
from domain.skd import SkdScores

BASE32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)


def rows_like_histories(size: int, seed: int) -> list[tuple[str, Category, int, int, int]]:
    """What auditing.recompute's JourneyInputs.skd_row gives per journey: registration numbers
    as client.api.applicant_id_for makes them (16 base32 characters of a keyed hash), category
    umum, and scores drawn like the demo's CAT results (TWK and TIU in steps of 5: many ties)."""
    rng = np.random.default_rng(seed)
    ids = BASE32[rng.integers(0, 32, (size, 16))].view("S16").ravel().astype("U16").tolist()
    twk = np.clip(rng.normal(85, 18, size).astype(np.int64) // 5 * 5, 0, 150).tolist()
    tiu = np.clip(rng.normal(100, 22, size).astype(np.int64) // 5 * 5, 0, 175).tolist()
    tkp = np.clip(rng.normal(172, 14, size).astype(np.int64), 0, 225).tolist()
    umum = Category.UMUM
    return [(ids[i], umum, twk[i], tiu[i], tkp[i]) for i in range(size)]


def bare_filter_lexsort(columns, rules: SkdRules) -> np.ndarray:
    """The floor: the threshold filter and a lexsort of the passers on (total, TKP, TIU, TWK), no
    id order, no ranks, no cut, no codes (the issue's "columnar NumPy filter and lexsort")."""
    total = columns.twk + columns.tiu + columns.tkp
    floor = np.iinfo(np.int64).min
    limits = np.array(
        [
            [
                floor if (v := getattr(rules.thresholds[c], p)) is None else v
                for p in ("twk", "tiu", "tkp", "total")
            ]
            for c in CATEGORIES
        ],
        dtype=np.int64,
    )[columns.category]
    passed = np.flatnonzero(
        (columns.twk >= limits[:, 0])
        & (columns.tiu >= limits[:, 1])
        & (columns.tkp >= limits[:, 2])
        & (total >= limits[:, 3])
    )
    order = np.lexsort(
        (-columns.twk[passed], -columns.tiu[passed], -columns.tkp[passed], -total[passed])
    )
    return passed[order]


def full_listing(columns, quota: int, rules: SkdRules):
    """The auditor's full listing: every line's id, rank, code and total, in listing order."""
    ranking = rank_skd_columns(columns, quota, rules)
    return columns.ids[ranking.order], ranking.rank, ranking.code, ranking.total, ranking


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--quota", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rank-skd", action="store_true", help="also rank_skd on the same rows")
    a = ap.parse_args()
    rules = SkdRules()
    out: dict = {"size": a.size, "quota": a.quota, "load_start": os.getloadavg()[0]}
    rows = rows_like_histories(a.size, a.seed)
    gc.collect()
    t = time.perf_counter()
    columns = skd_columns(rows)
    out["build_columns_s"] = time.perf_counter() - t
    listing, baseline = [], []
    for _ in range(a.repeat):  # alternated, so both see the same load
        t = time.perf_counter()
        bare_filter_lexsort(columns, rules)
        baseline.append(time.perf_counter() - t)
        t = time.perf_counter()
        ids, rank, code, total, ranking = full_listing(columns, a.quota, rules)
        listing.append(time.perf_counter() - t)
    out["listing_s"] = listing
    out["baseline_s"] = baseline
    out["listing_median_s"] = statistics.median(listing)
    out["baseline_median_s"] = statistics.median(baseline)
    out["passers"] = ranking.passers
    out["on_to_skb"] = int(np.count_nonzero(code == 0))
    out["cut_key"] = ranking.cut_key
    if a.rank_skd:
        t = time.perf_counter()
        entries = [
            SkdEntry.model_construct(
                applicant_id=i,
                category=c,
                scores=SkdScores.model_construct(twk=w, tiu=u, tkp=k),
            )
            for i, c, w, u, k in rows
        ]
        out["build_entries_s"] = time.perf_counter() - t
        gc.collect()
        t = time.perf_counter()
        expected = rank_skd(entries, a.quota, rules)
        out["rank_skd_s"] = time.perf_counter() - t
        del entries
        gc.collect()
        out["equal_to_rank_skd"] = ranking.ranking(columns.ids) == expected
    out["load_end"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
