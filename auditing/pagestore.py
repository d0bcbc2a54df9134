"""The page store (activities/pages.py) against the round's histories (`audit.py check-pages`).

A formasi keeps its closes' answers and its rankings as pages in PostgreSQL and records only their
references (digest and count) in its history: in its activities' inputs and results, its local
activities' markers, the carry it continues as new with, its result to the round. A page the store
no longer holds, or holds altered, stops the formasi's next ranking (or the telling of a folded one)
when it is read, which may be weeks after the loss. This check finds it before that:

- every page reference in the round's formasi and round histories is collected (their payloads
  decoded with the round's payload keys; a reference is a value with exactly a 64-hex `digest` and
  a `count`);
- each page is read back, opened with the payload keys and checked against its digest and count,
  as the activities that use it do; an index page's children are checked the same way, level by
  level;
- pages the round's formasi and round own that no history references are counted (a retried
  broadcast's first attempt keeps one; they are harmless, and never deleted here).

The check writes nothing. `rebuild` (`check-pages --rebuild`) makes the pages it names again:
- pages of answers to a close (`answer_pages`): since each close's update id names its page
  (the listing's digest and the journey's place in it, domain.protocol.close_update_id), the
  journeys' histories hold which answers made up each page, in which order;
- every other page by running again, on the pages made so far, the call that kept it: an index
  page or the round's page of offered applicants from its local activity's input, which replaying
  the workflow gives again; a ranking's pages or the round's offer pages from their activity's
  input, which the history holds. Pages are content-addressed, so the same call keeps the same
  pages.
A page is written only when its digest is one the check names. What is left (pages of answers to
closes sent before the update id named the page, and what was kept from them) needs the database
restored to an instant when it was whole (docs/OPERATIONS.md, section 4).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio import workflow
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.pages import PageStore
from activities.purges import purged_on, purged_tables
from auditing.history import (
    AuditError,
    RecordedHistory,
    fetched,
    replay,
    round_query,
    when_done,
)
from domain.contracts import CloseAnswer
from domain.messages import CloseReply
from domain.pages import INDEX, REPLIES, PageRef, page_items, page_ref
from domain.protocol import (
    ALLOCATE_PAGES,
    FOLD_PAGES,
    KEEP_PAGE,
    RANK_FINAL_PAGES,
    close_page_of,
)
from runtime.codec import ENCODING
from runtime.sealed import ColumnCipher

DIGEST = re.compile(r"[0-9a-f]{64}")
# Payloads that never hold a page reference, or are not the codec's to decode.
_SKIPPED_FIELDS = frozenset({"header", "memo", "search_attributes"})
# Where a message from outside is recorded: anyone who reaches Temporal can send one, so no page
# reference is taken from them (what the round's own workflows send each other is recorded by the
# sender too: a formasi's result to the round is its ranking activity's result).
_FROM_OUTSIDE = frozenset(
    {
        "workflow_execution_signaled_event_attributes",
        "workflow_execution_update_accepted_event_attributes",
        "workflow_execution_update_admitted_event_attributes",
    }
)
READ_AT_ONCE = 200  # pages read per statement
FETCHES = 8  # journeys' histories fetched at once by the rebuild


@dataclass(frozen=True)
class PageProblem:
    """A referenced page the store does not hold as its history says."""

    digest: str
    problem: str  # missing | unreadable | altered
    detail: str
    where: str  # the first history event (or index page) that references it
    referenced_in: str = ""  # the workflow whose history references it (or the index's)


@dataclass
class PageCheck:
    """What `check_pages` found for one round."""

    round_id: str
    histories: int
    referenced: int = 0  # pages the histories reference themselves
    under_indexes: int = 0  # pages found under the index pages among them
    read: int = 0  # pages read back whole
    kinds: dict[str, int] = field(default_factory=dict)  # pages read back, by kind
    unreferenced: int = 0  # pages the round's workflows own that no history reaches
    undecodable: list[str] = field(default_factory=list)  # the workers' payloads not decoded
    problems: list[PageProblem] = field(default_factory=list)
    # When the round's personal data was purged with its pages (personal_data_purges): a page
    # not in the store is then gone with them, not missing, and counted here.
    purged_on: datetime | None = None
    purged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.undecodable


def _payload_messages(message: Message) -> Iterator[list[Payload]]:
    """Every list of payloads under `message` (a history event's attributes), but for headers,
    memos and search attributes."""
    for fd, value in message.ListFields():
        if fd.name in _SKIPPED_FIELDS or fd.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].type != FieldDescriptor.TYPE_MESSAGE:
                continue
            items = list(value.values())
        elif fd.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payloads):
                yield list(item.payloads)
            elif isinstance(item, Payload):
                yield [item]
            else:
                yield from _payload_messages(item)


def page_refs(value: Any) -> Iterator[PageRef]:
    """The page references within a decoded payload: every value that is exactly a PageRef."""
    if isinstance(value, dict):
        if value.keys() == {"digest", "count"}:
            digest, count = value["digest"], value["count"]
            if isinstance(digest, str) and DIGEST.fullmatch(digest) and isinstance(count, int):
                yield PageRef(digest=digest, count=count)
                return
        for v in value.values():
            yield from page_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from page_refs(v)


async def referenced_pages(
    histories: list[RecordedHistory], converter: DataConverter, undecodable: list[str]
) -> dict[str, tuple[PageRef, str, str]]:
    """Every page reference the histories' own workflows and activities recorded, by digest, with
    the first event that holds it and its workflow. Events whose payloads cannot be decoded are
    added to `undecodable` (a payload key missing here?)."""
    found: dict[str, tuple[PageRef, str, str]] = {}  # digest: (reference, where, workflow id)
    for h in histories:
        for event in h.history.events:
            attributes = event.WhichOneof("attributes")
            if attributes is None or attributes in _FROM_OUTSIDE:
                continue
            where = (
                f"{h.workflow_id} event {event.event_id} ({EventType.Name(event.event_type)[11:]})"
            )
            for payloads in _payload_messages(getattr(event, attributes)):
                # Only what went through the payload codec: everything the round's own workflows
                # and activities record does. What did not is the SDK core's own (a local
                # activity's or a patch's marker data).
                payloads = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
                if not payloads:
                    continue
                try:
                    values = await converter.decode(payloads)
                except Exception as exc:  # noqa: BLE001 - named, and the check fails
                    undecodable.append(f"{where}: {type(exc).__name__}: {exc}")
                    continue
                for ref in page_refs(values):
                    found.setdefault(ref.digest, (ref, where, h.workflow_id))
    return found


async def check_pages(
    pool: asyncpg.Pool,
    cipher: ColumnCipher,
    round_id: str,
    histories: list[RecordedHistory],
    converter: DataConverter,
    on_read: Callable[[int], None] | None = None,
) -> PageCheck:
    """Check every page the round's formasi and round histories reference (and every page under
    the index pages among them) against the store; change nothing."""
    result = PageCheck(round_id, len(histories))
    if "pages" in await purged_tables(pool, round_id):
        result.purged_on = await purged_on(pool, round_id)
    found = await referenced_pages(histories, converter, result.undecodable)
    result.referenced = len(found)
    queue = list(found.values())
    seen = set(found)
    while queue:
        batch, queue = queue[:READ_AT_ONCE], queue[READ_AT_ONCE:]
        rows = await pool.fetch(
            "SELECT digest, kind, body FROM pages WHERE digest = ANY($1::text[])",
            [ref.digest for ref, _, _ in batch],
        )
        stored = {r["digest"]: r for r in rows}
        for ref, where, owner in batch:
            row = stored.get(ref.digest)
            if row is None and result.purged_on is not None:
                result.purged += 1  # deleted by the purge, with the personal data it held
                continue
            if row is None:
                result.problems.append(
                    PageProblem(ref.digest, "missing", "not in the page store", where, owner)
                )
                continue
            try:
                body = cipher.open(bytes(row["body"]), f"pages/{ref.digest}")
            except Exception as exc:  # noqa: BLE001 - a body that does not open is named
                result.problems.append(
                    PageProblem(
                        ref.digest,
                        "unreadable",
                        f"{row['kind']} page: its seal does not open with the payload keys "
                        f"({type(exc).__name__})",
                        where,
                        owner,
                    )
                )
                continue
            try:
                items = page_items(row["kind"], ref, body)  # an unknown kind is refused too
            except ValueError as exc:
                result.problems.append(
                    PageProblem(ref.digest, "altered", f"{row['kind']} page: {exc}", where, owner)
                )
                continue
            result.read += 1
            result.kinds[row["kind"]] = result.kinds.get(row["kind"], 0) + 1
            if row["kind"] == INDEX:
                for child in (PageRef.model_validate(i) for i in items):
                    if child.digest not in seen:
                        seen.add(child.digest)
                        result.under_indexes += 1
                        queue.append(
                            (child, f"under index page {ref.digest[:12]}…, {where}", owner)
                        )
        if on_read:
            on_read(len(batch))
    owners = sorted({h.workflow_id for h in histories})
    result.unreferenced = await pool.fetchval(
        "SELECT count(*) FROM pages WHERE owner = ANY($1::text[]) AND digest <> ALL($2::text[])",
        owners,
        sorted(seen),
    )
    return result


# --- making pages of answers again --------------------------------------------------------------

FORMASI_WORKFLOW = re.compile(r"(?P<round>[^/]+)/formasi/(?P<code>[A-Za-z0-9][A-Za-z0-9._-]{0,39})")


async def close_answers(
    history: RecordedHistory, converter: DataConverter
) -> list[tuple[tuple[str, str, int], CloseAnswer]]:
    """The journey's recorded answers to closes whose update id names their page
    (domain.protocol.close_update_id): ((announcement id, listing, position), answer)."""
    out = []
    for event in history.history.events:
        if not event.HasField("workflow_execution_update_completed_event_attributes"):
            continue
        done = event.workflow_execution_update_completed_event_attributes
        place = close_page_of(done.meta.update_id)
        if place is None or not done.outcome.HasField("success"):
            continue
        [answer] = await converter.decode(list(done.outcome.success.payloads), [CloseAnswer])
        out.append((place, answer))
    return out


async def answer_pages(
    client: Client,
    round_id: str,
    owners: set[str],
    converter: DataConverter,
    chunk: int = 500,
    on_journeys: Callable[[int], None] | None = None,
    concurrency: int = FETCHES,
) -> tuple[dict[str, tuple[str, PageRef, bytes]], int]:
    """Every page of answers the journeys of the formasi among `owners` (workflow ids) give, by
    digest: (owner, reference, body); and how many journey runs were read.

    A page of answers to a close is the answers that rank (an SKD key or a final entry) of one
    listing of journeys, in its order (activities/broadcast.py); each journey's history records
    its answer under an update id naming the listing and its place in it. The journeys are read
    a chunk at a time (`concurrency` histories fetched at once) and their answers grouped by close
    and listing. A close sent before the update id named the page gives none."""
    out: dict[str, tuple[str, PageRef, bytes]] = {}
    read = 0
    gate = asyncio.Semaphore(concurrency)

    async def fetch(workflow_id: str, run_id: str) -> RecordedHistory:
        async with gate:
            return await fetched(client, workflow_id, run_id)

    for owner in sorted(owners):
        formasi = FORMASI_WORKFLOW.fullmatch(owner)
        if formasi is None or formasi["round"] != round_id:
            continue
        query = f"{round_query(round_id, 'journey')} AND FormasiCode = '{formasi['code']}'"
        runs = [(e.id, e.run_id) async for e in client.list_workflows(query)]
        pages: dict[tuple[str, str], dict[int, CloseReply]] = defaultdict(dict)
        for first in range(0, len(runs), chunk):
            histories = await asyncio.gather(*(fetch(*r) for r in runs[first : first + chunk]))
            for history in histories:
                for (announcement, listing, position), answer in await close_answers(
                    history, converter
                ):
                    reply = answer.reply()
                    if reply.key is not None or reply.entry is not None:
                        pages[(announcement, listing)][position] = reply
            read += len(runs[first : first + chunk])
            if on_journeys:
                on_journeys(len(runs[first : first + chunk]))
        for by_place in pages.values():
            ref, body = page_ref(REPLIES, [by_place[p] for p in sorted(by_place)])
            out.setdefault(ref.digest, (owner, ref, body))
    return out, read


# --- making every page again ---------------------------------------------------------------------

# What keeps pages, besides the broadcast's pages of answers: a local activity whose input is not
# in the history (replaying the workflow gives it again), or an activity whose input is.
_LOCAL_PRODUCERS = (FOLD_PAGES.name, KEEP_PAGE.name)
_PRODUCERS = (RANK_FINAL_PAGES.name, ALLOCATE_PAGES.name)
MAX_PASSES = 8  # an index page made again shows the pages under it, which the next pass makes


class _PageCalls(Interceptor):
    """Keeps, in the order they complete in the replayed histories, the calls that keep pages."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []  # (workflow id, activity name, its input)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        calls = self.calls

        def kept(name: str, args: Sequence[Any], handle: Any) -> None:
            if args:  # only calls the history shows done
                when_done(
                    handle, partial(calls.append, (workflow.info().workflow_id, name, args[0]))
                )

        class Outbound(WorkflowOutboundInterceptor):
            def start_local_activity(self, input: StartLocalActivityInput):
                handle = super().start_local_activity(input)
                if input.activity in _LOCAL_PRODUCERS:
                    kept(input.activity, input.args, handle)
                return handle

            def start_activity(self, input: StartActivityInput):
                handle = super().start_activity(input)
                if input.activity in _PRODUCERS:
                    kept(input.activity, input.args, handle)
                return handle

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


