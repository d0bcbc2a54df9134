"""`starter.py import-registrations ... --gateway URL`: an SSCASN export registered through the
HTTP gateway by an operator of the round who holds an API key and nothing of the cluster. The CLI
runs as a process of its own against the gateway served on a real port by the session's stack;
the journeys it starts are read back from their histories."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import tomli_w

from client.api import RecruitmentApi, applicant_id_for
from client.csvio import REGISTRATION_COLUMNS
from domain.messages import JourneyStart
from domain.signing import verify
from tests.forked import DRIVER
from tests.roundkit import OPERATOR, TEST_KEYRING, open_registration_round, registration
from tests.web.conftest import PORTAL, api_key, serving
from tests.web.test_operator_reads import _stack_env
from tests.web.test_report_via_gateway import ROOT, _counts, _private, _starter
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIRTH = date(1995, 7, 21)  # no other test's NIKs are born on this day


def _row(serial: int, **changes: str) -> dict[str, str]:
    reg = registration(serial, "F1", birth=BIRTH)
    row = {
        k: str(v.value if hasattr(v, "value") else v)
        for k, v in reg.model_dump().items()
        if k in REGISTRATION_COLUMNS.all
    }
    return {**row, **changes}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def _start_of(client, workflow_id: str) -> JourneyStart:
    """The start input a journey's history recorded, decoded with the round's payload keys."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    attrs = history.events[0].workflow_execution_started_event_attributes
    [start] = await client.data_converter.decode(list(attrs.input.payloads), [JourneyStart])
    return start


