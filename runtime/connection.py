"""Connect to Temporal with the project's data converter (pydantic + encryption)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadConverter,
)

# Private to the SDK, and exactly what it checks before any codec runs (test_poison pins it).
from temporalio.converter._data_converter import _has_reference_marker, _is_reference_payload

from runtime.codec import AesGcmCodec, RefusedPayloadConverter, is_refused, refusal_reason
from runtime.embedded import StackInfo
from runtime.keys import Keys
from runtime.settings import Settings
from runtime.telemetry import tracing_interceptors
from runtime.transport import temporal_tls

NOT_A_REFERENCE = b"external-storage-reference"  # what the codec is shown instead of one


class ProjectPayloadConverter(PydanticPayloadConverter):
    """Pydantic JSON; a payload the codec refused converts to no value (PayloadRefusedError)."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefusedPayloadConverter())


class ProjectFailureConverter(DefaultFailureConverterWithEncodedAttributes):
    """Failure messages and stack traces travel encrypted; one the codec refused says why (the SDK
    would show only 'Encoded failure')."""

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter) -> BaseException:
        if failure.HasField("encoded_attributes") and is_refused(failure.encoded_attributes):
            readable = Failure()
            readable.CopyFrom(failure)
            readable.ClearField("encoded_attributes")
            readable.message = f"(the failure's message is unreadable: {refusal_reason(failure.encoded_attributes)})"
            failure = readable
        return super().from_failure(failure, payload_converter)


@dataclasses.dataclass(frozen=True)
class ProjectDataConverter(DataConverter):
    """The SDK checks for external-storage references before any codec runs, and a reference
    fails a workflow task when no external storage is configured (we configure none). So anything
    that claims to be one loses the claim and goes to the codec, which refuses it as it refuses
    every payload we did not encrypt."""

    async def _decode_reference_payload_sequence(
        self, payloads: Sequence[Payload]
    ) -> list[Payload]:
        if self.external_storage is None:
            payloads = [
                Payload(metadata={"encoding": NOT_A_REFERENCE})
                if _has_reference_marker(p) or _is_reference_payload(p)
                else p
                for p in payloads
            ]
        return await super()._decode_reference_payload_sequence(payloads)


def data_converter(keys: Keys) -> DataConverter:
    """Pydantic payloads, encrypted with the payload key before they leave the process, and
    decrypted with it or with a key of an earlier rotation (CASN_PAYLOAD_PREVIOUS_KEYS).

    A payload not encrypted with one of those keys is refused (runtime/codec.py): quietly where
    outsiders can write (a workflow's signals, updates and start input, so that none fails a
    workflow task), by raising everywhere else. The same converter serves workers, replayers and
    clients: a client reading an unreadable result gets PayloadRefusedError with the reason.

    Failure messages and stack traces are encoded into a payload too (and so encrypted): a
    refusal or an error can name a report's content, and the server stores failures in clear.
    """
    return ProjectDataConverter(
        payload_converter_class=ProjectPayloadConverter,
        payload_codec=AesGcmCodec(
            keys.payload_key, previous_keys=keys.previous_payload_keys, refuse_quietly=True
        ),
        failure_converter_class=ProjectFailureConverter,
    )


async def connect(settings: Settings, stack: StackInfo, keys: Keys) -> Client:
    """Connect to the stack's Temporal frontend in the configured namespace."""
    return await Client.connect(
        stack.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keys),
        tls=temporal_tls(settings),
        interceptors=tracing_interceptors(settings),  # CASN_TRACING (runtime/telemetry.py)
    )