class _Remaking(PageStore):
    """The page store as the rebuild writes it: a page whose digest is among `wanted` is written
    over what the store holds (its digest proves its content); any other is kept as the activities
    keep pages (never over a row already there)."""

    def __init__(self, pool: asyncpg.Pool, cipher: ColumnCipher, wanted: set[str]) -> None:
        super().__init__(pool, cipher)
        self.wanted = wanted
        self.made: set[str] = set()

    async def keep(self, kind: str, owner: str, ref: PageRef, body: bytes) -> None:
        if ref.digest in self.wanted:
            await self.replace(kind, owner, ref, body)
            self.wanted.discard(ref.digest)
            self.made.add(ref.digest)
        else:
            await super().keep(kind, owner, ref, body)


async def _call(store: _Remaking, name: str, request: Any) -> None:
    """One call that keeps pages, run again through the activity's own code: its pages are the
    same (content-addressed). An index page is kept even while pages under it are still missing
    (`fold_pages` refuses that), so that the next check finds them."""
    if name == FOLD_PAGES.name:
        ref, body = page_ref(INDEX, request.pages)
        await store.keep(INDEX, request.owner, ref, body)
    elif name == KEEP_PAGE.name:
        await store.keep_page(request)
    elif name == RANK_FINAL_PAGES.name:
        await store.rank_final_pages(request)
    elif name == ALLOCATE_PAGES.name and request.offers_in_pages:
        await store.allocate_pages(request)


