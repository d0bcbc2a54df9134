"""A round records the ids of the keys it was created with; a client holding other keys is
refused before it registers or sends anything (issue 12). Real dev server and worker."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import logging
import os
import uuid
from pathlib import Path

import pytest
import structlog
import tomli_w
from rich.console import Console
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from client.api import RecruitmentApi, RefusedError, applicant_id_for
from client.csvio import REGISTRATION_COLUMNS
from domain.messages import AdminReport, CloseWindow, RoundStart
from runtime.attributes import RECRUITMENT_STAGE, ROUND_ID, WORKFLOW_KIND
from runtime.connection import connect
from runtime.keys import Keys, payload_key_id, pseudonym_key_id
from starter import Context, import_registrations
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from workflows.ids import journey_workflow_id, round_workflow_id
from workflows.round import RecruitmentRound

WINDOWS = {
    "registration": (-60, 600),
    "administration": (600, 610),
    "skd": (610, 620),
    "skb": (620, 630),
    "filing": (630, 640),
    "latsar": (640, 650),
}


def _api(client, settings, pseudonym_key: bytes) -> RecruitmentApi:
    return RecruitmentApi(client, settings.task_queue, pseudonym_key, keyring=TEST_KEYRING)


def _round_file(tmp_path: Path):
    config = compressed_round(f"keys-{uuid.uuid4().hex[:6]}", [formasi("F1", 1)], WINDOWS)
    path = tmp_path / f"{config.round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    return config, path


async def _created(api: RecruitmentApi, tmp_path: Path):
    config, path = _round_file(tmp_path)
    _, created = await api.create_round(path, OPERATOR)
    assert created
    return config, path


async def _journey_exists(client, round_id: str, applicant_id: str) -> bool:
    try:
        await client.get_workflow_handle(journey_workflow_id(round_id, applicant_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _round_start(client, round_id: str) -> RoundStart:
    history = await client.get_workflow_handle(round_workflow_id(round_id)).fetch_history()
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [start] = await client.data_converter.decode(payloads, [RoundStart])
    return start


def _csv(path: Path, serials: range) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(REGISTRATION_COLUMNS.required)
        for serial in serials:
            reg = registration(serial, "F1").model_dump(mode="json")
            writer.writerow([reg[c] for c in REGISTRATION_COLUMNS.required])
    return path


async def test_a_round_records_the_ids_of_the_keys_it_was_created_with(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    config, _ = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)

    start = await _round_start(client, config.round_id)

    assert start.key_ids == {
        "payload": payload_key_id(keys.payload_key),
        "pseudonym": pseudonym_key_id(keys.pseudonym_key),
    }


async def test_a_client_with_another_pseudonym_key_is_refused_before_registering_anyone(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    config, path = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)
    stranger_key = os.urandom(32)
    stranger = _api(client, settings, stranger_key)
    ctx = Context(stranger, stack.database_url, Console(file=io.StringIO(), width=200))
    file = _csv(tmp_path / "sscasn.csv", range(1, 6))

    with pytest.raises(RefusedError) as refused:
        await import_registrations(ctx, path, file, tmp_path / "errors.csv")
    with pytest.raises(RefusedError):
        await stranger.register(config, registration(1, "F1"), "sscasn")

    assert str(refused.value).startswith(
        f"this client's pseudonym key (key id {pseudonym_key_id(stranger_key)}) is not the one "
        f"round {config.round_id} was created with (key id {pseudonym_key_id(keys.pseudonym_key)})"
    )
    assert str(refused.value).endswith("Set CASN_PSEUDONYM_KEY to the round's key")
    for serial in range(1, 6):
        nik = registration(serial, "F1").nik
        for key in (stranger_key, keys.pseudonym_key):
            applicant = applicant_id_for(key, config.round_id, nik)
            assert not await _journey_exists(client, config.round_id, applicant)
    assert not (tmp_path / "errors.csv").exists()


async def test_a_client_with_the_rounds_keys_registers(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    config, path = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)
    same = _api(client, settings, keys.pseudonym_key)  # another client, the same keys
    ctx = Context(same, stack.database_url, Console(file=io.StringIO(), width=200))

    summary = await import_registrations(
        ctx, path, _csv(tmp_path / "sscasn.csv", range(1, 4)), tmp_path / "errors.csv"
    )

    assert (summary.counts["registered"], summary.exit_code) == (3, 0)


async def test_creating_the_round_again_with_another_pseudonym_key_is_refused(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    _, path = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)

    with pytest.raises(RefusedError, match="pseudonym key .* is not the one round"):
        await _api(client, settings, os.urandom(32)).create_round(path, OPERATOR)


async def test_reports_and_commands_from_a_client_with_another_pseudonym_key_are_refused(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    config, _ = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)
    stranger = _api(client, settings, os.urandom(32))
    report = AdminReport(report_id="adm-1", reported_by="bkpsdm-verifikator")
    command = CloseWindow(
        report_id="close-1", reported_by=OPERATOR, window="registration", reason="test"
    )

    with pytest.raises(RefusedError, match="pseudonym key .* is not the one round"):
        await stranger.report(config.round_id, "ANYONE", report)
    with pytest.raises(RefusedError, match="pseudonym key .* is not the one round"):
        await stranger.command(config.round_id, command)
    state = await _api(client, settings, keys.pseudonym_key).round_state(config.round_id)

    assert "registration" not in state.closed


async def test_a_client_with_another_payload_key_is_refused_naming_the_payload_key(
    client, keys, running_worker, stack, stack_settings, tmp_path
):
    settings, _ = running_worker
    config, _ = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)
    other_payload = os.urandom(32)
    elsewhere = await connect(
        stack_settings,
        stack,
        Keys(payload_key=other_payload, pseudonym_key=keys.pseudonym_key, signing_key=None),
    )
    stranger = _api(elsewhere, settings, keys.pseudonym_key)

    with pytest.raises(RefusedError) as refused:
        await stranger.register(config, registration(1, "F1"), "sscasn")

    assert str(refused.value).startswith(
        f"this client's payload key (key id {payload_key_id(other_payload)}) is not the one "
        f"round {config.round_id} was created with (key id {payload_key_id(keys.payload_key)})"
    )
    assert "Set CASN_PAYLOAD_KEY to the round's key" in str(refused.value)
    applicant = applicant_id_for(keys.pseudonym_key, config.round_id, registration(1, "F1").nik)
    assert not await _journey_exists(client, config.round_id, applicant)


async def test_a_round_created_before_key_ids_were_recorded_is_not_checked(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    config, path = _round_file(tmp_path)
    await client.start_workflow(  # what create_round sent before: no key_ids
        RecruitmentRound.run,
        RoundStart(
            config_toml=path.read_text(encoding="utf-8"),
            config=config.model_dump(mode="json"),
            created_by=OPERATOR,
        ),
        id=round_workflow_id(config.round_id),
        task_queue=settings.task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(ROUND_ID, config.round_id),
                SearchAttributePair(WORKFLOW_KIND, "round"),
                SearchAttributePair(RECRUITMENT_STAGE, "registration"),
            ]
        ),
    )

    result = await _api(client, settings, os.urandom(32)).register(
        config, registration(1, "F1"), "sscasn"
    )

    assert result.status == "registered", result.refusals


class CountingApi(RecruitmentApi):
    """Counts how often the client asks the server for a round's keys."""

    asked = 0

    async def _round_key_problem(self, round_id: str) -> str | None:
        self.asked += 1
        return await super()._round_key_problem(round_id)


