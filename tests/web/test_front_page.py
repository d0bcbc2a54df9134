"""The front page lists rounds from the visibility store: a round no worker answers for (its
worker gone, its task queue unserved) costs the page a bounded wait, not the page itself."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import tomli_w

from client.api import RecruitmentApi
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_front_page_is_not_held_by_a_round_without_a_worker(
    client, keys, gateway_state, http, tmp_path
):
    orphan_api = RecruitmentApi(
        client, f"nobody-{uuid.uuid4().hex[:6]}", keys.pseudonym_key, keyring=TEST_KEYRING
    )
    served_api = RecruitmentApi(
        client, gateway_state.settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING
    )
    ids = {}
    for name, api in (("orphan", orphan_api), ("served", served_api)):
        round_id = f"{name}-{uuid.uuid4().hex[:6]}"
        config = compressed_round(
            round_id,
            [formasi("F1", 1)],
            {
                w: (i * 600 - 30, (i + 1) * 600 - 30)
                for i, w in enumerate(
                    ["registration", "administration", "skd", "skb", "filing", "latsar"]
                )
            },
            t0=datetime.now(UTC),
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        await api.create_round(path, OPERATOR)
        ids[name] = round_id
    gateway_state.rounds._listing = (0.0, [])  # list again: both rounds are new

    started = time.monotonic()
    page = await http.get("/")
    took = time.monotonic() - started

    assert page.status_code == 200
    assert ids["served"] in page.text  # the round its worker answers for is listed as open
    assert ids["orphan"] not in page.text
    assert took < 10, f"the front page took {took:.1f} s"
