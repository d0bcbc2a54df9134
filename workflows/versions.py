"""How running journeys change behaviour: patches, with their lifecycle (docs/ARCHITECTURE.md).

A change to workflow code that recorded histories or running executions would replay differently
goes behind `workflow.patched("name")`: new executions take the new branch and write a marker;
executions recorded before it take the old one. When every new journey takes a set of patches, the
journey's engine version folds them in: a journey started with `engine_version` 2 or more takes
each patch of ENGINE_2_PATCHES without a marker (cheaper: no marker, no search-attribute upsert),
while engine-1 journeys still decide by their recorded markers. A branch is removed only when no
running execution and no recorded history set under tests/histories can reach it.
"""

from __future__ import annotations

from temporalio import workflow

# Folded into engine 2. Two more were, and are gone with their old branches: reply-after-end and
# nip-local-activity (no recorded history set and no running execution reached either branch).
ENGINE_2_PATCHES = frozenset({"project-at-rest", "record-every-ending"})


# The SKD and SKB closes are answered with the journey's read-model row (issue 17 item 5): the
# `close_stage` update that finds the journey at rest waits until it has come to rest again after
# the close and returns the row it would have written then (none if nothing changed); the broadcast
# writes a page's rows in one statement, so the journey runs no local activity at the close (one
# engine action fewer per close that changed the row). An ending is still the journey's own write.
# Journeys recorded before it write the row themselves at their next rest.
CLOSE_ANSWERED_WITH_ROW = "close-answered-with-row"

# Folded into engine 3: what RecruitmentApi starts new journeys with since issue 17.
ENGINE_3_PATCHES = ENGINE_2_PATCHES | {CLOSE_ANSWERED_WITH_ROW}


# The journey checks the sanctions register itself (activities/sanctions.py), in the first workflow
# task after its round admitted it: a registrar that skipped the register, or had none, cannot
# carry a barred NIK into the round, and a start without the NIK's register key is not admitted.
# Journeys recorded before it rely on RecruitmentApi's check alone.
SANCTIONS_IN_JOURNEY = "sanctions-in-journey"

# A journey of a round that joined a national round checks the NIK's national claim it was started
# with (activities/claims.py), in the same task: one NIK, one formasi nationwide is decided in the
# journey too, and a start without its claim is not admitted. Journeys recorded before it rely on
# RecruitmentApi's claim alone.
NATIONAL_CLAIM_IN_JOURNEY = "national-claim-in-journey"

# A journey that refuses its registration (not admitted, ineligible, barred) releases the NIK's
# national claim it was started with, if the claim is this registration's (activities/claims.py):
# the NIK may register in another instansi however the registration was started (a plain start, a
# confirmation that went unanswered). Journeys recorded before it leave that to RecruitmentApi.
CLAIM_RELEASED_BY_JOURNEY = "claim-released-by-journey"

# Folded into engine 4: what RecruitmentApi starts new journeys with since the journey's own checks.
ENGINE_4_PATCHES = ENGINE_3_PATCHES | {
    SANCTIONS_IN_JOURNEY,
    NATIONAL_CLAIM_IN_JOURNEY,
    CLAIM_RELEASED_BY_JOURNEY,
}


# A local activity's first series of attempts leaves its workflow task between the longer
# back-offs (workflows/calls.py, LOCAL_RETRY_THRESHOLD: the SDK's local_retry_threshold at 5 s):
# attempts 1 to 4 within 7 s, then the back-offs of 8, 10, 10 and 10 s as timers, the task closed
# meanwhile. Before, for the first minute of a read-model outage, the task was held open and
# heartbeating: a query or an update (a report's acknowledgement) to the workflow waited for a
# heartbeat, every 8 s (queries' p95 6.9 s, BENCHMARKS.md "A read-model outage"). Decided when the
# workflow starts, never at a failure: `workflow.patched` is memoized per run, and a decision at
# the first failure could not change how the first series runs. Journeys take it with engine 5;
# the round and the formasi at the start of each run. Histories recorded before it replay as they
# ran.
LOCAL_ACTIVITY_BACKOFF_TIMERS = "local-activity-backoff-timers"

# Folded into engine 5: what RecruitmentApi starts new journeys with since the back-off timers.
ENGINE_5_PATCHES = ENGINE_4_PATCHES | {LOCAL_ACTIVITY_BACKOFF_TIMERS}


