"""Summarise a py-spy raw (collapsed-stack) profile of a journeys run by where the time goes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "EpollSelector.select")

BUCKETS = [
    (
        "sandbox: new workflow instance (imports, model classes)",
        ("SandboxedWorkflowRunner.create_instance",),
    ),
    (
        "SDK serialization context per payload",
        ("get_serialization_context", "get_external_store_context"),
    ),
    ("workflow code (journey, formasi, round, domain)", ("_Instance._run_code",)),
    ("payload codec (AES-GCM) and payload visitor", ("PayloadVisitor", "AesGcmCodec")),
    ("activities (project_journey, issue_nip, broadcast)", ("_ActivityWorker",)),
    ("activation plumbing (bridge, thread hand-off)", ("_WorkflowWorker",)),
    ("asyncpg outside activities", ("asyncpg",)),
]


def summarise(path: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """(all samples, active samples, [(bucket, samples)]) of a py-spy --format raw file."""
    total = active = 0
    buckets: Counter = Counter()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        count = int(n)
        total += count
        frames = stack.split(";")
        if not stack.strip() or frames[-1].startswith(IDLE_LEAVES):
            continue
        active += count
        for name, needles in BUCKETS:
            if any(k in stack for k in needles):
                buckets[name] += count
                break
        else:
            buckets["other (event loop, sockets, driver)"] += count
    return total, active, buckets.most_common()
