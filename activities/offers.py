"""Send a round's optimalisasi offers to their journeys (patch offers-by-local-activity), and a
signal between the round's workflows as its update when the receiving run takes no more signals.

A local activity of the round, run in the workflow task that takes an allocation: the round's
history records one marker for up to 500 offers, where a signal from the workflow cost each
offer two events and the workflow task its completion woke. Each offer is the one the round
sealed, sent to the same `offer_seat` signal, so a journey checks it exactly as before.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import TAKEN, OfferSend, OfferSends, OffersSent, SignalByUpdate
from domain.digest import canonical_digest
from domain.protocol import BY_UPDATE, OFFER_SEAT, OFFER_SEAT_UPDATE, SEND_BY_UPDATE, SEND_OFFERS

CONCURRENCY = 32


class OfferSender:
    """Signals each offer to its journey (by update when its run takes no more signals); one whose
    journey has ended, or refused it, is reported back. Sends the round's workflows' other
    signals by update for them (send_by_update)."""

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
                handle = self.client.get_workflow_handle(item.workflow_id)
                try:
                    await OFFER_SEAT.send(handle, item.offer)
                except RPCError as exc:
                    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                        # The run takes no more signals (another sender spent them): the offer
                        # as the update that nobody else can use up; refused, it is not delivered.
                        outcome = await send_update(handle, OFFER_SEAT_UPDATE.name, item.offer)
                        return None if outcome == TAKEN else item.offer.offer_id
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    return item.offer.offer_id  # the journey has ended
                return None

        missing = await asyncio.gather(*(send(item) for item in req.offers))
        return OffersSent(not_delivered=[m for m in missing if m is not None])

    @activity.defn(name=SEND_BY_UPDATE.name)
    async def send_by_update(self, req: SignalByUpdate) -> str:
        """Send a signal's message as its update (domain.protocol.BY_UPDATE): what a workflow asks
        when the run it signals takes no more signals, because another sender spent them. Safe to
        repeat: one update id per message, so a second attempt is answered from the first."""
        update = BY_UPDATE.get(req.signal)
        if update is None:
            raise ValueError(f"send_by_update: signal {req.signal!r} has no update")
        handle = self.client.get_workflow_handle(req.workflow_id)
        return await send_update(handle, update.name, req.message)


async def send_update(handle: WorkflowHandle, name: str, message: BaseModel | dict) -> str:
    """Execute update `name` with `message` on `handle`'s workflow, under an id made from the
    message (a repeat is answered from the first): TAKEN, or why it was not (refused by its
    validator, as the signal would have been ignored; the workflow has ended)."""
    body = message.model_dump(mode="json") if isinstance(message, BaseModel) else message
    update_id = f"{name}-{canonical_digest(body)[:32]}"
    activity.logger.warning(
        "%s takes no more signals: %s sent as the update %s", handle.id, name, update_id
    )
    try:
        await handle.execute_update(name, body, id=update_id)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause.message if exc.cause is not None else str(exc)
        activity.logger.warning("%s refused %s: %s", handle.id, name, cause)
        return f"refused: {cause}"
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return ENDED
    return TAKEN


ENDED = "the workflow has ended"  # send_update's answer for a workflow no longer there