# Sanggah days end at 24:00 (DOMAIN.md stage 4: "within 3 calendar days of the announcement"):
# a journey counts the sanggah window and the instansi's answer time in calendar days of the
# round's zone, each ending when its last day ends there (domain.config.days_after), and the
# round waits out the final sanggah to the same end. Before, a window of 3 days was 72 hours from
# the announcement: one announced at 16:00 closed at 16:00 on the third day, eight hours before
# the day an applicant counted to was over. Decided when the journey starts; journeys take it
# with engine 6, the round when it waits out the final sanggah. Histories recorded before it
# replay as they ran.
APPEAL_DAYS_END_AT_MIDNIGHT = "appeal-days-end-at-midnight"

# A journey judges its registration on the date it started, in the round's zone (DOMAIN.md stage 2:
# "age 18-35 on the application date"), not on the `applied_on` its start carries: a signed start
# whose registrar wrote a date years back was admitted with an over-age applicant, and one without
# a date was not judged at all. A date within 3 hours of the start (domain.registration,
# APPLIED_ON_TOLERANCE) is the registrar's and is kept; another is refused. Journeys take it with
# engine 6; journeys recorded before it judged the date they carried.
APPLIED_ON_ITS_START_DATE = "applied-on-its-start-date"

# Folded into engine 6: what RecruitmentApi starts new journeys with since sanggah days end at 24:00
# and a journey judges its registration on its own start date.
ENGINE_6_PATCHES = ENGINE_5_PATCHES | {APPEAL_DAYS_END_AT_MIDNIGHT, APPLIED_ON_ITS_START_DATE}


def patched(patch: str, engine_version: int) -> bool:
    """`workflow.patched`, except that a journey of engine 2 to 6 has every patch its engine
    folds in without a marker. A journey that claims an engine earlier than it is gains nothing:
    a new execution takes every patch, by its marker."""
    if engine_version >= 2 and patch in ENGINE_2_PATCHES:
        return True
    if engine_version >= 3 and patch in ENGINE_3_PATCHES:
        return True
    if engine_version >= 4 and patch in ENGINE_4_PATCHES:
        return True
    if engine_version >= 5 and patch in ENGINE_5_PATCHES:
        return True
    if engine_version >= 6 and patch in ENGINE_6_PATCHES:
        return True
    return workflow.patched(patch)


# The round's optimalisasi pool (issue 14): a seat's formasi must accept the candidate's major and
# age as registration judges them. Rounds recorded before it allocate by jabatan and education.
OPTIMALISASI_POOL = "optimalisasi-pool"

# Optimalisasi lasts until the filing window closes (issue 14): a seat given up during filing is
# offered to the next in the pool, and an accepted offer given up no longer holds its seat.
# Rounds recorded before it close optimalisasi when filing opens.
OPTIMALISASI_UNTIL_FILING_CLOSES = "optimalisasi-until-filing-closes"

# The sanggah against the final result (issue 14): filed within the appeal window of the final
# announcement and answered by the instansi; an accepted one may correct SKB scores, and the
# formasi ranks again before anyone goes on to optimalisasi, filing or the NIP. The round takes the
# marker and tells its formasi (FormasiStart.final_sanggah) and its journeys (RoundView). Rounds
# recorded before it only wait out the window.
FINAL_SANGGAH = "final-sanggah"

# The NIP is made from the TMT in force when it is issued, read from the round at that moment
# (issue 14): a move the round made but whose announcement has not reached the journey yet counts.
NIP_FROM_ROUND_TMT = "nip-from-round-tmt"

# A TMT move reaches the read model and the applicant at once (issue 14): the journey writes its
# row and notifies when the move arrives, not at its next step. Before it, the row kept the old
# TMT until the journey next came to rest.
TMT_MOVE_WRITTEN = "tmt-move-written"

# Nothing long travels whole (issue 17 item 1): a formasi keeps the answers to its closes in the
# page store, ranks from the pages in activities, tells its applicants the final result a page of
# them at a time (each journey hears only its own page's winners) and sends the round references
# to pages instead of its candidates and winners. Formasi (and rounds) recorded before it carry
# the lists in their state and payloads.
PAGED_RANKING = "paged-ranking"