async def test_an_export_is_registered_through_the_gateway_signed_by_its_portal_for_the_operator(
    client, keys, running_worker, gateway_state, stack_settings, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await open_registration_round(api, tmp_path, "imp-gw")
    round_file = tmp_path / "round.toml"
    rows = [
        _row(61),
        _row(62),
        _row(63, gpa="tiga"),  # line 4: not a number, refused here, never sent
        _row(64, major="Sastra Jawa"),  # line 5: not a major of F1, refused by the gateway
        _row(65),
        _row(66, formasi_code="F9"),  # line 7: no such formasi in the round
        _row(67),
    ]
    export = _write(tmp_path / "sscasn.csv", rows)
    errors = tmp_path / "out" / "refused.csv"
    errors.parent.mkdir()
    numbers = errors.with_name("sscasn.numbers.csv")
    operator_key = _private(tmp_path / "operator.api-key", api_key(OPERATOR) + "\n")
    data_dir = tmp_path / "operator-data"

    async with serving(gateway_state) as url:

        def imported(key_file: Path = operator_key, file: Path = round_file) -> list[str]:
            return [
                "import-registrations", str(file), str(export), "--errors", str(errors),
                "--gateway", url, "--api-key-file", str(key_file),
            ]  # fmt: skip

        code, out, err = await _starter(*imported(), data_dir=data_dir)
        assert code == 1, (out, err)  # some rows refused
        assert _counts(out, "registered") == {
            "registered": 4,
            "repeat": 0,
            "refused": 3,
            "failed": 0,
        }, out
        refused = sorted(_read(errors), key=lambda r: int(r["line"]))
        assert [(r["line"], r["field"]) for r in refused] == [
            ("4", "gpa"),
            ("5", "major"),
            ("7", "formasi_code"),
        ], refused
        assert not data_dir.exists()  # nothing of the cluster was needed
        for row in rows:  # no NIK is printed, whatever became of its row
            assert row["nik"] not in out + err

        # Each registered row's number, which is the round's pseudonym of its NIK; each journey's
        # start is signed by the gateway's portal key and names the operator who asked.
        written = {int(r["line"]): r for r in _read(numbers)}
        # Every row the gateway judged has its number, the refused ones too (line 4 never left).
        assert {line: n["status"] for line, n in written.items()} == {
            2: "registered",
            3: "registered",
            5: "refused",
            6: "registered",
            7: "refused",
            8: "registered",
        }, written
        for line in (5, 7):
            nik = rows[line - 2]["nik"]
            assert written[line]["applicant_id"] == applicant_id_for(
                keys.pseudonym_key, config.round_id, nik
            )
        registered = {line: n for line, n in written.items() if n["status"] == "registered"}
        portal_key = {PORTAL: gateway_state.portal.public}
        for line, number in registered.items():
            nik = rows[line - 2]["nik"]
            assert number["applicant_id"] == applicant_id_for(
                keys.pseudonym_key, config.round_id, nik
            )
            workflow_id = journey_workflow_id(config.round_id, number["applicant_id"])
            start = await _start_of(client, workflow_id)
            assert (start.registered_by, start.submitted_by) == (PORTAL, OPERATOR)
            assert verify(start, portal_key, workflow_id) is None  # it holds
            forged = start.model_copy(update={"submitted_by": "someone-else"})
            assert "does not verify" in (verify(forged, portal_key, workflow_id) or "")

        # The auditor's trail of one of them says who registered it, and on whose request.
        trail = await asyncio.to_thread(
            DRIVER.run,
            "audit.py",
            ["trail", config.round_id, number["applicant_id"]],
            {**os.environ, **_stack_env(stack_settings), "COLUMNS": "200"},
            ROOT,
            120,
        )
        assert trail.returncode == 0, trail.stderr
        assert f"by {PORTAL}, on the request of {OPERATOR} (through the gateway)" in trail.stdout
        # The inspector's tally of the round: who registered each applicant, and on whose request.
        direct = await api.register(config, registration(68, "F1", birth=BIRTH), PORTAL)
        assert direct.status == "registered", direct

        def tallied(*options: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "audit.py", "registrations", config.round_id, *options],
                env={**os.environ, **_stack_env(stack_settings), "COLUMNS": "200"},
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=120,
            )

        tally, table = await asyncio.gather(
            asyncio.to_thread(tallied, "--json"), asyncio.to_thread(tallied)
        )
        assert tally.returncode == table.returncode == 0, tally.stderr + table.stderr
        assert "Registered on an operator's request through the gateway" in table.stdout
        assert all(n["applicant_id"] in table.stdout for n in registered.values())
        assert direct.applicant_id not in table.stdout  # counted, not listed
        assert json.loads(tally.stdout)["groups"] == [
            {
                "registered_by": PORTAL,
                "submitted_by": None,
                "count": 1,
                "applicants": [direct.applicant_id],
            },
            {
                "registered_by": PORTAL,
                "submitted_by": OPERATOR,
                "count": 4,  # a refused registration starts no journey
                "applicants": sorted(n["applicant_id"] for n in registered.values()),
            },
        ]

        # The same file again: every registered row is a repeat, nothing started twice.
        code, out, err = await _starter(*imported(), data_dir=data_dir)
        assert code == 1, (out, err)
        assert _counts(out, "registered") == {
            "registered": 0,
            "repeat": 4,
            "refused": 3,
            "failed": 0,
        }, out

        # A copy of the round file edited since (another quota): refused before any row is sent.
        edited = tmp_path / "edited.toml"
        doc = config.model_dump(mode="json", exclude_none=True)
        doc["formasi"][0]["quota"] += 1
        edited.write_text(tomli_w.dumps(doc))
        code, out, err = await _starter(*imported(file=edited), data_dir=data_dir)
        assert code == 1 and "are not the ones round" in err, (out, err)
        assert config.digest()[:12] in err

        # An identity of the round that is not its operator: refused whole, nothing sent.
        verifier_key = _private(tmp_path / "verifier.api-key", api_key("bkpsdm-verifikator"))
        code, out, err = await _starter(*imported(key_file=verifier_key), data_dir=data_dir)
        assert code == 2 and "not an operator" in err, (out, err)

        # --key and --as are the direct path's: through the gateway its portal key signs.
        code, _, err = await _starter(*imported(), "--as", "sscasn", data_dir=data_dir)
        assert code == 2 and "leave out --key and --as" in err, err
