"""The activities that stand in for a signal a run no longer takes: `send_offers` and
`send_by_update` (activities/offers.py), against a run whose signals were spent on the small
server of tests/flows/conftest.py. A stand-in workflow takes the signal and its update, so that
what the activity does is seen without playing a round to optimalisasi."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.offers import OfferSender
from domain.contracts import TAKEN, OfferSend, OfferSends, SignalByUpdate
from domain.messages import OptimalisasiOffer
from domain.protocol import OFFER_SEAT, OFFER_SEAT_UPDATE
from tests.flows.conftest import flood

pytestmark = pytest.mark.asyncio(loop_scope="session")


@workflow.defn(name="SpendableStandIn")
class SpendableStandIn:
    """Takes `offer_seat` as a signal and as its update, as a journey does; refuses an offer whose
    id says so, as a journey's validator refuses one without the round's seal."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=OFFER_SEAT.name)
    def offer_seat(self, offer: dict) -> None:
        self.taken.append(f"signal {offer['offer_id']}")

    @workflow.update(name=OFFER_SEAT_UPDATE.name)
    def offer_seat_update(self, offer: dict) -> bool:
        self.taken.append(f"update {offer['offer_id']}")
        return True

    @offer_seat_update.validator
    def refuse_unsealed(self, offer: dict) -> None:
        if offer["offer_id"].startswith("unsealed"):
            raise ApplicationError("not sealed by the round", non_retryable=True)

    @workflow.query(name="taken")
    def taken_query(self) -> list[str]:
        return self.taken


def _offer(offer_id: str) -> OptimalisasiOffer:
    return OptimalisasiOffer(
        offer_id=offer_id, to_formasi="F2", answer_by=datetime.now(UTC) + timedelta(days=3)
    )


async def test_offers_to_a_run_whose_signals_were_spent_go_as_its_update(small_server):
    address, client = small_server
    queue = f"spendable-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[SpendableStandIn],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        spent = await client.start_workflow(
            "SpendableStandIn", id=f"spent-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        fresh = await client.start_workflow(
            "SpendableStandIn", id=f"fresh-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        await flood(spent, "junk")
        sender = OfferSender(client)
        first = _offer("o-1")
        sent = await ActivityEnvironment().run(
            sender.send_offers,
            OfferSends(
                offers=[
                    OfferSend(workflow_id=spent.id, offer=first),
                    OfferSend(workflow_id=fresh.id, offer=_offer("o-2")),
                    OfferSend(workflow_id=spent.id, offer=_offer("unsealed-3")),
                ]
            ),
        )

        # The spent run took its offer by update, the other by signal; the one its validator
        # refused is reported not delivered, and its seat passes on.
        assert sent.not_delivered == ["unsealed-3"]
        assert await spent.query("taken", result_type=list[str]) == ["update o-1"]
        assert await fresh.query("taken", result_type=list[str]) == ["signal o-2"]
        # Sent again (a retried attempt): answered from the first update, taken once.
        again = await ActivityEnvironment().run(
            sender.send_offers, OfferSends(offers=[OfferSend(workflow_id=spent.id, offer=first)])
        )
        assert again.not_delivered == []
        assert await spent.query("taken", result_type=list[str]) == ["update o-1"]

        # send_by_update, as a workflow asks it: taken; for a signal without an update, refused.
        by_update = SignalByUpdate(
            workflow_id=spent.id,
            signal=OFFER_SEAT.name,
            message=_offer("o-4").model_dump(mode="json"),
        )
        assert await ActivityEnvironment().run(sender.send_by_update, by_update) == TAKEN
        unknown = by_update.model_copy(update={"signal": "no_such_signal"})
        with pytest.raises(ValueError, match="has no update"):
            await ActivityEnvironment().run(sender.send_by_update, unknown)
        gone = by_update.model_copy(update={"workflow_id": f"gone-{uuid.uuid4().hex[:8]}"})
        assert await ActivityEnvironment().run(sender.send_by_update, gone) == (
            "the workflow has ended"
        )
        await spent.terminate("test over")
        await fresh.terminate("test over")