# Folded page references (issue 17 item 1): a formasi that keeps its answers as pages folds the
# references it carries (the SKD answers' pages, the final entries' pages) into an index page
# (domain.pages.PageFold) when they reach FormasiStart.fold_pages_at (64), and its rankings fold
# their lists of pages (winners, others, candidates) level by level into index pages of 64
# (domain.pages.fold_refs); it then tells a ranking's applicants page by page through the index
# (local activity read_leaf). So neither its continue-as-new input, nor its decisions, nor its
# result to the round grow with its applicants or its quota (about 0.19 B per applicant and 3 B
# per seat before: 18.6 KB of references at 100,000 applicants). Formasi recorded before it
# carry every reference.
FOLDED_PAGES = "folded-page-references"

# A round's board (issue 17 item 3): the round writes the view its journeys are judged by (rules,
# formasi, registration window, TMT, seal secret) to the read-model database before it
# acknowledges any change of it, and a journey's admission reads it there instead of asking the
# round by query (activities/rounds.py). Rounds recorded before it are asked by query.
ROUND_VIEW_BOARD = "round-view-board"

# A journey not yet admitted keeps the announcements that reach it (workflows/inbox.py), and
# judges them once its round has answered: before, it checked their seals against the secret it did
# not know yet (""), which took an unsealed announcement as one of a round without seals (a forged
# administration result dated 30 days back ended the journey TMS). Decided only by an announcement
# that arrives before admission, which the round and its formasi do not send, so no history
# recorded before it is affected; tests/histories/v24-sealed holds it.
SEALED_BEFORE_ADMISSION = "sealed-before-admission"

# A formasi's results (the SKD cut, the final ranking and its confirmation) name the formasi under
# their seal (Announcement.formasi_code), and a journey takes no result of another formasi. Every
# formasi of a round seals with the round's one secret and numbers its results after the round's
# close, so before it a result copied from one formasi's history and signalled to another's
# journey decided that applicant's SKD or final code. Decided when each run of a formasi starts;
# formasi recorded before it send results without the name, which journeys still take.
RESULTS_NAME_FORMASI = "results-name-formasi"

# Registration stays open at least the round's `min_registration_days` calendar days (DOMAIN.md:
# at least 15): the round refuses to close it early before then. Rounds recorded before it took
# any early close of an open registration.
REGISTRATION_MINIMUM = "registration-minimum"

# A command waits for the round to begin: a command that reaches a round in its first workflow
# tasks is handled before `run` has decided whether the round keeps its board (patch
# round-view-board) and started its formasi. An early close of registration was acknowledged
# without waiting for the close or writing it to the board, so a journey started right after it
# was admitted (found 12-05 under load; stop 36's CI failure); a TMT move or a key change was
# recorded, then its signal to a formasi not yet started failed, and the operator was told the
# command failed (a repeat of it was then acknowledged as taken, and the formasi never heard of
# it). Such a command now waits until `run` has begun: its change is on the board and told to
# every formasi as a later command's is. Decided only by a command that arrives before `run` has
# begun, so no recorded history (in which every command came later) is affected.
COMMANDS_AFTER_RUN_BEGINS = "commands-after-run-begins"

# A round starts its formasi together, in one workflow task: before, one child start was awaited
# after another, one task per formasi, so a round with hundreds of formasi took as many round trips
# before it had begun (and, since patch commands-after-run-begins, before it answered a command sent
# in its first seconds). Decided when the round starts; rounds recorded before it replay one by one.
FORMASI_STARTED_TOGETHER = "formasi-started-together"

# The allocation over pages (issue 17 item 1): a round whose results are all kept as pages runs
# each optimalisasi allocation in an activity that reads the candidates' pages, and records the
# same decision as before; the candidates no longer enter its history. Rounds recorded before it
# read every candidate into their history (local activity read_page) once a seat was empty.
ALLOCATION_OVER_PAGES = "allocation-over-pages"

# Optimalisasi by change (issue 17 item 1): a round allocates again only when a seat was declined
# or given up since its last allocation. An accepted offer changes nothing an allocation reads,
# so allocating after it could offer nothing (domain.optimalisasi.allocate is greedy: a seat left
# empty had no candidate left who fits it); before, every answer ran the allocation (an activity
# reading every candidate's page while any seat stayed empty) and recorded an empty "allocated"
# decision. The offers of one allocation leave in one workflow task instead of one task each, and
# an allocation records the declines and given-up seats new since the previous one
# ("declined_since", "given_up_since") instead of every one so far, so the round's decisions grow
# with its declines, not with their square. Rounds recorded before it do as they did.
OPTIMALISASI_BY_CHANGE = "optimalisasi-by-change"

