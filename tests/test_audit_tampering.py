"""What `audit.py verify` catches when an insider holds the bundle's signing key and the payload
key: they can re-encrypt anything into a history and sign the manifest again, so the replay
(which runs no update validator) proves nothing about who sent what. Offline, on the signed
recorded sets under tests/histories; no server."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from auditing.bundle import load_histories
from auditing.history import RecordedHistory
from auditing.provenance import check_provenance
from domain.messages import JourneyStart
from runtime.connection import data_converter
from runtime.keys import Keys
from tests import roundkit

RECORDED = Path(__file__).resolve().parent / "histories"
SIGNED = RECORDED / "v20-full"  # a round with keys: every start and report signed


def converter_of(directory: Path):
    key = base64.b64decode((directory / "payload_key.b64").read_text().strip())
    return data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))


def journey(histories: list[RecordedHistory], applicant: str) -> RecordedHistory:
    return next(h for h in histories if h.workflow_id.endswith(f"/applicant/{applicant}"))


async def rewrite_start(
    h: RecordedHistory, converter, change: Callable[[JourneyStart], BaseModel]
) -> None:
    """Re-encrypt the journey's start input as `change` makes it, as the insider can."""
    attrs = h.history.events[0].workflow_execution_started_event_attributes
    [start] = await converter.decode(list(attrs.input.payloads), [JourneyStart])
    [payload] = await converter.encode([change(start)])
    attrs.input.payloads[0].CopyFrom(payload)


# --- who registered --------------------------------------------------------------------------


async def test_an_unsigned_start_in_a_round_with_keys_is_named():
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    victim = journey(histories, "2QSNVACFAVI73HZU")
    await rewrite_start(
        victim,
        converter,
        lambda s: s.model_copy(update={"signature": "", "submitted_by": "panitia-test"}),
    )

    check = await check_provenance(histories, converter)

    assert len(check.problems) == 1, check.problems
    assert victim.workflow_id in check.problems[0] and "unsigned" in check.problems[0]


async def test_a_start_signed_by_an_identity_that_may_not_register_is_named():
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    victim = journey(histories, "2QSNVACFAVI73HZU")
    lan = roundkit.test_signer("lan")  # a real key of the round, but of the training agency
    await rewrite_start(
        victim,
        converter,
        lambda s: lan.sign(
            s.model_copy(update={"registered_by": "lan", "signature": ""}), victim.workflow_id
        ),
    )

    check = await check_provenance(histories, converter)

    assert [p for p in check.problems if "lan may not register applicants" in p] != []


async def test_an_unsigned_start_the_journey_refused_is_listed_not_a_problem():
    """v22's late registration was refused by its journey (after registration closed): without
    its signature it is still refused, before the signature is looked at, and decided nothing."""
    directory = RECORDED / "v22-national"
    histories, converter = load_histories(directory), converter_of(directory)
    late = journey(histories, "N7SC7TGRX4KNT2MW")
    await rewrite_start(late, converter, lambda s: s.model_copy(update={"signature": ""}))

    check = await check_provenance(histories, converter)

    assert check.problems == []
    assert [r.split(" ")[0] for r in check.refused_starts] == [late.workflow_id]


# The recorded rounds since v2 (the first set's journeys carry other rules than their round's,
# which test_audit.py shows; aftermath-v1 and the local-activity sets hold no round's history).
RECORDED_SETS = sorted(RECORDED.glob("v*"))


@pytest.mark.parametrize("directory", RECORDED_SETS, ids=lambda p: p.name)
async def test_every_recorded_set_holds_its_provenance(directory):
    """Every start, report and command of every recorded set passes the checks below untouched."""
    check = await check_provenance(load_histories(directory), converter_of(directory))

    assert check.problems == [] and check.refused_starts == []
