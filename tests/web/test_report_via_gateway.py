"""`starter.py report ... --gateway URL`: a file of reports sent through the HTTP gateway in
batches, by an operator who holds an API key and a signing key but nothing of the cluster (no
Temporal address, no payload key). The CLI runs as a process of its own against the gateway
served on a real port by the session's stack."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from client.api import RecruitmentApi
from tests.roundkit import TEST_KEYRING, registered_round
from tests.web.conftest import api_key, serving
from tests.web.test_service_api import VERIFIER
from tests.web.test_service_api_batch import accepted_updates

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


async def _starter(*args: str, data_dir: Path) -> tuple[int, str, str]:
    """Run starter.py with no setting of the cluster: only a data dir of its own, which a run
    through the gateway must not even create."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env.update({"CASN_DATA_DIR": str(data_dir), "COLUMNS": "200", "CASN_LOG_FORMAT": "json"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _registered(client, keys, running_worker, folder, prefix, serials, birth):
    """A round open for registration with one applicant per serial: its id and their numbers."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, ids = await registered_round(api, folder, prefix, serials, birth)
    return config.round_id, ids


def _counts(out: str, column: str = "accepted") -> dict[str, int]:
    """The run's summary table (the one with `column`): each column's count."""
    lines = out.splitlines()
    header = next(line for line in lines if "┃" in line and column in line)
    names = [c.strip() for c in header.strip().strip("┃").split("┃")]
    row = next(line for line in lines if line.strip().startswith("│"))
    return dict(zip(names, (int(c) for c in row.strip().strip("│").split("│")), strict=True))


async def test_a_file_of_reports_goes_through_the_gateway_with_no_access_to_the_cluster(
    client, keys, running_worker, gateway_state, tmp_path
):
    round_id, ids = await _registered(
        client, keys, running_worker, tmp_path, "via-gw", [91, 92, 93], date(1996, 2, 13)
    )
    rows = [
        ("adm-1", ids[0], ""),
        ("adm-2", ids[1], "ijazah:not legalised"),
        ("adm-3", "NOSUCHAPPLICANT1", ""),
        ("adm-4", ids[2], "no colon here"),
        ("adm-5", ids[2], ""),
    ]
    reports = tmp_path / "admin.csv"
    with reports.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["report_id", "applicant_id", "findings"])
        writer.writerows(rows)
    key = _private(tmp_path / "verifier.key.json", json.dumps(TEST_KEYRING.signers[VERIFIER].jwk()))
    good_key = _private(tmp_path / "api-key", api_key(VERIFIER) + "\n")
    data_dir = tmp_path / "operator-data"
    errors = tmp_path / "refused.csv"

    async with serving(gateway_state) as url:

        def report(api_key_file: Path, gateway: str = url) -> list[str]:
            return [
                "report", "admin", round_id, str(reports), "--as", VERIFIER,
                "--errors", str(errors), "--key", str(key),
                "--gateway", gateway, "--api-key-file", str(api_key_file),
            ]  # fmt: skip

        code, out, err = await _starter(*report(good_key), data_dir=data_dir)
        assert code == 1, (out, err)  # some rows refused
        assert _counts(out) == {"accepted": 3, "repeat": 0, "refused": 2, "failed": 0}, out
        refused = list(csv.DictReader(errors.open(encoding="utf-8")))
        reasons = {r["id"]: r["reason"] for r in refused}
        assert set(reasons) == {"adm-3", "adm-4"}, refused
        assert "no such applicant" in reasons["adm-3"]
        assert "document:reason" in reasons["adm-4"]
        for applicant in ids:
            assert (await accepted_updates(client, round_id, applicant)).count("report_admin") == 1
        assert not data_dir.exists()  # no stack, no keys: nothing of the cluster was needed

        # The same file again: every row taken before comes back as a repeat, taken once.
        code, out, err = await _starter(*report(good_key), data_dir=data_dir)
        assert code == 1, (out, err)
        assert _counts(out) == {"accepted": 0, "repeat": 3, "refused": 2, "failed": 0}, out
        for applicant in ids:
            assert (await accepted_updates(client, round_id, applicant)).count("report_admin") == 1

        # An API key the gateway does not know: bad input, the run stopped at the first batch.
        wrong = _private(tmp_path / "wrong-key", "not-a-key-it-knows\n")
        code, out, err = await _starter(*report(wrong), data_dir=data_dir)
        assert code == 2, (out, err)
        assert "the API key is not one this gateway knows" in err
        # A key file others can read, plain http to another machine: refused before anything.
        loose = _private(tmp_path / "loose-key", api_key(VERIFIER), mode=0o644)
        code, _, err = await _starter(*report(loose), data_dir=data_dir)
        assert (code, "chmod 600" in err) == (2, True), err
        code, _, err = await _starter(
            *report(good_key, "http://gateway.example.go.id"), data_dir=data_dir
        )
        assert (code, "use https" in err) == (2, True), err

    # The gateway gone: stopped, with where to resume.
    code, out, err = await _starter(*report(good_key, url), data_dir=data_dir)
    assert code == 3, (out, err)
    assert "cannot be reached" in err


async def test_reports_in_flight_share_a_batch_and_an_item_not_taken_goes_in_a_later_one(
    client, keys, running_worker, gateway_state, tmp_path, monkeypatch
):
    """GatewayReports with the gateway's app in-process: six reports sent at once travel in one
    batch; the one the engine did not take in time goes again in a batch of its own, and every
    report is taken once. A report the engine refuses is RefusedError with its reason."""
    import httpx
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    from client.api import RefusedError, UnknownError
    from client.gateway_client import GatewayReports
    from domain.messages import AdminReport, SkdReport
    from domain.signing import Keyring
    from gateway.app import create_app
    from tests.web.test_service_api import CAT

    round_id, ids = await _registered(
        client, keys, running_worker, tmp_path, "gw-client", range(101, 107), date(1996, 2, 14)
    )
    posted: list[list[str]] = []

    class Counting(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            posted.append([i["applicant_id"] for i in json.loads(request.content)["items"]])
            return await self.inner.handle_async_request(request)

    real = gateway_state.api.report
    late = {ids[0]}

    async def once_late(round_, applicant_id, message, **options):
        if applicant_id in late:
            late.discard(applicant_id)
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return await real(round_, applicant_id, message, **options)

    monkeypatch.setattr(gateway_state.api, "report", once_late)
    transport = Counting(httpx.ASGITransport(app=create_app(gateway_state)))
    signer = TEST_KEYRING.signers[VERIFIER]
    async with GatewayReports(
        "http://gateway.test", api_key(VERIFIER), Keyring([signer]), wait_most=0.1,
        transport=transport,
    ) as gateway:  # fmt: skip
        acks = await asyncio.gather(
            *(
                gateway.report(round_id, a, AdminReport(report_id=f"adm-{a}", reported_by=VERIFIER))
                for a in ids
            )
        )
        assert [a.applicant_id for a in acks] == ids
        assert {a.effect for a in acks} == {"administrative result recorded"}
        assert posted == [ids, [ids[0]]]
        for applicant in ids:
            assert (await accepted_updates(client, round_id, applicant)).count("report_admin") == 1

        with pytest.raises(UnknownError, match="no such applicant"):
            await gateway.report(
                round_id, "NOSUCHAPPLICANT1", AdminReport(report_id="adm-x", reported_by=VERIFIER)
            )
        early = SkdReport(report_id="skd-early", reported_by=CAT, twk=120, tiu=140, tkp=190)
        cat = Keyring([TEST_KEYRING.signers[CAT]])
        async with GatewayReports(
            "http://gateway.test", api_key(CAT), cat, transport=transport
        ) as by_cat:
            with pytest.raises(RefusedError, match="not skd"):
                await by_cat.report(round_id, ids[1], early)


async def test_operator_commands_go_through_the_gateway_too(
    client, keys, running_worker, gateway_state, tmp_path
):
    """A window closed, a DIS, the same close again (a repeat) and an extension the round refuses,
    each by the operator's CLI through the gateway, with no access to the cluster."""
    from tests.roundkit import OPERATOR

    round_id, ids = await _registered(
        client, keys, running_worker, tmp_path, "cmd-gw", [111], date(1996, 2, 15)
    )
    key = _private(tmp_path / "op.key.json", json.dumps(TEST_KEYRING.signers[OPERATOR].jwk()))
    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    data_dir = tmp_path / "operator-data"
    async with serving(gateway_state) as url:
        through = ["--as", OPERATOR, "--key", str(key), "--gateway", url]
        through += ["--api-key-file", str(op_key)]
        close = ["close-window", round_id, "registration", "--reason", "all in", *through]
        code, out, err = await _starter(*close, data_dir=data_dir)
        assert code == 0, (out, err)
        assert "close_window: registration closed early" in out
        again = await _starter(*close, data_dir=data_dir)
        assert again[0] == 0 and again[1] == out  # the first acknowledgement, time included
        dis = ["disqualify", round_id, ids[0], "--reason", "forged ijazah", *through]
        code, out, err = await _starter(*dis, data_dir=data_dir)
        assert code == 0, (out, err)
        assert f"disqualify {ids[0]}: disqualified" in out
        extend = ["extend-window", round_id, "registration", "2030-01-01T00:00:00+07:00"]
        code, out, err = await _starter(*extend, "--reason", "late", *through, data_dir=data_dir)
        assert code == 1, (out, err)
        assert "refused" in err
    assert not data_dir.exists()
    phase = await RecruitmentApi(client, "unused", keys.pseudonym_key).round_state(round_id)
    assert phase.phase != "registration"
