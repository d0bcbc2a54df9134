"""The demo at a small size: every applicant reaches a terminal outcome through the real stack."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from apps.demo import run_demo

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_demo_round_ends_every_journey(stack, stack_settings, tmp_path):
    settings = stack_settings.model_copy(update={"task_queue": f"demo-{uuid.uuid4().hex[:8]}"})
    code = await run_demo(size=40, seed=7, out_dir=tmp_path, settings=settings)
    assert code == 0
    [round_dir] = list(tmp_path.iterdir())
    conn = await asyncpg.connect(stack.database_url)
    try:
        open_journeys = await conn.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1 AND terminal IS NULL",
            round_dir.name,
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1", round_dir.name
        )
    finally:
        await conn.close()
    assert total > 30 and open_journeys == 0
    final = (round_dir / f"{round_dir.name}-final.csv").read_text()
    assert final.count("\n") == 1 + await _count(  # those with a final result, and DIS/APS in SKB
        stack.database_url,
        round_dir.name,
        "final_code IS NOT NULL OR (skd_code = 'P/L' AND terminal IN ('DIS', 'APS'))",
    )
    assert (round_dir / f"{round_dir.name}-skd.html").read_text().startswith("<!doctype html>")
    delivered = (round_dir / "notifications.jsonl").read_text()
    assert (
        delivered.count(f'"round_id": "{round_dir.name}"') == delivered.count("\n") >= total
    )  # this round's only


async def _count(database_url: str, round_id: str, where: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            f"SELECT count(*) FROM applicants WHERE round_id = $1 AND {where}", round_id
        )
    finally:
        await conn.close()
