"""Connect to Temporal with the project's data converter (pydantic + encryption)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from runtime.codec import AesGcmCodec
from runtime.embedded import StackInfo
from runtime.keys import Keys
from runtime.settings import Settings


def data_converter(keys: Keys) -> DataConverter:
    """Pydantic payloads, encrypted with the payload key before they leave the process, and
    decrypted with it or with a key of an earlier rotation (CASN_PAYLOAD_PREVIOUS_KEYS).

    Failure messages and stack traces are encoded into a payload too (and so encrypted): a
    refusal or an error can name a report's content, and the server stores failures in clear.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(keys.payload_key, previous_keys=keys.previous_payload_keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings, stack: StackInfo, keys: Keys) -> Client:
    """Connect to the stack's Temporal frontend in the configured namespace."""
    return await Client.connect(
        stack.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keys),
    )