async def test_a_client_asks_for_a_rounds_keys_once_however_many_it_registers(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    config, _ = await _created(_api(client, settings, keys.pseudonym_key), tmp_path)
    api = CountingApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)

    results = await asyncio.gather(
        *(api.register(config, registration(serial, "F1"), "sscasn") for serial in range(1, 9))
    )

    assert [r.status for r in results] == ["registered"] * 8
    assert api.asked == 1


async def test_a_round_that_does_not_exist_is_refused_naming_it(client, keys, running_worker):
    settings, _ = running_worker
    api = _api(client, settings, keys.pseudonym_key)

    with pytest.raises(RefusedError, match="round nowhere-1 does not exist; create it first"):
        await api.report("nowhere-1", "ANYONE", AdminReport(report_id="a", reported_by="x"))


def test_starter_in_a_deployment_without_the_pseudonym_key_exits_2_naming_it(
    stack, keys, tmp_path, monkeypatch
):
    """The session's stack stands for a deployment: its address and database are given."""
    from typer.testing import CliRunner

    from starter import cli

    root = logging.getLogger()  # open_app configures logging for the command; put it back after
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    monkeypatch.setattr(root, "level", root.level)
    saved = structlog.get_config()
    for name, value in {
        "CASN_TEMPORAL_ADDRESS": stack.temporal_address,
        "CASN_DATABASE_URL": stack.database_url,
        "CASN_DATA_DIR": str(tmp_path),
        "CASN_LOG_FORMAT": "json",
        "CASN_PAYLOAD_KEY": base64.b64encode(keys.payload_key).decode(),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CASN_PSEUDONYM_KEY", raising=False)

    try:
        result = CliRunner().invoke(cli, ["status", "R1"])
    finally:
        structlog.configure(**saved)

    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "bad configuration: CASN_PSEUDONYM_KEY is not set." in said
    assert not (tmp_path / "keys").exists()
