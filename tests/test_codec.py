"""The payload codec and its keys: what leaves the process is ciphertext only our key opens."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import CommandType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker._command_aware_visitor import CommandInfo, current_command_info

from domain.registration import Registration
from runtime.codec import (
    AesGcmCodec,
    PayloadDecryptionError,
    PayloadRefusedError,
    is_refused,
    key_id,
    refusal_reason,
)
from runtime.connection import data_converter
from runtime.keys import InvalidKeyError, Keys, load_or_create_keys
from runtime.settings import load_settings

NIK = "3174012501900007"


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_round_trip_restores_payload_and_metadata():
    codec = AesGcmCodec(os.urandom(32))
    original = [_payload(NIK), _payload("second")]

    assert await codec.decode(await codec.encode(original)) == original


async def test_encoded_payload_does_not_contain_the_plaintext():
    codec = AesGcmCodec(os.urandom(32))

    [encoded] = await codec.encode([_payload(NIK)])

    assert encoded.metadata["encoding"] == b"binary/encrypted"
    assert NIK.encode() not in encoded.SerializeToString()


async def test_wrong_key_cannot_decode():
    [encoded] = await AesGcmCodec(os.urandom(32)).encode([_payload(NIK)])

    with pytest.raises(PayloadDecryptionError, match="CASN_PAYLOAD_KEY"):
        await AesGcmCodec(os.urandom(32)).decode([encoded])


async def test_tampered_ciphertext_is_refused():
    codec = AesGcmCodec(os.urandom(32))
    [encoded] = await codec.encode([_payload(NIK)])
    tampered = Payload(
        metadata=encoded.metadata, data=encoded.data[:-1] + bytes([encoded.data[-1] ^ 1])
    )

    with pytest.raises(PayloadDecryptionError, match="altered"):
        await codec.decode([tampered])


async def test_previous_key_still_decodes_after_rotation():
    old, new = os.urandom(32), os.urandom(32)
    [encoded] = await AesGcmCodec(old).encode([_payload(NIK)])
    rotated = AesGcmCodec(new, previous_keys=[old], refuse_quietly=True)

    assert await rotated.decode([encoded]) == [_payload(NIK)]
    assert await rotated.with_context(WORKFLOW).decode([encoded]) == [_payload(NIK)]


async def test_unencrypted_and_truncated_payloads_are_refused():
    codec = AesGcmCodec(os.urandom(32))
    [encoded] = await codec.encode([_payload(NIK)])
    truncated = Payload(metadata=encoded.metadata, data=encoded.data[:20])

    with pytest.raises(PayloadDecryptionError, match="not encrypted .*json/plain"):
        await codec.decode([_payload("not secret")])
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await codec.decode([truncated])


WORKFLOW = WorkflowSerializationContext(namespace="default", workflow_id="wf")
ACTIVITY = ActivitySerializationContext(
    namespace="default",
    workflow_id="wf",
    workflow_type="W",
    activity_type="a",
    activity_id="1",
    activity_task_queue="q",
    is_local=False,
)


async def test_a_workflows_own_context_refuses_quietly_naming_the_reason():
    key, other = os.urandom(32), os.urandom(32)
    codec = AesGcmCodec(key, refuse_quietly=True)
    [ours] = await codec.encode([_payload(NIK)])
    [theirs] = await AesGcmCodec(other).encode([_payload(NIK)])
    tampered = Payload(metadata=ours.metadata, data=ours.data[:-1] + bytes([ours.data[-1] ^ 1]))
    truncated = Payload(metadata=ours.metadata, data=ours.data[:5])
    quiet = codec.with_context(WORKFLOW)

    decoded = await quiet.decode([ours, _payload("x"), theirs, tampered, truncated])

    assert decoded[0] == _payload(NIK)
    reasons = [refusal_reason(p) for p in decoded[1:]]
    assert all(is_refused(p) and not p.data for p in decoded[1:])
    assert "not encrypted" in reasons[0]
    assert key_id(other) in reasons[1] and "CASN_PAYLOAD_KEY" in reasons[1]
    assert "failed authentication" in reasons[2]
    assert "truncated" in reasons[3]
    assert NIK not in " ".join(reasons)


async def test_quiet_refusal_stays_strict_for_activities_commands_and_outside_workflows():
    codec = AesGcmCodec(os.urandom(32), refuse_quietly=True)
    plain = _payload("x")

    for strict in (codec, codec.with_context(ACTIVITY)):
        with pytest.raises(PayloadDecryptionError, match="not encrypted"):
            await strict.decode([plain])
    # While the worker decodes what answers one of the workflow's commands (an activity or child
    # workflow result), a refusal raises: those are our own payloads, and a missing key must show.
    token = current_command_info.set(
        CommandInfo(CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION, 1)
    )
    try:
        with pytest.raises(PayloadDecryptionError):
            await codec.with_context(WORKFLOW).decode([plain])
    finally:
        current_command_info.reset(token)


async def test_a_refused_payload_converts_to_no_value_with_its_reason():
    keys = Keys(payload_key=os.urandom(32), pseudonym_key=b"p" * 32, signing_key=b"s" * 32)
    converter = data_converter(keys)
    plain = _payload("x")
    reference = Payload(
        metadata={"encoding": b"json/plain", "__temporal_external_storage_reference": b"true"},
        data=b"{}",
    )

    with pytest.raises(PayloadRefusedError, match="not encrypted") as refused:
        await converter.with_context(WORKFLOW).decode([plain])
    assert isinstance(refused.value, ApplicationError) and not refused.value.non_retryable
    with pytest.raises(PayloadRefusedError, match="external-storage-reference"):
        await converter.with_context(WORKFLOW).decode([reference])
    with pytest.raises(PayloadDecryptionError, match="external-storage-reference"):
        await converter.decode([reference])  # the auditor's reading: strict
    with pytest.raises(PayloadDecryptionError, match="not encrypted"):
        await converter.decode([plain])


async def test_a_failure_under_an_unknown_key_says_so():
    writer = data_converter(Keys(payload_key=os.urandom(32), pseudonym_key=b"", signing_key=b""))
    reader = data_converter(Keys(payload_key=os.urandom(32), pseudonym_key=b"", signing_key=b""))
    failure = Failure()
    await writer.encode_failure(ApplicationError(f"refused for NIK {NIK}"), failure)

    error = await reader.with_context(WORKFLOW).decode_failure(failure)

    assert "unreadable" in str(error) and "CASN_PAYLOAD_KEY" in str(error)
    assert NIK not in str(error)


async def test_payload_from_before_a_rotation_decodes_with_the_rotated_settings(tmp_path):
    old, new = os.urandom(32), os.urandom(32)
    before = load_or_create_keys(load_settings(data_dir=tmp_path, payload_key=_b64(old)))
    after = load_or_create_keys(
        load_settings(
            data_dir=tmp_path,
            payload_key=_b64(new),
            payload_previous_keys=f"{_b64(os.urandom(32))}, {_b64(old)}",
        )
    )
    [written] = await data_converter(before).payload_codec.encode([_payload(NIK)])

    assert await data_converter(after).payload_codec.decode([written]) == [_payload(NIK)]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("{good},YWJj", "CASN_PAYLOAD_PREVIOUS_KEYS entry 2 of 2 holds 3 bytes"),
        ("not-base64!,{good}", "CASN_PAYLOAD_PREVIOUS_KEYS entry 1 of 2 is not valid base64"),
    ],
)
def test_a_bad_previous_payload_key_is_named_by_its_place(tmp_path, entries, message):
    settings = load_settings(
        data_dir=tmp_path, payload_previous_keys=entries.format(good=_b64(os.urandom(32)))
    )

    with pytest.raises(InvalidKeyError, match=message):
        load_or_create_keys(settings)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@workflow.defn(sandboxed=False)
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return text


@pytest.mark.stack
async def test_server_history_holds_no_plaintext(stack, client: Client):
    task_queue = f"codec-{uuid.uuid4()}"
    workflow_id = f"codec-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[EchoWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            EchoWorkflow.run, NIK, id=workflow_id, task_queue=task_queue
        )
    raw = await Client.connect(stack.temporal_address)  # no codec: what the server stores
    history = await raw.get_workflow_handle(workflow_id).fetch_history()

    stored = b"".join(event.SerializeToString() for event in history.events)

    assert result == NIK
    assert b"binary/encrypted" in stored
    assert NIK.encode() not in stored


def test_data_converter_uses_the_payload_key():
    keys = Keys(payload_key=os.urandom(32), pseudonym_key=b"p" * 32, signing_key=b"s" * 32)

    assert isinstance(data_converter(keys).payload_codec, AesGcmCodec)


def test_generated_keys_are_private_files_reused_by_the_next_process(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, payload_key=None, pseudonym_key=None, signing_key=None
    )

    first, second = load_or_create_keys(settings), load_or_create_keys(settings)

    assert first == second and len(first.payload_key) == 32
    assert len({first.payload_key, first.pseudonym_key, first.signing_key}) == 3
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in (tmp_path / "keys").iterdir())


def test_configured_key_wins_and_a_bad_one_is_named(tmp_path):
    key = os.urandom(32)
    settings = load_settings(data_dir=tmp_path, payload_key=base64.b64encode(key).decode())

    assert load_or_create_keys(settings).payload_key == key
    with pytest.raises(InvalidKeyError, match="CASN_PAYLOAD_KEY holds 3 bytes"):
        load_or_create_keys(load_settings(data_dir=tmp_path, payload_key="YWJj"))


async def test_the_converter_for_a_workflows_context_is_made_once_and_refuses_quietly():
    """The SDK asks for a context's converter for every activation; the project's converter keeps
    the one for the quiet codec instead of building a payload converter each time."""
    keys = Keys(payload_key=os.urandom(32), pseudonym_key=b"", signing_key=b"")
    converter = data_converter(keys)
    in_workflow = converter.with_context(WORKFLOW)
    other_workflow = WorkflowSerializationContext(namespace="default", workflow_id="r/applicant/B")

    assert in_workflow is not converter
    assert converter.with_context(WORKFLOW) is in_workflow
    assert converter.with_context(other_workflow) is in_workflow  # the codec is all that differs
    assert in_workflow.with_context(other_workflow) is in_workflow
    assert converter.with_context(ACTIVITY) is converter  # strict, as before
    assert in_workflow.payload_converter is converter.payload_converter

    [foreign] = await AesGcmCodec(os.urandom(32)).encode([_payload(NIK)])
    [quiet] = await in_workflow.payload_codec.decode([foreign])
    assert is_refused(quiet)
    with pytest.raises(PayloadDecryptionError):
        await converter.payload_codec.decode([foreign])


async def test_a_start_recorded_before_a_rule_on_outside_input_still_decodes():
    # A journey started before names had to be printable text: a worker that reads its start
    # again (after a restart, or in a replay) must not fail every task from then on. What comes
    # from outside (the portal, the API, a file) is still refused (tests/domain/test_registration).
    keys = Keys(payload_key=os.urandom(32), pseudonym_key=b"p" * 32, signing_key=b"s" * 32)
    converter = data_converter(keys)
    recorded = {
        "nik": "3273011705980001",
        "name": "Budi\tSantoso",
        "birth_date": "1998-05-17",
        "gender": "L",
        "education_level": "S1",
        "major": "Teknik Informatika",
        "gpa": 3.2,
        "formasi_code": "F1",
    }
    with pytest.raises(ValidationError, match="not printable"):
        Registration.model_validate(recorded)
    payloads = await converter.with_context(WORKFLOW).encode([recorded])
    [decoded] = await converter.with_context(WORKFLOW).decode(payloads, [Registration])
    assert decoded.name == "Budi\tSantoso"
