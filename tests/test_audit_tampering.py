"""What `audit.py verify` catches when an insider holds the bundle's signing key and the payload
key: they can re-encrypt anything into a history and sign the manifest again, so the replay
(which runs no update validator) proves nothing about who sent what. Offline, on the signed
recorded sets under tests/histories; no server."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel
from typer.testing import CliRunner

import audit
from auditing.bundle import MANIFEST, load_histories, write_bundle
from auditing.history import Message, RecordedHistory, messages
from auditing.provenance import check_provenance, key_timeline
from domain.config import parse_round_config
from domain.messages import (
    ChangeKeys,
    JourneyRules,
    JourneyStart,
    LatsarReport,
    MoveTmt,
    SkdReport,
)
from domain.signing import Signer
from runtime.connection import data_converter
from runtime.keys import Keys
from tests import roundkit
from workflows.round import journey_rules

RECORDED = Path(__file__).resolve().parent / "histories"
SIGNED = RECORDED / "v20-full"  # a round with keys: every start and report signed
SIGNING_KEY = bytes(range(32))  # the bundle's, which the insider holds


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


# --- who may send what ------------------------------------------------------------------------


async def rewrite_updates(
    h: RecordedHistory, converter, name: str, kind: type[BaseModel], change: Callable
) -> int:
    """Re-encrypt every accepted `name` update of the history as `change` makes it."""
    changed = 0
    for event in h.history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == name:
                [message] = await converter.decode(list(request.input.args.payloads), [kind])
                [payload] = await converter.encode([change(message)])
                request.input.args.payloads[0].CopyFrom(payload)
                changed += 1
    return changed


def signed_by(identity: str, audience: str, **changes) -> Callable:
    """A message changed, and signed with the real key of another identity of the round."""
    signer = roundkit.test_signer(identity)
    return lambda m: signer.sign(
        m.model_copy(update={**changes, "reported_by": identity, "signature": ""}), audience
    )


async def test_a_report_signed_by_an_identity_not_allowed_to_send_it_is_named():
    """The reviewer's case: the operator's key signs a Latsar result (LAN's to report) that fails
    the applicant."""
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    latsar = next(
        h
        for h in histories
        if h.kind == "journey" and b"report_latsar" in h.history.to_json().encode()
    )
    forged = signed_by("panitia-test", latsar.workflow_id, passed=False)
    assert await rewrite_updates(latsar, converter, "report_latsar", LatsarReport, forged) == 1

    check = await check_provenance(histories, converter)

    assert len(check.problems) == 1, check.problems
    assert "report_latsar" in check.problems[0]
    assert "panitia-test is not allowed to report latsar" in check.problems[0]


async def test_a_round_command_from_an_identity_not_an_operator_is_named():
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    round_history = next(h for h in histories if h.kind == "round")
    forged = signed_by(
        "sscasn", round_history.workflow_id
    )  # the portal's key, which the gateway holds
    assert await rewrite_updates(round_history, converter, "move_tmt", MoveTmt, forged) == 1

    check = await check_provenance(histories, converter)

    assert len(check.problems) == 1, check.problems
    assert (
        "move_tmt" in check.problems[0]
        and "sscasn is not allowed to report operator" in (check.problems[0])
    )


# --- until when a command holds ----------------------------------------------------------------


async def _move_tmt_resigned(until: Callable[[Message], datetime]):
    """v20-full with its TMT move signed again by the round's operator, `valid_until` set from the
    recorded move (as an insider with the operator's key and the payload key could write it)."""
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    round_history = next(h for h in histories if h.kind == "round")
    [move] = [
        m
        for m in await messages(round_history.history, converter)
        if m.kind == "update" and m.name == "move_tmt"
    ]
    resigned = signed_by("panitia-test", round_history.workflow_id, valid_until=until(move))
    assert await rewrite_updates(round_history, converter, "move_tmt", MoveTmt, resigned) == 1
    return move, await check_provenance(histories, converter)


async def test_a_command_taken_after_its_valid_until_is_named():
    move, check = await _move_tmt_resigned(lambda m: m.judged_at - timedelta(seconds=1))

    assert len(check.problems) == 1, check.problems
    assert "move_tmt" in check.problems[0] and "has passed" in check.problems[0]


async def test_a_command_taken_within_its_valid_until_holds():
    """Judged by the time of the workflow task that took it, not the accepted event's (written
    when the task completed, later): a command valid until that task began holds."""
    move, check = await _move_tmt_resigned(lambda m: m.judged_at)

    assert move.judged_at is not None and move.judged_at < move.at
    assert check.problems == []


# --- key changes ------------------------------------------------------------------------------


async def signed_round() -> tuple[JourneyRules, str, datetime]:
    """v20-full's round: its rules, its workflow id and the time of its last message."""
    [round_history] = [h for h in load_histories(SIGNED) if h.kind == "round"]
    recorded = await messages(round_history.history, converter_of(SIGNED))
    config = parse_round_config(recorded[0].content.config, "v20-full round")
    return journey_rules(config), round_history.workflow_id, recorded[-1].at


def key_change(signer: Signer, round_id: str, **identities: str) -> ChangeKeys:
    change = ChangeKeys(
        report_id=f"keys-{signer.identity}",
        reported_by=signer.identity,
        identities=identities,
        reason="a key lost",
    )
    return signer.sign(change, round_id)


def as_recorded(at: datetime, *changes: ChangeKeys) -> list[Message]:
    return [
        Message(at + timedelta(seconds=i), "update", "change_keys", c)
        for i, c in enumerate(changes)
    ]


async def test_a_key_change_signed_by_the_key_it_brings_is_named_and_not_taken():
    rules, round_id, at = await signed_round()
    mallory = Signer.generate("panitia-test")  # the operator's name, a key of the insider's own
    cat = Signer.generate("cat-bkn")
    change = key_change(
        mallory, round_id, **{"panitia-test": mallory.public, "cat-bkn": cat.public}
    )
    journey_id = "recorded/applicant/H35FTZZAS737LQQ4"
    score = cat.sign(
        SkdReport(report_id="skd-x", reported_by="cat-bkn", twk=150, tiu=175, tkp=225), journey_id
    )

    timeline = key_timeline(rules, round_id, as_recorded(at, change))

    assert len(timeline.refused) == 1 and "keys-panitia-test" in timeline.refused[0]
    assert "does not verify under panitia-test's key" in timeline.refused[0]
    assert timeline.changes == []
    assert "does not verify" in (timeline.verify(score, at + timedelta(hours=1), journey_id) or "")


async def test_a_key_change_from_an_identity_not_an_operator_is_named_and_not_taken():
    rules, round_id, at = await signed_round()
    cat = Signer.generate("cat-bkn")
    portal = roundkit.test_signer("sscasn")  # a real key of the round: the gateway holds it

    timeline = key_timeline(
        rules, round_id, as_recorded(at, key_change(portal, round_id, **{"cat-bkn": cat.public}))
    )

    assert len(timeline.refused) == 1
    assert "sscasn is not allowed to report operator" in timeline.refused[0]
    assert timeline.in_force()["cat-bkn"] == rules.identities["cat-bkn"]


async def test_key_changes_are_checked_in_order_under_the_keys_in_force_before_each():
    """The operator's real change is taken; a later change signed with the key it replaced is not,
    nor one signed with a key it brings before it is taken."""
    rules, round_id, at = await signed_round()
    operator = roundkit.test_signer("panitia-test")
    renewed = Signer.from_seed("panitia-test", bytes(range(1, 33)))
    cat = Signer.generate("cat-bkn")
    changes = [
        key_change(operator, round_id, **{"panitia-test": renewed.public}),
        key_change(operator, round_id, **{"cat-bkn": cat.public}),  # the retired key
        key_change(renewed, round_id, **{"lan": cat.public}),  # the key now in force: taken
    ]

    timeline = key_timeline(rules, round_id, as_recorded(at, *changes))

    assert [keys for _, keys in timeline.changes] == [
        {"panitia-test": renewed.public},
        {"lan": cat.public},
    ]
    assert len(timeline.refused) == 1 and "does not verify" in timeline.refused[0]


# --- a whole round ----------------------------------------------------------------------------


def bundle_of(tmp_path: Path, histories: list[RecordedHistory], round_id: str = "recorded") -> Path:
    bundle = tmp_path / "bundle"
    write_bundle(histories, round_id, bundle, SIGNING_KEY)
    return bundle


def verify(bundle: Path, directory: Path = SIGNED) -> tuple[int, str]:
    """`audit.py verify` of the bundle: its exit code and output; never a traceback."""
    key_file = str(directory / "payload_key.b64")
    result = CliRunner().invoke(audit.app, ["verify", str(bundle), "--payload-key-file", key_file])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())


def test_an_intact_signed_bundle_verifies(tmp_path):
    code, out = verify(bundle_of(tmp_path, load_histories(SIGNED)))

    assert code == 0, out
    assert "report and command signatures verify" in out


@pytest.mark.parametrize(
    "keep, round_id, named",
    [
        (lambda h: False, "recorded", "holds no history"),
        (
            lambda h: h.kind == "formasi",
            "recorded",
            "no history of the round's own workflow (recorded/round",
        ),
        (lambda h: True, "another", "a history of round 'recorded', not of the bundle's round"),
    ],
    ids=["empty", "without the round", "of another round"],
)
def test_a_bundle_that_is_not_one_whole_round_fails(tmp_path, keep, round_id, named):
    bundle = bundle_of(tmp_path, [h for h in load_histories(SIGNED) if keep(h)], round_id)

    code, out = verify(bundle)

    assert code == 1 and named in out, out


# --- the manifest ---------------------------------------------------------------------------


def resign(bundle: Path, manifest: object = None, raw: bytes | None = None) -> None:
    """Write the manifest (or these bytes) and sign it with the bundle's key, as the insider can."""
    if raw is None:
        raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (bundle / MANIFEST).write_bytes(raw)
    signature = Ed25519PrivateKey.from_private_bytes(SIGNING_KEY).sign(hashlib.sha256(raw).digest())
    (bundle / "manifest.sig").write_text(base64.b64encode(signature).decode() + "\n")


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def moved_outside(bundle: Path, entry: dict, where: Path) -> Path:
    where.mkdir(exist_ok=True)
    return shutil.move(bundle / entry["file"], where / Path(entry["file"]).name)


def absolute_path(bundle: Path, manifest: dict) -> None:
    entry = manifest["files"][0]
    entry["file"] = str(moved_outside(bundle, entry, bundle.parent / "outside"))


def dot_dot_path(bundle: Path, manifest: dict) -> None:
    entry = manifest["files"][0]
    entry["file"] = f"../sibling/{moved_outside(bundle, entry, bundle.parent / 'sibling').name}"


def symlink_outside(bundle: Path, manifest: dict) -> None:
    entry = manifest["files"][0]
    (bundle / entry["file"]).symlink_to(moved_outside(bundle, entry, bundle.parent / "outside"))


def same_entry_twice(bundle: Path, manifest: dict) -> None:
    manifest["files"].append(dict(manifest["files"][0]))


def same_run_in_another_file(bundle: Path, manifest: dict) -> None:
    entry = dict(manifest["files"][0], file="histories/copy.json")
    shutil.copy(bundle / manifest["files"][0]["file"], bundle / entry["file"])
    manifest["files"].append(entry)


@pytest.mark.parametrize(
    "tamper, named",
    [
        (absolute_path, "is not a file directly under histories/"),
        (dot_dot_path, "is not a file directly under histories/"),
        (symlink_outside, "leads outside the bundle's histories/"),
        (same_entry_twice, "is listed more than once"),
        (same_run_in_another_file, "is listed more than once"),
    ],
    ids=["absolute path", "path with ..", "symlink out", "entry twice", "run twice"],
)
def test_a_manifest_entry_outside_the_bundle_or_listed_twice_fails(tmp_path, tamper, named):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    manifest = manifest_of(bundle)
    tamper(bundle, manifest)
    resign(bundle, manifest)

    code, out = verify(bundle)

    assert code == 1 and named in out, out


@pytest.mark.parametrize(
    "raw, named",
    [
        (
            b'{"round_id": "recorded", "files": [{"file": "histories/x.json"}]}',
            "needs file, workflow_id, run_id, sha256",
        ),
        (b'["recorded"]', "not a manifest: an object with a round_id and a list of files"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deep"),
        (b"{not json", "not JSON"),
    ],
    ids=["entry without sha256", "not an object", "100k deep", "not JSON"],
)
def test_a_malformed_manifest_is_named_without_a_traceback(tmp_path, raw, named):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    for history in (bundle / "histories").iterdir():
        history.unlink()  # so that only the manifest's own problem is left
    resign(bundle, raw=raw)

    code, out = verify(bundle)

    assert code == 1 and named in out, out


def test_after_a_bad_manifest_signature_nothing_more_is_read(tmp_path):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    (bundle / MANIFEST).write_bytes(b'{"round_id": "recorded", "files": [{"file": "/etc/passwd"}]}')

    code, out = verify(bundle)

    assert code == 1 and "signature does not match" in out and "not read further" in out
    assert "/etc/passwd" not in out and "entry 1" not in out


# The recorded rounds since v2 (the first set's journeys carry other rules than their round's,
# which test_audit.py shows; aftermath-v1 and the local-activity sets hold no round's history).
RECORDED_SETS = sorted(RECORDED.glob("v*"))


@pytest.mark.parametrize("directory", RECORDED_SETS, ids=lambda p: p.name)
async def test_every_recorded_set_holds_its_provenance(directory):
    """Every start, report and command of every recorded set passes the checks below untouched."""
    check = await check_provenance(load_histories(directory), converter_of(directory))

    assert check.problems == [] and check.refused_starts == []


def recompute_cli(bundle: Path, *more: str, directory: Path = SIGNED) -> tuple[int, str]:
    """`audit.py recompute recorded --bundle`: its exit code and output; never a traceback."""
    key_file = str(directory / "payload_key.b64")
    args = ["recompute", "recorded", "--bundle", str(bundle), "--payload-key-file", key_file]
    result = CliRunner().invoke(audit.app, [*args, *more])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())


async def test_recompute_counts_only_what_its_signature_and_sender_hold(tmp_path):
    """DESIGN.md invariant 7: the auditor's recompute checks the signature and the sender's right
    as the journey did, and names what fails. It matched every cut and exited 0 with a report
    re-signed by an identity not allowed to send it (review of 12-07)."""
    histories, converter = load_histories(SIGNED), converter_of(SIGNED)
    # audit.py runs its own event loop: a thread of its own, as on an auditor's machine.
    code, out = await asyncio.to_thread(recompute_cli, bundle_of(tmp_path / "intact", histories))
    assert code == 0, out
    assert "report and command signatures verify" in out and "matches its recomputation" in out

    latsar = next(
        h
        for h in histories
        if h.kind == "journey" and b"report_latsar" in h.history.to_json().encode()
    )
    forged = signed_by("panitia-test", latsar.workflow_id)
    assert await rewrite_updates(latsar, converter, "report_latsar", LatsarReport, forged) == 1
    code, out = await asyncio.to_thread(recompute_cli, bundle_of(tmp_path / "forged", histories))
    assert code == 1, out
    assert "panitia-test is not allowed to report latsar" in out and latsar.workflow_id in out


def test_recompute_takes_the_signer_s_published_key_only_with_a_bundle(tmp_path):
    histories = load_histories(SIGNED)
    bundle = bundle_of(tmp_path, histories)
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, out = recompute_cli(bundle, "--public-key", str(other))
    assert code == 1 and "manifest" in out, out  # signed by another key than the published one
    result = CliRunner().invoke(audit.app, ["recompute", "recorded", "--public-key", str(other)])
    assert result.exit_code == 2 and "--public-key: only with --bundle" in result.output


@pytest.mark.parametrize(
    ("cut", "named"),
    [
        (lambda events: [], "not a workflow history: RuntimeError: No events"),
        (lambda events: events[1:], "First event is not workflow start"),
    ],
    ids=["no events", "its start cut off"],
)
def test_a_history_file_without_its_start_is_named_not_a_traceback(tmp_path, cut, named):
    """Signed and hashed as the insider can: the check read its first event outside its guard."""
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    manifest = manifest_of(bundle)
    entry = next(e for e in manifest["files"] if "/applicant/" in e["workflow_id"])
    path = bundle / entry["file"]
    document = json.loads(path.read_text())
    document["events"] = cut(document["events"])
    path.write_text(json.dumps(document))
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    resign(bundle, manifest)

    code, out = verify(bundle)

    # The console wraps a long path: compared without the spaces the wrapping put in.
    assert code == 1 and named in out and path.name in out.replace(" ", ""), out


def test_a_public_key_file_that_is_not_one_is_the_auditor_s_to_mend_not_the_bundle_s(tmp_path):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    for text in ("not base64!", base64.b64encode(bytes(31)).decode()):
        key = tmp_path / "published.key"
        key.write_text(text)
        result = CliRunner().invoke(audit.app, ["verify", str(bundle), "--public-key", str(key)])
        said = " ".join(result.output.split())
        assert result.exit_code == 2, said
        assert f"--public-key {key}: not an Ed25519 public key" in said
        assert "manifest.sig" not in said


def test_a_history_listed_under_another_workflow_s_name_is_named(tmp_path):
    """The manifest's label alone said which workflow a file was: another round's formasi passed
    as this round's (review of 12-07). Its own start event names it."""
    histories = load_histories(SIGNED)
    formasi = next(h for h in histories if h.kind == "formasi")
    formasi.history.events[
        0
    ].workflow_execution_started_event_attributes.workflow_id = "another-round/formasi/F1"
    code, out = verify(bundle_of(tmp_path, histories))
    assert code == 1, out
    assert "its start names workflow another-round/formasi/F1, not the one it is listed as" in out


def test_a_second_first_run_of_a_journey_and_a_run_continuing_one_not_held_are_named(tmp_path):
    """A journey is started once (the server refuses a second start) and a round's workflows are
    one chain of runs: a fork passed, and so did a chain missing the run it continues from."""
    histories = load_histories(SIGNED)
    victim = next(h for h in histories if h.kind == "journey")
    fork = copy.deepcopy(victim)
    forked_run = "11111111-2222-4333-8444-555555555555"
    attrs = fork.history.events[0].workflow_execution_started_event_attributes
    attrs.original_execution_run_id = attrs.first_execution_run_id = forked_run
    code, out = verify(bundle_of(tmp_path / "fork", [*histories, fork]))
    assert code == 1, out
    assert f"{victim.workflow_id}: 2 runs begin its chain" in out and forked_run in out

    chained = [h for h in histories if h.kind == "formasi"]
    later = next(h for h in chained if _continued(h))
    without = [h for h in histories if h.run_id != _continued(later)]
    code, out = verify(bundle_of(tmp_path / "gap", without))
    assert code == 1, out
    assert f"continues run {_continued(later)}, which the bundle does not hold" in out


def _continued(h: RecordedHistory) -> str:
    return h.history.events[
        0
    ].workflow_execution_started_event_attributes.continued_execution_run_id


async def test_a_key_replaced_because_it_was_lost_signs_nothing_recorded_after_the_change():
    """Every key an identity had ever held counted, so whoever held a lost key could sign for ever
    (review of 12-07). A message counts under the key held when it was recorded: the old one
    before the change, and in a journey until it heard of the change; the new one after."""
    rules, round_id, at = await signed_round()
    operator = roundkit.test_signer("panitia-test")  # the round's real operator key
    lost = roundkit.test_signer("cat-bkn")  # the CAT centre's first key, lost
    renewed = Signer.generate("cat-bkn")
    timeline = key_timeline(
        rules,
        round_id,
        as_recorded(at, key_change(operator, round_id, **{"cat-bkn": renewed.public})),
    )
    assert timeline.refused == [] and len(timeline.changes) == 1
    journey_id = "recorded/applicant/H35FTZZAS737LQQ4"

    def score(signer: Signer) -> SkdReport:
        return signer.sign(
            SkdReport(report_id="skd-x", reported_by="cat-bkn", twk=150, tiu=175, tkp=225),
            journey_id,
        )

    before, month_later = at - timedelta(hours=1), at + timedelta(days=30)
    assert timeline.verify(score(lost), before, journey_id) is None  # signed and taken before
    assert "does not verify" in (timeline.verify(score(lost), month_later, journey_id) or "")
    assert timeline.verify(score(renewed), month_later, journey_id) is None
    # A journey that had not heard of the change (it learnt its keys before it) still held the
    # old key, as the journey's own check did; once it heard, only the new one.
    heard_before = at - timedelta(days=1)
    assert timeline.verify(score(lost), month_later, journey_id, learned=heard_before) is None
    assert "does not verify" in (
        timeline.verify(score(lost), month_later, journey_id, learned=at) or ""
    )


def test_a_run_cut_short_is_listed_as_not_ended_when_exported(tmp_path):
    """A history whose end was cut off (its last report and ending gone) still replays: verify
    now lists every run that had not ended, which a whole, closed round has none of."""
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    code, out = verify(bundle)
    assert code == 0 and "had not ended when exported" not in out, out
    manifest = manifest_of(bundle)
    entry = next(e for e in manifest["files"] if "/applicant/" in e["workflow_id"])
    path = bundle / entry["file"]
    document = json.loads(path.read_text())
    document["events"] = document["events"][:-6]
    path.write_text(json.dumps(document))
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    resign(bundle, manifest)

    code, out = verify(bundle)

    assert "1 of" in out and "runs had not ended when exported" in out, out
    assert entry["workflow_id"] in out and entry["run_id"] in out
