"""Signed audit bundles: a round's histories as files, a manifest of their SHA-256, an Ed25519 signature.

Layout of a bundle directory:

    histories/<workflow id with / as __>__<run id>.json   one WorkflowHistory.to_json() per run
    manifest.json                                          round, files with sha256, workflow id, run id
    manifest.sig                                           Ed25519 signature of SHA-256(manifest.json), base64
    public_key.pem                                         the signer's public key (trust it only if it
                                                           matches the key you got from the instansi)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from temporalio.client import WorkflowHistory

from auditing.history import RecordedHistory, recorded
from runtime.files import open_private, read_input
from workflows.ids import national_workflow_id, round_workflow_id

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
HISTORIES = "histories"

# A bundle is handed to the auditor by whoever exported it: its files are read only when they
# are regular files, and the small ones only up to these sizes (runtime.files.read_input), so
# that a FIFO or a link to /dev/zero cannot hang the check or fill the memory. A history is at
# most 50 MB in Temporal (the server terminates a run there); as JSON with base64 payloads, less
# than twice that.
MANIFEST_LIMIT = 64 * 1024 * 1024
SIGNATURE_LIMIT = 4 * 1024
PUBLIC_KEY_LIMIT = 64 * 1024
HISTORY_LIMIT = 256 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def history_file_name(workflow_id: str, run_id: str) -> str:
    """A file name for one run: the id has no personal data, so it is kept readable."""
    return f"{workflow_id.replace('/', '__')}__{run_id}.json"


def public_key_pem(signing_key: bytes) -> bytes:
    """The PEM public key of the 32-byte Ed25519 seed."""
    public = Ed25519PrivateKey.from_private_bytes(signing_key).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, text: str) -> None:
    """A bundle's file, readable by its owner alone (mode 0600): what the histories say about
    applicants is encrypted, yet who did what when is not."""
    with open_private(path, encoding="utf-8") as out:
        out.write(text)


def write_bundle(
    histories: list[RecordedHistory], round_id: str, out: Path, signing_key: bytes
) -> Path:
    """Write the histories, the manifest and its signature under `out` (files of mode 0600);
    return the manifest path."""
    (out / HISTORIES).mkdir(parents=True, exist_ok=True)
    files = []
    for h in histories:
        name = f"{HISTORIES}/{history_file_name(h.workflow_id, h.run_id)}"
        path = out / name
        _write(path, h.history.to_json())
        files.append(
            {
                "file": name,
                "workflow_id": h.workflow_id,
                "run_id": h.run_id,
                "workflow_type": h.workflow_type,
                "sha256": sha256_file(path),
            }
        )
    manifest = {
        "round_id": round_id,
        "created_at": datetime.now(UTC).isoformat(),
        "hash": "sha256",
        "signature": "ed25519 over sha256(manifest.json)",
        "files": files,
    }
    manifest_path = out / MANIFEST
    _write(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    digest = hashlib.sha256(manifest_path.read_bytes()).digest()
    signature = Ed25519PrivateKey.from_private_bytes(signing_key).sign(digest)
    _write(out / SIGNATURE, base64.b64encode(signature).decode() + "\n")
    _write(out / PUBLIC_KEY, public_key_pem(signing_key).decode())
    return manifest_path


@dataclass
class BundleCheck:
    """The result of checking a bundle's integrity: problems name the file."""

    round_id: str = ""
    problems: list[str] = field(default_factory=list)
    histories: list[RecordedHistory] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (or raw 32 bytes in base64)."""
    data = read_input(path, PUBLIC_KEY_LIMIT)
    if b"BEGIN" in data:
        key = serialization.load_pem_public_key(data)
    else:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip()))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def check_bundle(bundle: Path, public_key_file: Path | None = None) -> BundleCheck:
    """Signature of the manifest, then its entries, the hash of every history file, and no
    unlisted file.

    Offline: needs no server. Without `public_key_file` the key inside the bundle is used,
    which proves integrity but not who signed: pass the instansi's published key for that.
    A manifest whose signature does not hold is not read further: nothing in it can be trusted.
    """
    check = BundleCheck()
    manifest_path = bundle / MANIFEST
    try:
        raw = read_input(manifest_path, MANIFEST_LIMIT)
    except FileNotFoundError:
        check.problems.append(f"{manifest_path}: missing")
        return check
    except OSError as exc:
        check.problems.append(f"{manifest_path}: cannot be read: {exc.strerror}")
        return check
    key_path = public_key_file or bundle / PUBLIC_KEY
    try:
        key = load_public_key(key_path)
    except FileNotFoundError:
        check.problems.append(f"{key_path}: missing")
        return check
    except OSError as exc:
        check.problems.append(f"{key_path}: cannot be read: {exc.strerror}")
        return check
    except ValueError as exc:  # the key, not the bundle's signature, is what cannot be read
        check.problems.append(
            f"{key_path}: not an Ed25519 public key (PEM, or base64 of 32 bytes): {exc}"
        )
        return check
    try:
        signature = base64.b64decode(read_input(bundle / SIGNATURE, SIGNATURE_LIMIT).strip())
        key.verify(signature, hashlib.sha256(raw).digest())
    except FileNotFoundError as exc:
        check.problems.append(f"{exc.filename}: missing")
    except OSError as exc:
        check.problems.append(f"{exc.filename}: cannot be read: {exc.strerror}")
    except InvalidSignature:
        check.problems.append(
            f"{manifest_path}: the signature does not match (manifest altered or another key)"
        )
    except ValueError as exc:
        check.problems.append(f"{bundle / SIGNATURE}: {exc}")
    if check.problems:
        check.problems.append(
            f"{manifest_path}: not read further, since its signature does not hold"
        )
        return check
    entries = _manifest_entries(raw, manifest_path, check)
    listed = set()
    for entry in entries:
        name = entry["file"]
        listed.add(name)
        path = bundle / name
        if not path.exists():
            check.problems.append(f"{path}: listed in the manifest but missing")
            continue
        if not path.resolve().is_relative_to((bundle / HISTORIES).resolve()):
            check.problems.append(f"{path}: leads outside the bundle's {HISTORIES}/")
            continue
        try:  # read once: the bytes hashed are the bytes parsed
            data = read_input(path, HISTORY_LIMIT)
        except OSError as exc:
            check.problems.append(f"{path}: cannot be read: {exc.strerror}")
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            check.problems.append(
                f"{path}: sha256 {actual} differs from the manifest's {entry['sha256']}"
            )
            continue
        try:
            history = WorkflowHistory.from_json(entry["workflow_id"], data.decode("utf-8"))
            # Both read its first event, which must be the start: a file with no events, or one
            # cut at its head, raised out of the check (a traceback, not a named problem).
            run_id = history.run_id
            kept = recorded(history)
        except Exception as exc:  # noqa: BLE001 - a signed but unreadable file is still a problem
            check.problems.append(
                f"{path}: not a workflow history: {type(exc).__name__}: {str(exc)[:200]}"
            )
            continue
        if run_id != entry["run_id"]:
            check.problems.append(
                f"{path}: run id {run_id} differs from the manifest's {entry['run_id']}"
            )
        check.histories.append(kept)
    for path in sorted((bundle / HISTORIES).glob("*")) if (bundle / HISTORIES).is_dir() else []:
        if f"{HISTORIES}/{path.name}" not in listed:
            check.problems.append(f"{path}: not listed in the manifest")
    if check.round_id:
        check.problems.extend(completeness_problems(check.round_id, check.histories))
    return check


_ENTRY_FIELDS = ("file", "workflow_id", "run_id", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _manifest_entries(raw: bytes, manifest_path: Path, check: BundleCheck) -> list[dict[str, str]]:
    """The manifest's file entries that can be checked; sets the round id and names every other
    problem of the manifest (not JSON, not the shape `write_bundle` writes, a path that leaves
    the bundle's histories/, the same file or run listed twice)."""
    try:
        manifest = json.loads(raw)
    except RecursionError:
        check.problems.append(f"{manifest_path}: not a manifest: JSON nested too deep")
        return []
    except ValueError as exc:
        check.problems.append(f"{manifest_path}: not JSON: {exc}")
        return []
    round_id = manifest.get("round_id") if isinstance(manifest, dict) else None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(round_id, str) or not round_id or not isinstance(files, list):
        check.problems.append(
            f"{manifest_path}: not a manifest: an object with a round_id and a list of files"
        )
        return []
    check.round_id = round_id
    entries, files_seen, runs_seen = [], set(), set()
    for number, entry in enumerate(files, 1):
        where = f"{manifest_path}: entry {number}"
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(f), str) and entry[f] for f in _ENTRY_FIELDS
        ):
            check.problems.append(f"{where}: needs {', '.join(_ENTRY_FIELDS)} (each a text)")
            continue
        parts = PurePosixPath(entry["file"]).parts
        if (
            len(parts) != 2
            or parts[0] != HISTORIES
            or parts[1] in (".", "..")
            or "\\" in entry["file"]
            or f"{HISTORIES}/{parts[1]}" != entry["file"]
        ):
            check.problems.append(
                f"{where}: file {entry['file']!r} is not a file directly under {HISTORIES}/"
            )
            continue
        if not _SHA256.fullmatch(entry["sha256"]):
            check.problems.append(f"{where}: sha256 {entry['sha256']!r} is not 64 hex digits")
            continue
        if entry["file"] in files_seen or entry["run_id"] in runs_seen:
            check.problems.append(
                f"{where}: {entry['file']} (run {entry['run_id']}) is listed more than once"
            )
            continue
        files_seen.add(entry["file"])
        runs_seen.add(entry["run_id"])
        entries.append(entry)
    return entries