# An offer kept until optimalisasi (issue 17): the round allocates as soon as every formasi's
# confirmed result is in, while a formasi may still be telling its applicants that result (at
# national size, for minutes). A journey that has not yet heard it (final ranking, final sanggah)
# keeps the offer and answers it once it is in optimalisasi; before, it ignored the offer, which
# the round then held as pending for nobody. A journey that ends while an offer waits for its
# answer declines it, so the seat passes on. Journeys recorded before it do as they did.
OFFER_KEPT_UNTIL_OPTIMALISASI = "offer-kept-until-optimalisasi"

# Optimalisasi within the history budget (issue 17 item 1): a round's history grows with the offers
# it makes, and Temporal terminates a run at 51,200 events, which stopped a round near 5,500 offers
# with every journey still waiting for its filing and Latsar windows. An allocation now makes only
# the offers whose answers fit the round's `optimalisasi_history_budget` and Temporal's 10,000
# signals (domain.optimalisasi.offer_room), best first, and records the cut; it allocates again
# once the offers it made are answered. When none is pending and none fits, the round records
# "offers stopped" and makes no more; the windows that follow run as before. Decided only when an
# allocation is cut or waits for room, so rounds recorded before it, none of which came near the
# budget, replay as they ran.
OPTIMALISASI_BUDGET = "optimalisasi-budget"

# Offers sent by a local activity (issue 17 item 1): a round's offer left as a signal to the journey,
# which cost the round's history the signal's two events and the workflow task its completion
# woke (5 of the 9 an offer cost when answered one by one). The offers of an allocation now leave
# in a local activity (activities/offers.py) run in the task that takes the allocation: one
# marker for up to OFFERS_PER_TASK offers, the same sealed offer to the same `offer_seat`
# signal. The budget counts 11 events an offer and 20 an allocation instead of 15 and 6
# (domain.optimalisasi.OFFERS_BY_LOCAL_ACTIVITY_COSTS), and an allocation cut to it records the
# two, which recompute checks. Decided when optimalisasi begins, so rounds recorded before it
# replay as they ran.
OFFERS_BY_LOCAL_ACTIVITY = "offers-by-local-activity"

# A round that continues-as-new in optimalisasi (issue 17 item 1): the round's history grows with
# the offers it makes, and within its budget it stopped offering near 6,700 (at least 3,600
# whatever the answers cost), leaving seats with a candidate empty. Once a run has made an
# allocation and its history has taken half the budget, an allocation that would be cut to the
# budget, or that finds no room while offers are pending, continues the round as a new run instead
# (domain.messages.RoundCarry: the offers pending, the seats accepted offers hold, who was offered
# as pages, the seats given up, the windows, commands, keys, results and the board's version); the
# new run allocates again with its history's whole budget. The allocations, offers not delivered,
# seats given up and answers stay in the run that decided them (domain.optimalisasi.handed_on).
# An allocation's input names who was offered as pages (AllocationRequest.offered_pages).
# Decided when optimalisasi begins, for rounds whose results are kept as pages, with offers sent by a
# local activity and optimalisasi until filing closes; rounds recorded before it replay as they ran.
OPTIMALISASI_CONTINUES = "optimalisasi-continues"

# A continuing round's run makes at most its share of offers (optimalisasi_offers_per_run) in
# optimalisasi, its first allocation included: before, a run continued once it had made its share,
# but only before an allocation that was not its first, so a first allocation that found thousands
# of seats offered them all in one run, whose state query lists them. An allocation that finds more
# than the run's share left is cut to it (recorded as `share` with the cut, which audit.py
# recompute checks), and the run continues at once after sending those offers; an allocation after
# a run's first that finds more than its share left continues the round before allocating, as the
# budget's cut does. Decided the first time the share would be passed in a run.
OPTIMALISASI_SHARE_PER_RUN = "optimalisasi-share-per-run"