@dataclass
class RebuildResult:
    """What `rebuild` made again, and the check after it."""

    made: set[str]
    journey_runs: int
    check: PageCheck
    replay_failures: list[str] = field(default_factory=list)


async def rebuild(
    client: Client,
    pool: asyncpg.Pool,
    cipher: ColumnCipher,
    round_id: str,
    histories: list[RecordedHistory],
    converter: DataConverter,
    found: PageCheck,
    on_journeys: Callable[[int], None] | None = None,
    concurrency: int = FETCHES,
) -> RebuildResult:
    """Make again every page `found` names that the histories can give: pages of answers from the
    journeys' histories (`answer_pages`); index pages, a ranking's pages and the round's offered
    and offer pages by running again, on the pages made so far, the calls that kept them (their
    inputs from the histories, or from replaying them). A page is written only when its digest is
    one the check names; then the store is checked again, and once more for the pages an index
    made again shows under it, until nothing more is made. Refused for a round whose pages a
    purge of its personal data deleted: it would write that data back."""
    if found.purged_on is not None:
        raise AuditError(
            f"round {round_id}: its personal data was purged on {found.purged_on:%Y-%m-%d %H:%M} "
            "UTC with its pages (personal_data_purges); making them again would write it back"
        )
    answers, read = await answer_pages(
        client,
        round_id,
        {p.referenced_in for p in found.problems},
        converter,
        on_journeys=on_journeys,
        concurrency=concurrency,
    )
    capture = _PageCalls()
    outcomes = await replay([h.history for h in histories], converter, interceptors=[capture])
    failures = [
        f"{o.workflow_id} (run {o.run_id}): {o.failure}" for o in outcomes if o.failure is not None
    ]
    made: set[str] = set()
    check = found
    for _ in range(MAX_PASSES):
        if not check.problems:
            break
        store = _Remaking(pool, cipher, {p.digest for p in check.problems})
        for digest in sorted(store.wanted & answers.keys()):
            owner, ref, body = answers[digest]
            await store.keep(REPLIES, owner, ref, body)
        for _, name, request in capture.calls:
            try:
                await _call(store, name, request)
            except (LookupError, ValueError):  # reads a page not (yet) made again
                continue
        if not store.made:
            break
        made |= store.made
        check = await check_pages(pool, cipher, round_id, histories, converter)
    return RebuildResult(made, read, check, failures)