def completeness_problems(round_id: str, histories: list[RecordedHistory]) -> list[str]:
    """What shows the histories are not one whole round's: none at all, none of the round's own
    workflow (whose start input holds the keys and rules everything else is checked by), or a
    history of another round. A journey left out of a round that holds others is not seen here."""
    if not histories:
        return [f"the bundle holds no history (of round {round_id!r})"]
    problems = [
        f"{h.workflow_id} (run {h.run_id}): a history of round {h.workflow_id.split('/')[0]!r}, "
        f"not of the bundle's round {round_id!r}"
        for h in histories
        if h.workflow_id.split("/")[0] != round_id
    ]
    own = (round_workflow_id(round_id), national_workflow_id(round_id))
    if not any(h.workflow_id in own for h in histories):
        problems.append(
            f"the bundle holds no history of the round's own workflow ({own[0]}, or {own[1]} "
            "for a national round): its keys and rules are unknown"
        )
    return problems + chain_problems(histories)


# The workflows that are one chain of runs each: started once (a journey refuses a second start)
# and continued as new. Claims and aftermaths may be started again once ended, so not checked.
_ONE_CHAIN = ("journey", "formasi", "round")


def chain_problems(histories: list[RecordedHistory]) -> list[str]:
    """What the histories' own start events contradict: a history whose start names another
    workflow than it is listed as (the manifest's label alone said which it was), and a run
    chain with two beginnings, or a run that continues one the bundle does not hold. Another
    round's formasi, listed under this round's name, passed; so did a second first run of a
    journey, which the server refuses (review of 12-07)."""
    problems = []
    runs: dict[str, list[RecordedHistory]] = {}
    for h in histories:
        attrs = h.history.events[0].workflow_execution_started_event_attributes
        if attrs.workflow_id and attrs.workflow_id != h.workflow_id:
            problems.append(
                f"{h.workflow_id} (run {h.run_id}): its start names workflow "
                f"{attrs.workflow_id}, not the one it is listed as"
            )
        if h.kind in _ONE_CHAIN:
            runs.setdefault(h.workflow_id, []).append(h)
    for workflow_id, chain in runs.items():
        held = {h.run_id for h in chain}
        starts = [h.run_id for h in chain if not _continued_from(h)]
        if len(starts) > 1:
            problems.append(
                f"{workflow_id}: {len(starts)} runs begin its chain ({', '.join(sorted(starts))}); "
                "a workflow of a round is started once and continued as new"
            )
        for h in chain:
            before = _continued_from(h)
            if before and before not in held:
                problems.append(
                    f"{workflow_id} (run {h.run_id}): continues run {before}, which the bundle "
                    "does not hold"
                )
    return problems


def _continued_from(h: RecordedHistory) -> str:
    attrs = h.history.events[0].workflow_execution_started_event_attributes
    return attrs.continued_execution_run_id


def load_histories(directory: Path) -> list[RecordedHistory]:
    """Histories from a bundle (by its manifest) or from a plain directory of *.json history files."""
    if (directory / MANIFEST).is_file():
        manifest = json.loads((directory / MANIFEST).read_text())
        return [
            recorded(
                WorkflowHistory.from_json(e["workflow_id"], (directory / e["file"]).read_text())
            )
            for e in manifest["files"]
        ]
    out = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        workflow_id = data.get("workflowId") or path.stem.rsplit("__", 1)[0].replace("__", "/")
        out.append(recorded(WorkflowHistory.from_json(workflow_id, data)))
    return out
