"""The demo at a small size: every applicant of both rounds reaches a terminal outcome through the
real stack; the ministry's interview shows a declared conflict and a planted outlier flagged and
struck by the committee; each round's evaluation report is written with its sections."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import asyncpg
import pytest

from apps.demo import run_demo
from apps.demo_panels import PLANTED_SCORE

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECTIONS = ("funnel", "durations", "appeals", "extensions", "registration", "panels", "ikm")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def test_demo_rounds_end_every_journey_and_evaluate_the_interviews(
    stack, stack_settings, tmp_path
):
    settings = stack_settings.model_copy(update={"task_queue": f"demo-{uuid.uuid4().hex[:8]}"})
    code = await run_demo(size=40, seed=7, out_dir=tmp_path, settings=settings)
    assert code == 0
    [central] = list(tmp_path.glob("DEMO-KEMENTERIAN-*"))
    [round_dir] = [d for d in tmp_path.iterdir() if d != central]
    for directory, least in ((round_dir, 30), (central, 12)):
        counts = await _counts(stack.database_url, directory.name)
        assert counts["total"] >= least and counts["open"] == 0, (directory.name, counts)
    final = (round_dir / f"{round_dir.name}-final.csv").read_text()
    listed = await _ids(  # those with a final result, and DIS/APS in SKB
        stack.database_url,
        round_dir.name,
        "final_code IS NOT NULL OR (skd_code = 'P/L' AND terminal IN ('DIS', 'APS'))",
    )
    missing = [a for a in listed if a not in final]
    assert final.count("\n") == 1 + len(listed), missing
    assert (round_dir / f"{round_dir.name}-skd.html").read_text().startswith("<!doctype html>")
    delivered = (round_dir / "notifications.jsonl").read_text()
    total = (await _counts(stack.database_url, round_dir.name))["total"]
    assert (
        delivered.count(f'"round_id": "{round_dir.name}"') == delivered.count("\n") >= total
    )  # this round's only

    # The interviews, as the evaluation read them from the histories: the one flag is the planted
    # score, the committee struck it; one conflict was declared; the replacement's score stands.
    evaluation = central / "evaluation"
    [flag] = _rows(evaluation / "panel_flags.csv")
    assert (float(flag["score"]), flag["flagged by"], flag["committee review"]) == (
        PLANTED_SCORE,
        "recorded",
        "struck, scored again",
    )
    panels = _rows(evaluation / "panel_agreement.csv")
    assert sum(int(r["conflicts declared"]) for r in panels) == 1
    assert (
        sum(int(r["reviews"]) for r in panels) == sum(int(r["scores struck"]) for r in panels) == 1
    )
    # The panellists' sheets name candidates by code only.
    sheets = sorted((central / "panel-sheets").glob("wawancara-*.csv"))
    assert len(sheets) >= 3
    assert all(r["applicant_id"].startswith("K-") for s in sheets for r in _rows(s))
    assert {s.stat().st_mode & 0o777 for s in sheets} == {0o600}
    for directory in (round_dir, central):
        page = (directory / "evaluation" / "index.html").read_text(encoding="utf-8")
        assert all(f'<section id="{key}">' in page for key in SECTIONS), directory.name
    assert "No interview panel scored" in (round_dir / "evaluation" / "index.html").read_text()


async def _counts(database_url: str, round_id: str) -> dict[str, int]:
    return {
        "total": await _count(database_url, round_id, "TRUE"),
        "open": await _count(database_url, round_id, "terminal IS NULL"),
    }


async def _ids(database_url: str, round_id: str, where: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            f"SELECT applicant_id FROM applicants WHERE round_id = $1 AND ({where})", round_id
        )
    finally:
        await conn.close()
    return [r["applicant_id"] for r in rows]


async def _count(database_url: str, round_id: str, where: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            f"SELECT count(*) FROM applicants WHERE round_id = $1 AND ({where})", round_id
        )
    finally:
        await conn.close()
