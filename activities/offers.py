"""Send a round's optimalisasi offers to their journeys (patch offers-by-local-activity).

A local activity of the round, run in the workflow task that takes an allocation: the round's
history records one marker for up to 500 offers, where a signal from the workflow cost each
offer two events and the workflow task its completion woke. Each offer is the one the round
sealed, sent to the same `offer_seat` signal, so a journey checks it exactly as before.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import OfferSend, OfferSends, OffersSent
from domain.protocol import OFFER_SEAT, SEND_OFFERS

CONCURRENCY = 32


class OfferSender:
    """Signals each offer to its journey; one whose journey has ended is reported back."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=SEND_OFFERS.name)
    async def send_offers(self, req: OfferSends) -> OffersSent:
        """Safe to repeat: a journey takes an offer once (a second `offer_seat` with the offer it
        holds changes nothing), so an attempt after a failed one may send some offers again.

        An offer whose journey has ended is not delivered, and the round passes its seat on.
        Any other failure fails the attempt, and the round asks again (workflows/calls.py); on a
        worker that is stopping, the worker's interceptor ends it instead (runtime/stopping.py).
        A first attempt during a shutdown still sends: a signal needs nothing of the worker."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def send(item: OfferSend) -> str | None:
            async with gate:
                try:
                    await OFFER_SEAT.send(
                        self.client.get_workflow_handle(item.workflow_id), item.offer
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    return item.offer.offer_id  # the journey has ended
                return None

        missing = await asyncio.gather(*(send(item) for item in req.offers))
        return OffersSent(not_delivered=[m for m in missing if m is not None])
