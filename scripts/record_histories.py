"""Record the histories of a small real round for the replay tests under tests/histories/.

    .venv/bin/python scripts/record_histories.py [--out tests/histories]

Starts an embedded stack of its own (temporary data dir, free ports from the system), a worker,
and a compressed round of one formasi (quota 1) with three applicants: one wins, one loses on rank, one fails the SKD threshold. It stops once the final ranking is out and
writes every history of the round as JSON, plus the payload key that decodes them. The data is
synthetic and the key is used nowhere else: both are safe to commit.

Re-record only on purpose: the point of the committed files is that they were made by the
code as it was, so a change that alters past decisions fails the replay test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client  # noqa: E402

from auditing.bundle import history_file_name  # noqa: E402
from auditing.history import RecordedHistory, round_histories  # noqa: E402
from client.api import RecruitmentApi  # noqa: E402
from domain.codes import Stage  # noqa: E402
from domain.messages import AdminReport, GateReport, JourneyState, SkbScoreReport, SkdReport  # noqa: E402
from runtime.db import open_pool
from tests.roundkit import OPERATOR, compressed_round, formasi, registration  # noqa: E402
from workflows.ids import journey_workflow_id  # noqa: E402

SKD = {"C1": (120, 140, 190), "C2": (110, 130, 185), "C3": (60, 70, 150)}  # twk, tiu, tkp; C3 fails
SKB = {"C1": (450, 90), "C2": (400, 80)}  # cat /500, praktik /100
WINDOWS = {
    "registration": (-60, 3),
    "administration": (3, 6),
    "skd": (6, 13),
    "skb": (13, 20),
    "filing": (22, 90),
    "latsar": (90, 95),
}


async def journey_state(client: Client, round_id: str, applicant_id: str) -> JourneyState:
    """The journey's state by query (the driver needs a worker anyway)."""
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return await handle.query("state", result_type=JourneyState)


async def wait_stage(
    client: Client, round_id: str, applicant_id: str, stages: set[Stage], timeout: float = 40.0
) -> JourneyState:
    """Poll until the journey reaches one of `stages`."""
    deadline = time.monotonic() + timeout
    while True:
        state = await journey_state(client, round_id, applicant_id)
        if state.stage in stages:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{applicant_id} stuck at {state.stage} (wanted {stages})")
        await asyncio.sleep(0.3)


async def run_small_round(
    client: Client, task_queue: str, pseudonym_key: bytes, round_id: str | None = None
) -> tuple[str, dict[str, str]]:
    """Drive a compressed round until its final ranking is out; return the round id and applicant ids."""
    import tomli_w

    api = RecruitmentApi(client, task_queue, pseudonym_key)
    round_id = round_id or f"audit-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(round_id, [formasi("F1", 1)], WINDOWS, t0=t0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.toml"
        path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        await api.create_round(path, OPERATOR)
    ids = {}
    for serial, name in enumerate(SKD, start=1):
        result = await api.register(config, registration(serial, "F1"), "sscasn")
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id
    for name in SKD:
        await wait_stage(client, round_id, ids[name], {Stage.ADMIN_CHECK})
        await api.report(
            round_id,
            ids[name],
            AdminReport(report_id=f"adm-{name}", reported_by="bkpsdm-verifikator"),
        )
    for name, (twk, tiu, tkp) in SKD.items():
        await wait_stage(client, round_id, ids[name], {Stage.SKD})
        await api.report(
            round_id,
            ids[name],
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp),
        )
    for name, (cat, praktik) in SKB.items():
        await wait_stage(client, round_id, ids[name], {Stage.SKB})
        await api.report(
            round_id,
            ids[name],
            SkbScoreReport(
                report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
            ),
        )
        await api.report(
            round_id,
            ids[name],
            SkbScoreReport(
                report_id=f"pr-{name}",
                reported_by="panel-praktik",
                component="praktik",
                score=praktik,
            ),
        )
        await api.report(
            round_id,
            ids[name],
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        )
    after_ranking = {
        Stage.FILING,
        Stage.OPTIMALISASI,
        Stage.NIP,
        Stage.APPOINTMENT,
        Stage.LATSAR,
        Stage.ENDED,
    }
    for name in SKB:
        await wait_stage(client, round_id, ids[name], after_ranking)
    await wait_stage(client, round_id, ids["C3"], {Stage.ENDED})
    return round_id, ids


def write_histories(histories: list[RecordedHistory], out: Path) -> list[Path]:
    """One JSON file per run, named so that the workflow id can be read back from the name."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for h in histories:
        path = out / history_file_name(h.workflow_id, h.run_id)
        path.write_text(h.history.to_json())
        paths.append(path)
    return paths


async def record(out: Path) -> None:
    """Start a private stack, run the round, write the histories and the payload key."""

    from apps.fleet import build_worker
    from runtime.connection import connect
    from runtime.embedded import ensure_stack, isolated_settings, stop_stack
    from runtime.keys import load_or_create_keys

    payload_key = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = isolated_settings(
            Path(data_dir), payload_key=payload_key, task_queue="record-histories"
        )
        stack = await ensure_stack(settings)
        try:
            keys = load_or_create_keys(settings)
            client = await connect(settings, stack, keys)
            pool = await open_pool(stack.database_url, max_size=8)
            try:
                async with await build_worker(client, settings, pool):
                    round_id, _ = await run_small_round(
                        client, settings.task_queue, keys.pseudonym_key, round_id="recorded"
                    )
                    await asyncio.sleep(1.0)  # visibility catches up
                    histories = await round_histories(client, round_id)
            finally:
                await pool.close()
        finally:
            stop_stack(settings)
    for old in out.glob("*.json"):
        old.unlink()
    paths = write_histories(histories, out)
    (out / "payload_key.b64").write_text(payload_key + "\n")
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} histories ({total / 1024:.0f} KiB) and payload_key.b64 to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "histories"
    )
    asyncio.run(record(parser.parse_args().out))


if __name__ == "__main__":
    main()
