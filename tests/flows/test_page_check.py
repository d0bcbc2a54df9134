"""The page store checked against the round's histories (auditing/pagestore.py, `audit.py
check-pages`), on the session's real stack: a small round played to its final ranking, whose
formasi kept its answers and rankings as pages; then pages lost and altered, each named. And a
history whose only reference is an index page: the pages under it checked, a lost one named."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from activities.pages import PageStore
from auditing.history import RecordedHistory, round_histories
from auditing.pagestore import answer_pages, check_pages
from domain.pages import INDEX, LINES, REPLIES, PageRef
from runtime.codec import AesGcmCodec
from runtime.connection import data_converter
from runtime.sealed import ColumnCipher
from scripts.record_histories import run_small_round
from tests.forked import DRIVER
from tests.roundkit import command_env

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


async def test_every_page_the_formasi_recorded_is_checked_and_pages_of_answers_made_again(
    client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    await asyncio.sleep(1.0)  # visibility lists the last starts
    histories = await round_histories(client, round_id, "formasi")
    histories += await round_histories(client, round_id, "round")
    cipher, converter = ColumnCipher.from_keys(keys), data_converter(keys)
    store = PageStore(pool, cipher)

    whole = await check_pages(pool, cipher, round_id, histories, converter)
    assert (whole.ok, whole.problems, whole.undecodable) == (True, [], [])
    owned = await pool.fetch(
        "SELECT digest, kind FROM pages WHERE owner = ANY($1::text[]) ORDER BY created_at",
        sorted({h.workflow_id for h in histories}),
    )
    # The answers to both closes and the final ranking's lines and candidates, each read back.
    assert {"close-replies", "ranking-lines", "candidates"} <= set(whole.kinds)
    assert whole.read == whole.referenced + whole.under_indexes == len(owned) - whole.unreferenced
    kept = {r["digest"]: await store.fetch(PageRef(digest=r["digest"], count=0)) for r in owned}

    # The page of answers to the SKD close lost, the SKB close's sealed body altered by a byte, a
    # page of the final ranking's lines sealed again with other content: each named, with the
    # first event of the formasi's history that references it.
    skd, skb = (r["digest"] for r in owned if r["kind"] == "close-replies")
    lines = next(r["digest"] for r in owned if r["kind"] == "ranking-lines")
    await pool.execute("DELETE FROM pages WHERE digest = $1", skd)
    await pool.execute(
        "UPDATE pages SET body = overlay(body placing '\\xff'::bytea from length(body) for 1) "
        "WHERE digest = $1",
        skb,
    )
    await pool.execute(
        "UPDATE pages SET body = $2 WHERE digest = $1", lines, cipher.seal(b"[]", f"pages/{lines}")
    )
    damaged = await check_pages(pool, cipher, round_id, histories, converter)
    assert sorted((p.digest, p.problem) for p in damaged.problems) == sorted(
        [(skd, "missing"), (skb, "unreadable"), (lines, "altered")]
    )
    named = {p.digest: p for p in damaged.problems}
    assert "does not match its digest" in named[lines].detail
    formasi = f"{round_id}/formasi/F1"
    assert all(p.where.startswith(f"{formasi} event ") for p in damaged.problems)
    assert {p.referenced_in for p in damaged.problems} == {formasi}
    assert not damaged.ok and damaged.read == whole.read - 3

    # Made again from the journeys' histories: the two pages of answers, byte for byte as they
    # were kept; the lines page is not a page of answers and is left.
    answers, journey_runs = await answer_pages(
        client, round_id, {p.referenced_in for p in damaged.problems}, converter
    )
    made = {p.digest for p in damaged.problems} & answers.keys()
    for digest in made:
        owner, ref, body = answers[digest]
        await store.replace(REPLIES, owner, ref, body)
    assert made == {skd, skb}
    assert journey_runs >= len(ids)
    for digest in (skd, skb):
        assert await store.fetch(PageRef(digest=digest, count=0)) == kept[digest]
    [left] = (await check_pages(pool, cipher, round_id, histories, converter)).problems
    assert (left.digest, left.problem) == (lines, "altered")

    # The CLI: check-pages names the page and exits 1. --rebuild makes it again too, by running
    # the final ranking again on the pages of answers (its input is in the formasi's history), and
    # the answers' page lost meanwhile from the journeys' histories: then every page is whole.
    env = command_env(
        stack.temporal_address, stack.database_url, keys, tmp_path / "data", COLUMNS="250"
    )

    def audit(*arguments: str) -> subprocess.CompletedProcess:
        return DRIVER.run("audit.py", ["check-pages", round_id, *arguments], env, ROOT, 120)

    done = audit()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines in "".join(done.stdout.split()).replace("│", ""), done.stdout
    await pool.execute("DELETE FROM pages WHERE digest = $1", skb)
    done = audit("--rebuild")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 pages made again from the histories" in done.stdout, done.stdout
    assert f"round {round_id}'s pages are whole" in done.stdout
    for digest in (skb, lines):
        assert await store.fetch(PageRef(digest=digest, count=0)) == kept[digest]


def _history(workflow_id: str, *results) -> RecordedHistory:
    """A history of activity completions with these (already encoded) results."""
    events = []
    for n, payloads in enumerate(results, start=1):
        event = HistoryEvent(event_id=n, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        event.activity_task_completed_event_attributes.result.payloads.extend(payloads)
        events.append(event)
    return RecordedHistory(WorkflowHistory(workflow_id, events))


async def test_pages_reached_only_through_index_pages_are_checked_and_named(keys, stack):
    """A ranking whose line pages are folded inside the ranking activity records only the index
    pages' references: the pages under them are checked through them, and a lost one is named
    with the index it was reached through. A payload under another key is named (and the check
    fails); one that never went through the codec (a marker's own data) is not searched, nor is a
    signal (anyone can send one)."""
    from runtime.db import open_pool

    owner = f"pc-{uuid.uuid4().hex[:6]}/formasi/F1"
    converter = data_converter(keys)
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        cipher = ColumnCipher.from_keys(keys)
        store = PageStore(pool, cipher)
        leaves = [await store.put(LINES, owner, [[f"A{i}", "80.5"]]) for i in range(5)]
        top = await store.fold(LINES, owner, leaves, 2)  # 5 leaves -> 3 -> 2 index pages
        result = await converter.encode([{"winner_pages": [r.model_dump() for r in top]}])
        # A value shaped as a page reference, but in the clear: not the round's, not searched.
        plain = DataConverter.default.payload_converter.to_payloads(
            [{"digest": "0" * 64, "count": 1}]
        )
        foreign = await AesGcmCodec(b"\x07" * 32).encode(
            DataConverter.default.payload_converter.to_payloads(["x"])
        )
        history = _history(owner, result, plain)

        whole = await check_pages(pool, cipher, owner.split("/")[0], [history], converter)
        assert (whole.ok, whole.problems) == (True, [])
        # 5 leaves folded by 2: 3 index pages over them, 2 over those; the history holds the 2.
        assert (whole.referenced, whole.under_indexes) == (2, 3 + 5)
        assert whole.kinds == {INDEX: 5, LINES: 5}

        await pool.execute("DELETE FROM pages WHERE digest = $1", leaves[4].digest)
        [lost] = (await check_pages(pool, cipher, "pc", [history], converter)).problems
        assert (lost.digest, lost.problem) == (leaves[4].digest, "missing")
        assert lost.where.startswith("under index page ") and f"{owner} event 1" in lost.where

        with_foreign = _history(owner, result, foreign)
        named = await check_pages(pool, cipher, "pc", [with_foreign], converter)
        assert not named.ok and len(named.undecodable) == 1
        assert named.undecodable[0].startswith(f"{owner} event 2 (ACTIVITY_TASK_COMPLETED)")
        # A page reference in a signal (anyone who reaches Temporal can send one) is not taken:
        # not even one under the payload key, nor a payload under another key.
        signal = HistoryEvent(
            event_id=3, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        )
        forged = await converter.encode([{"digest": "1" * 64, "count": 1}])
        signal.workflow_execution_signaled_event_attributes.input.payloads.extend(forged + foreign)
        alone = RecordedHistory(WorkflowHistory(owner, [signal]))
        assert (await check_pages(pool, cipher, "pc", [alone], converter)).referenced == 0
        assert (await check_pages(pool, cipher, "pc", [alone], converter)).ok
    finally:
        await pool.close()


async def test_the_round_s_offered_pages_and_their_index_are_made_again_as_the_activities_kept_them(
    keys, stack
):
    """The round keeps who it offered as pages (`keep_page`) and folds their references into an
    index (`fold_pages`), both local activities whose inputs only a replay gives again. Run again
    by the rebuild on those inputs, each page comes out with the digest and body the activity
    kept, and is written over the lost or altered row."""
    from auditing.pagestore import _call, _Remaking
    from domain.pages import OFFERED, PageFold, PageKeep
    from domain.protocol import FOLD_PAGES, KEEP_PAGE
    from runtime.db import open_pool

    owner = f"pc-{uuid.uuid4().hex[:6]}/round"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        cipher = ColumnCipher.from_keys(keys)
        store = PageStore(pool, cipher)
        keeps = [PageKeep(owner=owner, items=[f"A{i}{j}" for j in range(3)]) for i in range(3)]
        offered = [await store.keep_page(k) for k in keeps]
        fold = PageFold(owner=owner, pages=offered)
        index = await store.fold_pages(fold)
        kept = {r.digest: await store.fetch(r) for r in (*offered, index)}

        await pool.execute(
            "DELETE FROM pages WHERE digest = ANY($1::text[])", [offered[0].digest, index.digest]
        )
        await pool.execute(
            "UPDATE pages SET body = $2 WHERE digest = $1",
            offered[1].digest,
            cipher.seal(b'["forged"]', f"pages/{offered[1].digest}"),
        )
        remaking = _Remaking(pool, cipher, {offered[0].digest, offered[1].digest, index.digest})
        await _call(remaking, FOLD_PAGES.name, fold)  # before the pages under it, as replayed
        for k in keeps:
            await _call(remaking, KEEP_PAGE.name, k)
        assert remaking.made == {offered[0].digest, offered[1].digest, index.digest}
        assert {r.digest: await store.fetch(r) for r in (*offered, index)} == kept
        assert kept[offered[0].digest][0] == OFFERED and kept[index.digest][0] == INDEX
    finally:
        await pool.close()
