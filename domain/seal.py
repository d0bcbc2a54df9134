"""Seals on the messages the round, its formasi and its journeys send each other.

Signals and the close update pass only between the project's own workflows, but anyone who
reaches Temporal can send them: a forged `final_result` naming oneself a winner, a forged close
that ends a journey's SKD, a forged offer or vacated seat. Each round therefore draws a secret
(from the workflow's deterministic random, recorded in its history) that only its own workflows
learn: the formasi in their start input, the journeys from the round's answer when they are
admitted. Both travel encrypted by the payload codec, so a client without the payload key cannot
read the secret. Every internal message carries `seal`: HMAC-SHA256 under that secret over the
message's canonical JSON without its seal. A message whose seal does not verify is ignored (a
signal) or refused (the close update). Rounds recorded before seals have no secret: nothing is
sealed or checked there.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TypeVar

from pydantic import BaseModel

from domain.digest import canonical_json

SEAL_FIELD = "seal"
M = TypeVar("M", bound=BaseModel)


def seal_of(message: BaseModel, secret: str) -> str:
    """The seal `message` should carry under `secret` (hex)."""
    data = message.model_dump(mode="json")
    data.pop(SEAL_FIELD, None)
    return hmac.new(
        bytes.fromhex(secret), canonical_json(data).encode(), hashlib.sha256
    ).hexdigest()


def sealed(message: M, secret: str) -> M:
    """The message with its seal (unchanged when the round has no secret)."""
    if not secret:
        return message
    return message.model_copy(update={SEAL_FIELD: seal_of(message, secret)})


def seal_problem(message: BaseModel, secret: str) -> str | None:
    """Why the message is not one of this round's workflows' (None when it is, or unsealed rounds)."""
    if not secret:
        return None
    given = getattr(message, SEAL_FIELD, "")
    if not given:
        return "it carries no seal: only the round's own workflows can send it"
    # As bytes: compare_digest refuses str with a non-ASCII character (TypeError), and a handler
    # that raised would fail its workflow task on every retry: one forged signal would stop the
    # workflow. A seal that is not what `seal_of` writes simply does not verify.
    if not hmac.compare_digest(given.encode(), seal_of(message, secret).encode()):
        return "its seal does not verify: it was not sent by the round's own workflows"
    return None