# A round continues-as-new in a workflow task of its own (bench optimalisasi, 12-05): a task that
# sent offers by a local activity and then continued the round failed as "UnhandledCommand" when
# an answer arrived while it ran (the server refuses to close a run with signals it has not
# handed over), and its retry ran the local activities again, so 1,000 journeys were sent their
# offer twice (each ignored the repeat; nothing was offered twice). The round now first lets its
# task end on a short durable timer, which records what the task did, and continues in the next
# task, which runs no local activity of its own unless a command arrives. Decided at each
# continuation; continuations recorded before it replay as they ran.
CONTINUE_IN_ITS_OWN_TASK = "continue-in-its-own-task"

# Who a continuing round offered, folded (issue 17 item 1): the round keeps its offered applicants
# as pages of 500 (patch optimalisasi-continues) and carried one reference per page, sent in every
# allocation's input: about 16 KiB at 100,000 offers, growing with the offers made. Once the list
# reaches the round's fold_pages_at (64) references it becomes the one reference of an index page
# of them (domain.pages.PageFold, as the formasi folds its rankings); the allocation reads the
# pages under it (activities/pages.py `leaves`). Decided the first time a run's list reaches it.
OFFERED_PAGES_FOLDED = "offered-pages-folded"

# A seat given up by the one optimalisasi placed in it is offered once (selection integrity): since
# patch optimalisasi-until-filing-closes an accepted offer whose taker gave the seat up no longer
# held it, while the seat also counted among those given up, so the seat was offered twice and
# the formasi could end a seat over its quota. Such an offer now keeps holding its seat; the seat
# given up frees it, once. Decided the first time an allocation finds a seat given up by an
# optimalisasi taker (no recorded round holds one), and recorded in that allocation and every
# later one (`seat_given_up`), which audit.py recompute follows.
OPTIMALISASI_SEAT_GIVEN_UP_ONCE = "optimalisasi-seat-given-up-once"

# A stopping worker's local activity pauses the workflow (runtime/stopping.py): a local activity
# that fails or is retried while its worker stops now ends with a non-retryable "WorkerStopping"
# failure, which reaches the workflow as the ApplicationError itself, not as an ActivityError.
# run_local_activity_until_done takes it as an exhausted local activity: a pause on a durable
# timer, then again. Before, it escaped and failed the workflow or, in the round's board write,
# left the board unwritten and every later write waiting for it. Decided only when that failure
# arrives, so no recorded history (none holds one) is affected.
LOCAL_ACTIVITY_STOPPING_PAUSE = "local-activity-stopping-pause"

# A local activity's attempts bounded by count (workflows/calls.py, LOCAL_ATTEMPTS): the SDK's core
# (temporalio 1.35.0) does not end a local activity at its schedule-to-close while its attempts
# keep failing (scripts/local_activity_shutdown.py --bound). With the read model down, each journey
# with a row to write kept its workflow task open, heartbeating every 8 s (3 events each, about
# 1,350 an hour) for as long as the outage lasted, instead of pausing on its timer after a
# minute. The exhausted attempts arrive as the activity's ApplicationError; under this patch the
# workflow pauses as for an exhausted budget. Decided only when that failure arrives, so no
# recorded history (none holds one) is affected.
LOCAL_ACTIVITY_ATTEMPTS = "local-activity-attempts"

# A pause that grows while a local activity keeps failing (workflows/calls.py, local_pause): 1, 2,
# 4, 8, then every 10 minutes, each shortened at random by up to a quarter so that the journeys
# an outage stopped together do not all ask again in the same second; after the first pause, 3
# attempts a series instead of 9. Before, every series was a minute of attempts (the task open,
# heartbeating) and a minute's pause: about 30 events every two minutes for as long as the read
# model was down, and queries answered only between heartbeats. A caller may give a count that
# ends a pause early (`woken_by`: the round's commands taken, for its board write). Decided when
# the first series fails, so no history recorded before it (none holds a failed series) is
# affected; tests/histories/local-activity-growing-pause holds it.
LOCAL_ACTIVITY_GROWING_PAUSE = "local-activity-growing-pause"

# A panel changed by a conflict declaration or a review reaches the read model at once (the
# panel_seats table, migration 016): the journey writes its row when the change is recorded, not
# at its next step, so the panellist drawn in the conflicting one's place finds the applicant on
# their sheet (client/panels.py reads the sheet from the table) before the SKB closes. Before it,
# the change was written at the close. One local activity in the task of the change, which is
# rare. Histories recorded before it replay as they ran.
PANEL_CHANGE_WRITTEN = "panel-change-written"

