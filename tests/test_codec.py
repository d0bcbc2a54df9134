"""The payload codec and its keys: what leaves the process is ciphertext only our key opens."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from runtime.codec import AesGcmCodec, PayloadDecryptionError
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
    tampered = Payload(metadata=encoded.metadata, data=encoded.data[:-1] + b"\x00")

    with pytest.raises(PayloadDecryptionError, match="altered"):
        await codec.decode([tampered])


async def test_previous_key_still_decodes_after_rotation():
    old, new = os.urandom(32), os.urandom(32)
    [encoded] = await AesGcmCodec(old).encode([_payload(NIK)])

    assert await AesGcmCodec(new, previous_keys=[old]).decode([encoded]) == [_payload(NIK)]


async def test_unencrypted_payloads_pass_through_decode():
    plain = _payload("not secret")

    assert await AesGcmCodec(os.urandom(32)).decode([plain]) == [plain]


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
