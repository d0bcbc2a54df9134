"""The aftermath recorded by tests/timeskip/test_aftermath_keys.py (which plays a key changed by
`change-keys` after the aftermath began: refused there from then on, the new key taken) replays
with the current code. The set was recorded on the real stack, before that test moved to the
time-skipping server so as not to wait out KEYS_FRESH's minute."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from auditing.bundle import load_histories
from auditing.history import decisions_of, messages, replay
from runtime.connection import data_converter
from runtime.keys import Keys
from scripts.record_histories import patch_markers
from workflows.aftermath import READ_ROUND_AGAIN
from workflows.versions import AFTERMATH_READS_KEYS_AGAIN

pytestmark = pytest.mark.asyncio(loop_scope="session")
RECORDED = Path(__file__).resolve().parents[1] / "histories" / "aftermath-v2-keys"


async def test_the_recorded_aftermath_that_read_the_keys_again_replays_with_the_current_code():
    """aftermath-v2-keys, recorded on the real stack by the test now in tests/timeskip: the
    aftermath decided patch
    aftermath-reads-keys-again by its marker, read the round's keys again once (its one accepted
    update before the DIS), and replays with no non-determinism, re-deriving the DIS."""
    histories = load_histories(RECORDED)
    assert [h.kind for h in histories] == ["aftermath"]
    [recorded] = histories
    assert AFTERMATH_READS_KEYS_AGAIN in patch_markers(recorded.history)
    key = base64.b64decode((RECORDED / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    updates = [m.name for m in await messages(recorded.history, converter) if m.kind == "update"]
    assert updates == [READ_ROUND_AGAIN, "disqualify"]
    outcomes = await replay([recorded.history], converter)
    assert [(o.workflow_id, o.failure) for o in outcomes if not o.ok] == []
    assert [d.outcome for d in decisions_of(outcomes)] == ["DIS"]
