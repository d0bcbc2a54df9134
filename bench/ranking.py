"""SKD ranking with the domain code, one size and method per process (so peak memory is its own).

    python -m bench.ranking --size 1000000 --method rank_skd --quota 100
prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import time

from domain.config import Category, SkdRules
from domain.ranking import SkdCutTracker, SkdEntry, rank_skd, skd_cut_size
from domain.skd import SkdScores, passes_threshold, skd_rank_key


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--method", choices=["rank_skd", "tracker"], required=True)
    ap.add_argument("--quota", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rules = SkdRules()
    base = rss_mib()
    t = time.perf_counter()
    # scores drawn like the demo's CAT results (step 5 for TWK and TIU), so ties are common
    twk = [min(150, max(0, int(rng.gauss(85, 18)) // 5 * 5)) for _ in range(a.size)]
    tiu = [min(175, max(0, int(rng.gauss(100, 22)) // 5 * 5)) for _ in range(a.size)]
    tkp = [min(225, max(0, int(rng.gauss(172, 14)))) for _ in range(a.size)]
    out: dict = {
        "size": a.size,
        "method": a.method,
        "quota": a.quota,
        "cut": skd_cut_size(a.quota, rules),
    }
    if a.method == "rank_skd":
        entries = [
            SkdEntry.model_construct(
                applicant_id=f"A{i:08d}",
                category=Category.UMUM,
                scores=SkdScores.model_construct(twk=twk[i], tiu=tiu[i], tkp=tkp[i]),
            )
            for i in range(a.size)
        ]
        del twk, tiu, tkp
        gc.collect()
        out["build_s"] = time.perf_counter() - t
        out["rss_input_mib"] = rss_mib() - base
        t = time.perf_counter()
        ranking = rank_skd(entries, a.quota, rules)
        out["rank_s"] = time.perf_counter() - t
        out["lines"] = len(ranking.lines)
        out["cut_key"] = ranking.cut_key
    else:
        # what the formasi workflow does: each journey that passed its threshold sends its key
        keys = []
        for i in range(a.size):
            s = SkdScores.model_construct(twk=twk[i], tiu=tiu[i], tkp=tkp[i])
            if passes_threshold(s, Category.UMUM, rules):
                keys.append((f"A{i:08d}", skd_rank_key(s)))
        del twk, tiu, tkp
        out["build_s"] = time.perf_counter() - t
        out["passers"] = len(keys)
        out["rss_input_mib"] = rss_mib() - base
        tracker = SkdCutTracker(capacity=skd_cut_size(a.quota, rules))
        t = time.perf_counter()
        for applicant_id, key in keys:
            tracker.add(applicant_id, key)
        out["rank_s"] = time.perf_counter() - t
        out["cut_key"] = tracker.cut_key()
        out["state_bytes"] = len(tracker.model_dump_json())
    out["peak_rss_mib"] = peak_mib()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
