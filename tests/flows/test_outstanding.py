"""The committee's view of what is still outstanding before a close (`starter.py outstanding`), on
the real stack: the applicants at the administrative check without a result, those at SKD without
one, and at SKB each component some still
lack (a gate nobody reported, a panel with one panellist's score, a panel whose score the
committee struck), by registration number; and nothing once the missing reports are in."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

import starter
from client.api import RecruitmentApi, RefusedError, UnknownError
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    ConflictDeclaration,
    GateReport,
    SkbScoreReport,
    SkdReport,
)
from tests.flows.test_panels import KEYRING, _last_panel, _panel_score, create_panel_round
from tests.flows.test_round_end_to_end import _state, _wait_stage
from tests.forked import DRIVER
from tests.roundkit import OPERATOR, close_window, command_env, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


async def _view(ctx: starter.Context, round_id: str, **options) -> starter.Outstanding:
    return await starter.outstanding(ctx, round_id, **options)


async def _view_when(ctx, round_id: str, stage: str, count: int) -> starter.Outstanding:
    """The view once the read model shows `count` applicants of F1 at `stage` (a journey writes
    its row when it enters the stage, a moment after the close reaches it)."""
    deadline = time.monotonic() + 90
    while True:
        shown = await _view(ctx, round_id)
        if shown.formasi[0].at_stage[stage] == count or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.5)


def _lacking(shown) -> dict[str, list[tuple]]:
    """Each awaited report of F1 -> its applicants (with a panel's scores and who has not scored)."""
    [f1] = shown.formasi
    return {
        r.component: [(a.applicant_id, a.scored, tuple(a.not_scored)) for a in r.applicants]
        for r in f1.reports
    }


def _starter(tmp_path: Path, keys, stack, *arguments: str) -> subprocess.CompletedProcess:
    env = command_env(stack.temporal_address, stack.database_url, keys, tmp_path / "data")
    return DRIVER.run("starter.py", list(arguments), env, tmp_path, timeout=180)


async def round_at_skd(api, client, folder: Path, prefix: str) -> tuple[str, list[str]]:
    """A panel round (tests/flows/test_panels.py) whose three applicants A, B and C are at SKD,
    with the CAT centre's results of A and B: its id and their numbers."""
    config, t0 = await create_panel_round(api, folder, prefix)
    round_id = config.round_id
    ids = [
        (await api.register(config, registration(n, "F1"), "sscasn", now=t0)).applicant_id
        for n in (1, 2, 3)
    ]
    for i, x in enumerate(ids):
        await _wait_stage(client, round_id, x, {Stage.ADMIN_CHECK})
        await api.report(
            round_id, x, AdminReport(report_id=f"adm{i}", reported_by="bkpsdm-verifikator")
        )
    await close_window(api, round_id, "administration")
    for i, x in enumerate(ids):
        await _wait_stage(client, round_id, x, {Stage.SKD})
        if i < 2:
            await api.report(
                round_id,
                x,
                SkdReport(report_id=f"skd{i}", reported_by="cat-bkn", twk=120, tiu=140, tkp=190),
            )
    return round_id, ids


async def test_an_applicant_the_verifiers_have_not_reported_is_named_before_the_administration_closes(
    client, keys, running_worker, stack, tmp_path
):
    """Without an administration result the close makes the applicant TMS, naming no document:
    the view names who the verifiers have not reported yet, and nobody once they have."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=KEYRING)
    ctx = starter.Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    config, t0 = await create_panel_round(api, tmp_path, "outstanding-admin")
    round_id = config.round_id
    checked, waiting = [
        (await api.register(config, registration(n, "F1"), "sscasn", now=t0)).applicant_id
        for n in (1, 2)
    ]
    for x in (checked, waiting):
        await _wait_stage(client, round_id, x, {Stage.ADMIN_CHECK})
    await api.report(
        round_id, checked, AdminReport(report_id="adm0", reported_by="bkpsdm-verifikator")
    )
    shown = await _view_when(ctx, round_id, "admin_check", 2)
    assert _lacking(shown) == {"admin": [(waiting, None, ())]}
    [admin] = shown.formasi[0].reports
    assert (admin.stage, admin.kind, admin.missing, admin.ends_as) == (
        "admin_check",
        "admin",
        1,
        "TMS",
    )
    assert [w.name for w in shown.windows] == ["administration", "skd", "skb", "latsar"]
    await api.report(
        round_id, waiting, AdminReport(report_id="adm1", reported_by="bkpsdm-verifikator")
    )
    assert _lacking(await _view(ctx, round_id)) == {}


async def test_outstanding_names_who_lacks_which_report_until_it_arrives(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=KEYRING)
    out = io.StringIO()
    ctx = starter.Context(api, stack.database_url, Console(file=out, width=200))
    # SKD: the CAT centre's results for A and B only; C's is awaited, or C ends TH.
    round_id, (a, b, c) = await round_at_skd(api, client, tmp_path, "outstanding")
    at_skd = await _view_when(ctx, round_id, "skd", 3)
    assert _lacking(at_skd) == {"skd": [(c, None, ())]}
    [skd_missing] = at_skd.formasi[0].reports
    assert (skd_missing.stage, skd_missing.missing, skd_missing.ends_as) == ("skd", 1, "TH")
    [skd_window] = [w for w in at_skd.windows if w.name == "skd"]
    assert skd_window.state == "dibuka" and skd_window.closes > at_skd.read_at
    await api.report(
        round_id, c, SkdReport(report_id="skd2", reported_by="cat-bkn", twk=120, tiu=140, tkp=190)
    )
    assert _lacking(await _view(ctx, round_id)) == {}
    await close_window(api, round_id, "skd")

    # SKB: A sends everything; B's hospital never reports health; one panellist scores C.
    panels = {}
    for x in (a, b, c):
        panels[x] = _last_panel(await _wait_stage(client, round_id, x, {Stage.SKB}))
    for i, x in enumerate((a, b, c)):
        for comp, who, score in (("cat", "cat-bkn", 400), ("praktik", "panel-praktik", 80)):
            await api.report(
                round_id,
                x,
                SkbScoreReport(
                    report_id=f"{comp}{i}", reported_by=who, component=comp, score=score
                ),
            )
        for who in panels[x][: 1 if x == c else 2]:
            await api.report(round_id, x, _panel_score(who, 70))
        if x != b:
            await api.report(
                round_id,
                x,
                GateReport(
                    report_id=f"h{i}", reported_by="rsud", component="health", decision="MS"
                ),
            )
    at_skb = await _view_when(ctx, round_id, "skb", 3)
    assert _lacking(at_skb) == {
        "wawancara": [(c, 1, tuple(panels[c][1:]))],
        "health": [(b, None, ())],
    }
    by_component = {r.component: r for r in at_skb.formasi[0].reports}
    assert (by_component["wawancara"].needed, by_component["wawancara"].missing) == (2, 1)
    assert (by_component["health"].kind, by_component["health"].ends_as) == ("gate", "TMS-SKB")
    assert at_skb.applicants_missing == 2
    [skb_window] = [w for w in at_skb.windows if w.name == "skb"]
    assert skb_window.state == "dibuka" and skb_window.closes > at_skb.read_at

    # The table as the committee reads it: the close, each report with whom it lacks.
    out.truncate(0)
    await _view(ctx, round_id)
    table = out.getvalue()
    assert "SKB window: closes" in table and "from now" in table
    assert f"{c}: 1 of 2 scored; not yet: {', '.join(panels[c][1:])}" in table
    assert b in table and a not in table

    # The command as an operator runs it: the same, as one JSON document.
    ran = await asyncio.to_thread(
        _starter, tmp_path, keys, stack, "outstanding", round_id, "--json"
    )
    assert ran.returncode == 0, ran.stderr
    assert _lacking(starter.Outstanding.model_validate(json.loads(ran.stdout))) == _lacking(at_skb)
    # A formasi the round does not have, or no such round: refused (exit 1), naming it.
    ran = await asyncio.to_thread(
        _starter, tmp_path, keys, stack, "outstanding", round_id, "--formasi", "F9"
    )
    said = " ".join(ran.stderr.split())
    assert ran.returncode == 1, said
    assert f"refused: formasi F9 is not in round {round_id} (its formasi: F1)" in said
    with pytest.raises(UnknownError, match="round NOPE-1 does not exist"):
        await _view(ctx, "NOPE-1")
    with pytest.raises(RefusedError, match="formasi F9 is not in round"):
        await _view(ctx, round_id, formasi="F9")

    # The missing reports arrive: nothing is outstanding.
    await api.report(
        round_id,
        b,
        GateReport(report_id="h1", reported_by="rsud", component="health", decision="MS"),
    )
    await api.report(round_id, c, _panel_score(panels[c][1], 72))
    done = await _view(ctx, round_id, formasi="F1")
    assert _lacking(done) == {} and done.formasi[0].at_stage == {
        "admin_check": 0,
        "skd": 0,
        "skb": 3,
        "latsar": 0,
    }

    # The committee finds a conflict of one of A's panellists: that score is struck, A's panel
    # stands at one score again, and the panellist drawn in their place is the one to chase.
    await api.report(
        round_id,
        a,
        ConflictDeclaration(
            report_id="coi-a",
            reported_by=OPERATOR,
            component="wawancara",
            panellist=panels[a][0],
            kind="family",
        ),
    )
    redrawn = _last_panel(await _state(client, round_id, a))
    expected = {"wawancara": [(a, 1, tuple(p for p in redrawn if p != panels[a][1]))]}
    deadline = time.monotonic() + 60
    while (struck := _lacking(await _view(ctx, round_id))) != expected:
        if time.monotonic() > deadline:  # the panel's row is written a moment after the change
            break
        await asyncio.sleep(0.5)
    assert struck == expected and panels[a][0] not in redrawn
    await api.report(round_id, a, _panel_score(redrawn[-1], 74))
    assert _lacking(await _view(ctx, round_id)) == {}
    assert (await _state(client, round_id, c)).stage == Stage.SKB