# Panel scores are flagged on their decimals (domain/objectivity.py, issue 16 review): a score
# exactly the component's outlier_margin away from the mean of the rest of its panel is not
# flagged, as the rule says ("more than the margin"). Before, the distance was computed in binary
# floating point, and 7.2 and 32.2 came out 25.000000000000004 apart and were flagged with a
# margin of 25. Asked only when the two rules flag differently for the panel at hand (a tie on
# the margin in decimals, which no recorded history set holds), so other journeys write no
# marker; journeys recorded before it flag as they did.
PANEL_MARGIN_DECIMAL = "panel-margin-decimal"

# A NIK's national claim taken since the sweep (ClaimStart.sweep_after, the national round's
# `claim_grace`) checks, once its grace has passed, that its journey exists and was started with
# it, and releases itself (fails with ClaimReleased) when none does: a registrar that stopped
# between the claim and the journey's start no longer holds the NIK nationwide until the national
# SKD closes. A journey that admitted the registration tells its claim (signal claim_taken), and
# the claim then holds without asking; it then sleeps to its end (the spread after the national
# SKD) on a timer instead of a delayed start. Claims without sweep_after (their start delayed to
# the end of the hold) and histories recorded before it (tests/histories/v22-national) run as
# they ran.
CLAIM_SWEPT = "claim-swept"

# The round's own deadline for optimalisasi answers: the round waited for every offer's answer with
# no timer of its own, trusting each journey to answer (or decline at answer_by on its timer). A
# journey that could not (terminated after its offer was delivered, its workflow task failing on
# every attempt, its offer signal lost) held its seat pending for ever, and the round with it:
# every later seat stayed unoffered and filing never closed. Now, once the latest pending offer's
# answer_by plus the round's `offer_answer_grace` (1 day by default) has passed, the round records
# each offer still unanswered as declined ("offer unanswered") and passes its seat on; a late
# answer to it is ignored, as one to any offer no longer pending. One durable timer at a time
# (not one per wait), so an answer costs no event more; a continued run gets the latest answer_by
# in its carry. Decided the first time a run waits for an answer or continues-as-new; rounds
# recorded before it replay as they ran.
OPTIMALISASI_ANSWER_DEADLINE = "optimalisasi-answer-deadline"

# The administrative result's notice names the sanggah deadline in the round's zone (WITA, WIT:
# domain/local_time.py), not in WIB: "paling lambat 23 Agu 2027 24.00 WIT" for a round in Papua,
# where it said "22.00 WIB", two hours off the applicant's clock. The notice (with its Indonesian
# text) travels only in the read-model write's local activity input, which no history records,
# but it is what the journey writes: a journey asks only when its round is not in WIB, so WIB
# journeys write no marker and read as before; journeys recorded before it wrote WIB.
NOTICE_IN_ROUND_ZONE = "notice-in-round-zone"

# A winner's seat given back when the journey ended before it heard its final result (DOMAIN.md
# stage 9: a seat the winner withdrew from goes to optimalisasi): the formasi ranks the SKB
# answers and then tells its applicants, a page at a time (minutes at national size), and a
# withdrawal or DIS accepted in between ended the journey with no seat to give back, while the
# formasi's result counted the seat as filled; it stayed empty. Such a journey now waits for its
# result before it ends, and a winner gives the seat back (SeatVacated, decision "seat given
# back"), without the sanction of a withdrawal after passing (it was never told it passed). Asked
# only when an ending meets a journey ranked but not yet told, which no recorded history set
# holds, so other journeys write no marker; journeys recorded before it ended at once.
SEAT_GIVEN_BACK_BEFORE_RESULT = "seat-given-back-before-result"

# A winner's seat given back when the filing is reported incomplete (TMS-DRH) while the filing
# window is open (DOMAIN.md stage 9: seats left empty when the winner failed a gate go to
# optimalisasi; the round refills seats given up until filing closes, patch
# optimalisasi-until-filing-closes): the journey ended without telling the round, so the seat
# stayed empty while those who lost on rank still waited for an offer. It now sends SeatVacated
# first. A filing missing at the window's close gives nothing back (nothing is refilled then).
# Asked only when an incomplete filing is reported for a winner, so recorded histories that hold
# none write no marker, and those that hold one replay as they ran.
SEAT_GIVEN_BACK_AT_FILING = "seat-given-back-at-filing"

