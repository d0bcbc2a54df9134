"""`starter.py report` counts a row as accepted or as a repeat by what the engine holds, not by
comparing the operator's clock with the server's (which may be minutes apart)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from rich.console import Console

import starter
from client.api import RecruitmentApi
from client.csvio import REPORT_KINDS
from domain.codes import Stage
from starter import Context, create_round, send_reports
from tests.flows.test_starter import _wait_stage, _write_csv
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration


def _clock_off_by(monkeypatch, offset: timedelta) -> None:
    """The operator's machine's clock, `offset` from the server's."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + offset

    monkeypatch.setattr(starter, "datetime", Skewed)


async def _admin_file(client, keys, settings, stack, tmp_path: Path):
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    t0 = datetime.now(UTC)
    round_id = f"rp-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        {
            "registration": (-60, 2),
            "administration": (2, 300),
            "skd": (300, 310),
            "skb": (310, 320),
            "filing": (320, 330),
            "latsar": (330, 340),
        },
        t0=t0,
    )
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    assert await create_round(ctx, path, OPERATOR) == 0
    ids = []
    for serial in (1, 2):
        result = await api.register(
            config, registration(serial, "F1"), "sscasn", now=t0 + timedelta(seconds=1)
        )
        ids.append(result.applicant_id)
    for a in ids:
        await _wait_stage(client, round_id, a, {Stage.ADMIN_CHECK})
    rows = [{"report_id": f"adm-{i}", "applicant_id": a, "findings": ""} for i, a in enumerate(ids)]
    return ctx, round_id, _write_csv(tmp_path / "admin.csv", rows)


@pytest.mark.parametrize("offset_minutes", [5, -60], ids=["clock-ahead", "clock-behind"])
async def test_new_reports_count_as_accepted_and_a_rerun_as_repeats_whatever_the_clock_says(
    client, keys, running_worker, stack, tmp_path, monkeypatch, offset_minutes
):
    settings, _ = running_worker
    ctx, round_id, admin = await _admin_file(client, keys, settings, stack, tmp_path)
    _clock_off_by(monkeypatch, timedelta(minutes=offset_minutes))

    first = await send_reports(
        ctx, REPORT_KINDS["admin"], round_id, admin, tmp_path / "e1.csv", "bkpsdm-verifikator"
    )
    again = await send_reports(
        ctx, REPORT_KINDS["admin"], round_id, admin, tmp_path / "e2.csv", "bkpsdm-verifikator"
    )

    assert (first.counts["accepted"], first.counts["repeat"]) == (2, 0), first.counts
    assert (again.counts["accepted"], again.counts["repeat"]) == (0, 2), again.counts
