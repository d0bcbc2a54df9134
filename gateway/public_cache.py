"""The public announcements' answers, made once and served again (gateway/public.py).

A publication is append-only and carries the hash of its body, so what is made from the body
alone (its signed document as JSON) is the same for as long as the body is, and what is made from
the body and the few facts that change after publication (later DIS/APS, revocations,
corrections) is the same while those facts are: each answer is kept under a key naming the body's
hash and a digest of those facts, which the route reads per request. A change of any of them is a
new key, never a stale answer.

Bounded by the total size of the answers kept (CASN_PUBLICATION_CACHE_MB), the least recently
served dropped first. Requests for an answer being made wait for that one (announcement day:
thousands ask for the same page in the same second; the body is parsed once, not by each).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from runtime.logs import get_logger

log = get_logger("gateway.public_cache")


@dataclass
class AnswerCache:
    """Answers (bytes) by key, at most `limit_bytes` of them in all; 0 keeps none."""

    limit_bytes: int
    _answers: OrderedDict[Hashable, bytes] = field(default_factory=OrderedDict)
    _making: dict[Hashable, asyncio.Task[bytes]] = field(default_factory=dict)
    size: int = 0  # bytes held now
    hits: int = 0
    made: int = 0

    async def get(self, key: Hashable, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The answer kept under `key`, or the one `make` makes (kept when it fits). The making
        is a task of its own: a requester that goes away does not cancel it for the others."""
        if self.limit_bytes <= 0:
            self.made += 1
            return await make()
        kept = self._answers.get(key)
        if kept is not None:
            self._answers.move_to_end(key)
            self.hits += 1
            return kept
        making = self._making.get(key)
        if making is None:
            making = asyncio.ensure_future(make())
            self._making[key] = making
            making.add_done_callback(lambda task: self._made(key, task))
        else:
            self.hits += 1
        return await asyncio.shield(making)

    def _made(self, key: Hashable, task: asyncio.Task[bytes]) -> None:
        del self._making[key]
        if task.cancelled() or task.exception() is not None:
            return  # each waiter has it raised; the next request makes it again
        self.made += 1
        self._keep(key, task.result())

    def _keep(self, key: Hashable, answer: bytes) -> None:
        if len(answer) > self.limit_bytes:
            log.info("answer larger than the cache, not kept", size=len(answer))
            return
        self._answers[key] = answer
        self.size += len(answer)
        while self.size > self.limit_bytes:
            _, dropped = self._answers.popitem(last=False)
            self.size -= len(dropped)

    def __len__(self) -> int:
        return len(self._answers)