# A NIK's claim past its grace looks for its journey whatever it was told (patch claim-swept held a
# claim told claim_taken or take_claim without looking): anyone who holds the payload key and
# reaches Temporal could send those words, naming the claim's round and registration, and keep an
# abandoned claim, and the NIK with it, held nationwide until the national SKD. The claim holds only
# when find_claimed_journey finds its journey; a word heard while it looked makes it look again (a
# journey speaks only after its start, so the next look finds it). Claims recorded before it
# (tests/histories/v25-claim-sweep) replay as they ran.
CLAIM_LOOKS_AGAIN = "claim-looks-again"

# A claim asked by its registrar (update look_for_journey) looks for its journey at once instead of
# at the end of its grace, and releases itself as the sweep does when it finds none. The registrar
# whose start of the journey failed on its side used to terminate the claim once it read no
# journey; a start still on its way then landed, and its journey was admitted holding no claim,
# so the NIK could register in another instansi as well (review of 12-07). Asked when the claim
# would wait for its grace; claims recorded before it wait on a plain timer.
CLAIM_LOOKS_WHEN_ASKED = "claim-looks-when-asked"

# A conflict declaration or a panel review that reaches a journey after its round closed the SKB
# (in the moments before the formasi's close reaches the journey) does not count, as no score
# arriving then does (domain.sheet.without_late_panel_changes): the score it struck stands again,
# and the journey records it "arrived after the close", which the auditor's recompute reads. Before
# it, the committee could strike a panellist's score after the close, and the SKB was composed
# without it. Asked only when such a change is found at the close, which no recorded history set
# before v28-panel-after-close holds, so other journeys write no marker.
PANEL_CHANGE_AFTER_CLOSE = "panel-change-after-close"

# An applicant's aftermath judges a report only by the round's keys read at most a minute before
# (workflows/aftermath.py KEYS_FRESH): with an older reading the report is refused unrecorded, the
# client asks `read_round_again`, and sends it again. Before it the keys read when the aftermath
# began judged every later report, for years: a key the round replaced by change-keys (stolen) still
# signed a DIS or a dismissal there, and its new key was refused. Asked when the aftermath is ready;
# tests/histories/aftermath-v1 holds aftermaths from before, aftermath-v2-keys one that read again.
AFTERMATH_READS_KEYS_AGAIN = "aftermath-reads-keys-again"

# An applicant's aftermath stays open for years, and each reading of the round's keys adds to its
# history (6 events, at most one a minute, asked by any client whose report finds the keys stale,
# and by any process that reaches Temporal: it takes no input). Temporal takes 2,000 updates in a
# run, so in some 33 hours of that the aftermath could take no DIS or dismissal ever again. Since
# this patch a run whose history reaches workflows/aftermath.py CONTINUE_AT_EVENTS continues as new
# with its whole record carried. Asked the first time a run could continue, so aftermaths that never grow
# that long write no marker; tests/histories/aftermath-v3-continues holds one that did.
AFTERMATH_CONTINUES_AS_NEW = "aftermath-continues-as-new"

# Optimalisasi fills the most seats it can without passing anyone over (domain.optimalisasi
# allocate(fill_most=True)): a candidate whose pools have no seat left is still seated when a
# better-ranked one of the same allocation can move to a seat of another formasi of their own
# pools. Before it, each candidate best first took the lowest-coded formasi of its pools, and a
# seat could stay empty while a candidate of its pool went without (F1 taking Hukum or Ekonomi,
# F2 only Hukum: the Hukum candidate took F1, and the Ekonomi candidate and F2 were left). Asked when
# the round allocates (each run); the allocation's decision records it (`fill`), which the
# auditor's recompute follows. Rounds recorded before it allocate as they did.
OPTIMALISASI_FILLS_MOST = "optimalisasi-fills-most"

# A CPNS who passed Latsar, healthy, becomes PNS once one year of probation from the TMT is served
# (DOMAIN.md 12; domain.appointment.probation_ends), not on the day the report arrives: the journey
# records the judgement (LatsarJudged), waits at the Latsar stage until the year ends (following a
# TMT moved meanwhile), then ends PNS. A compressed round may end its probation sooner
# (Schedule.probation_ends). Before it a passing report ended the journey PNS at once. Asked when
# a report passes; a failing one dismisses at once, as before.
PROBATION_YEAR = "probation-year"

