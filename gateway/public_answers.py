"""A public announcement's answers (page, .json, .csv), made from its stored body in a process
of the gateway's own.

Parsing a body of 100,000 rows takes a second or more and rendering its page several, most of it
in pydantic-core, the json encoder and Jinja: code that holds the GIL for its whole call, so a
thread would still stop the event loop for every other visitor. A worker process does not; what
crosses to it is the body's text and the few facts read per request, and what comes back is the
answer's bytes. Started on the first answer made, and kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import client.announcements
import client.publication
import client.status
from client.announcements import (
    COLUMNS,
    NUMERIC_COLUMNS,
    STAGE_TITLES,
    AnnouncementStage,
    legend,
    waktu,
)
from client.publication import (
    Publication,
    after_publication,
    document_text,
    parse_publication,
    publication_csv,
)
from client.status import angka, catatan_waktu
from domain.local_time import JAKARTA

TEMPLATES = Path(__file__).resolve().parent / "templates"

# What every public page's template is given besides its own context (gateway/public.py `_page`):
# a page about one round reads its times in the round's zone instead (`in_zone`).
PAGE_CONTEXT: dict[str, Any] = {
    "account": None,
    "waktu": waktu,
    "times_note": catatan_waktu(None),
    "angka": angka,
    "titles": STAGE_TITLES,
    "columns": COLUMNS,
    "numeric": NUMERIC_COLUMNS,
}

# What the answers are made with besides the body and the facts: a new release that changes any
# of it changes every ETag, so no cache in front keeps an answer of the release before.
RENDERING = hashlib.sha256(
    b"".join(
        path.read_bytes()
        for path in (
            Path(__file__),
            TEMPLATES / "base.html",
            TEMPLATES / "public" / "publication.html",
            Path(client.publication.__file__),
            Path(client.announcements.__file__),
            Path(client.status.__file__),
        )
    )
).hexdigest()


@dataclass(frozen=True)
class AnswerOrder:
    """What one answer is made of: the stored body and signature, and for the page and the CSV
    the facts read per request (the round's later DIS/APS and revocations, the publications that
    correct this one, the round's instansi and SKD cut multiplier when the round is known)."""

    kind: str  # "" (the page), ".json" or ".csv"
    name: str  # <round>-<seq>
    body: str
    signature: str
    endings: dict[str, str]
    revoked: dict[str, tuple[str, datetime]]
    corrected_by: list[int]
    instansi: str | None
    cut_multiplier: int
    timezone: str | None = None  # the round's, when the round is known; else WIB, said so


def in_zone(zone: str | None) -> dict[str, Any]:
    """What a public page about one round reads its times with: the round's zone, named in the
    footer; WIB, said so, when the round's rules could not be read."""
    return {"waktu": partial(waktu, zone=zone or JAKARTA), "times_note": catatan_waktu(zone)}


_templates: Any = None


def make_answer(order: AnswerOrder) -> bytes:
    """The answer's bytes, made from the order's body."""
    return answer_of(parse_publication(order.body, order.signature), order)


def answer_of(p: Publication, order: AnswerOrder) -> bytes:
    """The answer's bytes from the publication parsed, as the route made them on every request
    before they were kept."""
    if order.kind == ".json":
        return document_text(p).encode()
    later = after_publication(p, order.endings)
    if order.kind == ".csv":
        return publication_csv(p, later).encode()
    global _templates
    if _templates is None:
        from fastapi.templating import Jinja2Templates

        _templates = Jinja2Templates(directory=str(TEMPLATES))
    context = {
        **PAGE_CONTEXT,
        **in_zone(order.timezone),
        "request": None,  # the same page for every visitor
        "p": p,
        "instansi": order.instansi or p.instansi,
        "legend": legend(AnnouncementStage(p.stage), order.cut_multiplier),
        "later": later,
        "revoked": order.revoked,
        "corrected_by": order.corrected_by,
        "sha256": p.body_sha256(),
        "name": order.name,
    }
    return _templates.get_template("public/publication.html").render(context).encode()


class AnswerMaker:
    """make_answer in one worker process (spawned, not forked: the gateway holds threads and
    sockets), started on first use."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._starting = asyncio.Lock()

    async def make(self, order: AnswerOrder) -> bytes:
        """The answer, made in the worker process."""
        for attempt in (1, 2):
            pool = await self.started()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, make_answer, order)
            except BrokenProcessPool:
                # The worker died (killed, out of memory): a new one, once.
                self._pool = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def started(self) -> ProcessPoolExecutor:
        """The pool, its process running: started in a thread on first use (a spawn takes
        tens of ms of the calling thread, the new process's imports a second or two)."""
        async with self._starting:
            if self._pool is None:
                self._pool = await asyncio.to_thread(_started_pool)
            return self._pool

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _started_pool() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    )
    pool.submit(int).result()  # the process started and answering
    return pool


def _end_with_parent(parent: int) -> None:
    """In the worker process: exit once the gateway process that started it is gone. A gateway
    that ends normally stops its pool, but one killed (SIGKILL, the OOM killer) would leave the
    worker running for ever, reparented, holding the memory of its answers and the gateway's
    standard output."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


PARENT_CHECK_S = 1.0  # how often the worker process looks for its gateway


MAKER = AnswerMaker()  # one worker process per gateway process