# A signal between the round's workflows (a formasi's result, a seat given back, an offer's
# answer) whose receiving run takes no more signals, because another sender spent its 10,000:
# sent as the update that takes the same message (workflows/calls.py `tell`). Asked only when
# the server refused the signal; before it, that failure failed the sending workflow.
SIGNAL_BY_UPDATE_WHEN_SPENT = "signal-by-update-when-spent"

# The round numbers a TMT move's or a key change's announcement to its formasi by the command's own
# decision, counted when the command is taken, not when the announcement leaves: two such commands
# taken in one workflow task (sent while the round's workers were down) recorded both decisions
# before either told, so both left under one id, and the formasi and the journeys, which take an
# announcement id once, dropped the second move or key change (review of 12-07). Each now carries
# the round's TMT (or the named identities' keys) when it is told, so whichever the journeys hear
# last, they end at the round's. Asked when a move or change is taken; rounds recorded before it
# number and tell as they did.
ANNOUNCEMENT_NUMBERED_AT_COMMAND = "announcement-numbered-at-command"

# A TMT move's notification is keyed by its announcement's number as well as the date
# (`tmt-moved-<date>-<n>`): a TMT moved back to a date it was moved to before was keyed as the first
# move's notification, which the read model keeps once (a retry), so the applicant never heard of
# the last move (review of 12-07). Asked when a move is notified; journeys recorded before it key
# as they did.
TMT_NOTICE_PER_MOVE = "tmt-notice-per-move"

# A journey tells the round its answer to an optimalisasi offer in the task that takes the answer,
# not when its run next wakes: a run held in a row write that kept failing (the read model down)
# sent an acceptance taken before answer_by only once the database was back, after the round had
# counted the offer unanswered and given the seat to the next, and two held one seat (review of
# 12-07). Asked when an answer is taken; journeys recorded before it reply from their run.
OFFER_REPLY_AT_ANSWER = "offer-reply-at-answer"

# A seat taken in optimalisasi gives its taker as long to file (DRH and documents) as the filing
# window gave every winner, counted from the acceptance, when that ends after filing's close: the
# round's offer carries the window's length (OptimalisasiOffer.filing_within), and the taker's
# journey waits past filing's close until its own time is up. A seat given up late in filing was
# offered, the close held for the answer, and a taker who accepted after the scheduled close was
# ended TMS-DRH within milliseconds by the close: the seat ended empty (review of 12-07). Asked
# by the round when it makes an offer; the journey follows what the offer carries.
LATE_TAKER_FILING_TIME = "late-taker-filing-time"

# A seat given back to a round that has ended (closed, its workflow completed): the journey goes
# on to its ending and the seat is not refilled, as any seat given up after filing closed. A late
# taker (late-taker-filing-time) may still be filing when an operator closes the round's Latsar
# window, and its withdrawal, DIS or incomplete filing then signalled the completed round: the
# signal failed, and with it the journey, its ending and its sanction unrecorded (review of
# 12-08). Asked only when that signal fails; journeys before it failed there.
SEAT_BACK_TO_ENDED_ROUND = "seat-back-to-ended-round"

# An optimalisasi acceptance taken together with a withdrawal (the run woke with both taken) counts
# as passing when the ending is judged: P/L-2, and the withdrawal after passing bars the applicant
# (DOMAIN.md 11). The round had the acceptance and the journey was placed, but its final code was
# still TL, so the withdrawal carried no bar: the order in which the run woke decided the sanction
# (review of 12-08). Asked only in that race; journeys before it judged the ending on TL.
ACCEPTED_BEFORE_ENDING = "accepted-before-ending"

# The round records filing's close as it records every window's before it ("window closed", with
# the scheduled close beside it), at the moment it took effect: after the scheduled close when an
# optimalisasi offer's answer was waited for. Nothing recorded it, so `starter.py status` showed
# the scheduled close, hours or days before the real one (review of 12-08). Asked when filing
# closes; rounds recorded before it record nothing there.
FILING_CLOSE_RECORDED = "filing-close-recorded"
