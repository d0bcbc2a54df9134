"""Connect to Temporal with the project's data converter (pydantic + encryption)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import (
    PydanticJSONPlainPayloadConverter,
    PydanticPayloadConverter,
)
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadConverter,
    SerializationContext,
    WithSerializationContext,
)

# Private to the SDK, and exactly what it checks before any codec runs (test_poison pins it).
from temporalio.converter._data_converter import _has_reference_marker, _is_reference_payload

from domain.config import Formasi
from domain.messages import JourneyRules
from domain.registration import RECORDED
from runtime.codec import AesGcmCodec, RefusedPayloadConverter, is_refused, refusal_reason
from runtime.embedded import StackInfo
from runtime.keys import Keys
from runtime.settings import Settings
from runtime.telemetry import tracing_interceptors
from runtime.transport import temporal_tls

NOT_A_REFERENCE = b"external-storage-reference"  # what the codec is shown instead of one


# The pydantic TypeAdapters of every payload converter in the process: the SDK makes a converter
# for each workflow instance, each with a cache of its own that every new instance filled again.
# An adapter only validates (no state, safe across threads), so one cache serves them all.
_TYPE_ADAPTERS = functools.lru_cache(maxsize=1024)(TypeAdapter)

READ_AS_RECORDED = {RECORDED: True}

# Parts of a decoded message that are the same in every journey of a formasi: the round's rules
# and the formasi. Each journey's start input and its read of the round carried a copy of its own,
# about 26 KB of Python objects that stayed for as long as the journey was in the worker's sticky
# cache (bench cache-memory). Equal parts, by content, are now one object in the process. They are
# frozen models, so no journey can change what another one sees.
SHARED_PARTS: tuple[type[BaseModel], ...] = (JourneyRules, Formasi)
_SHARED_LIMIT = 4096  # distinct parts kept; a national round has a few thousand formasi
_shared: dict[tuple[type, bytes], BaseModel] = {}


def _shared_part(part: BaseModel) -> BaseModel:
    """The process's one object equal to `part` (by its JSON), or `part`, which becomes it."""
    key = (type(part), hashlib.sha256(part.__pydantic_serializer__.to_json(part)).digest())
    known = _shared.get(key)
    if known is not None:
        return known
    if len(_shared) >= _SHARED_LIMIT:
        _shared.clear()
    _shared[key] = part
    return part


def share_parts(value: Any) -> Any:
    """`value` with its rules and formasi replaced by the process's equal objects (a frozen model's
    fields, one level down); anything else as it is."""
    if not isinstance(value, BaseModel) or not value.model_config.get("frozen"):
        return value
    updates = {}
    for name in type(value).model_fields:
        part = getattr(value, name, None)
        if isinstance(part, SHARED_PARTS):
            shared = _shared_part(part)
            if shared is not part:
                updates[name] = shared
    return value.model_copy(update=updates) if updates else value


class RecordedJSONConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON read as recorded: with the validation context `domain.registration.RECORDED`,
    so that a rule added for what comes from outside does not refuse what a running workflow was
    started with (a start decoded again after a worker restart, or in a replay)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = type_hint if type_hint is not None else Any
        try:
            adapter = self._type_adapter(hint)
        except TypeError:  # an unhashable hint: not cached (a TypeError building it raises again)
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data, context=READ_AS_RECORDED)


class ProjectPayloadConverter(PydanticPayloadConverter):
    """Pydantic JSON; a payload the codec refused converts to no value (PayloadRefusedError).

    Decoded messages share their rules and formasi with every equal one in the process."""

    def __init__(self) -> None:
        super().__init__(max_cached_type_adapters=0)  # the shared cache below replaces its own
        converters = [
            RecordedJSONConverter() if isinstance(c, PydanticJSONPlainPayloadConverter) else c
            for c in self.converters.values()
        ]
        for converter in converters:
            if isinstance(converter, RecordedJSONConverter):
                converter._type_adapter = _TYPE_ADAPTERS
        self._set_converters(*converters, RefusedPayloadConverter())

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        return [share_parts(v) for v in super().from_payloads(payloads, type_hints)]


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

    def with_context(self, context: SerializationContext) -> ProjectDataConverter:
        """The converter for `context`, made once per codec it can differ by.

        Only the codec depends on the context here (its quiet twin in a workflow's context,
        runtime/codec.py). The SDK asks for a context's converter over and over (for each
        activation's payloads and each command's), and its clone of a frozen data converter runs
        `__post_init__`, which builds a whole new payload converter every time: a tenth of the
        worker's activation handling at 150 reports/s (py-spy, BENCHMARKS.md). The clone for the
        quiet codec is therefore kept; any other difference takes the SDK's path."""
        codec = self.payload_codec
        if not isinstance(codec, WithSerializationContext) or self.external_storage is not None:
            return super().with_context(context)
        for part in (self.payload_converter, self.failure_converter):
            if (
                isinstance(part, WithSerializationContext)
                and part.with_context(context) is not part
            ):
                return super().with_context(context)
        twin = codec.with_context(context)
        if twin is codec:
            return self
        made: dict[int, ProjectDataConverter] = self.__dict__.setdefault("_made_for_codec", {})
        if id(twin) not in made:  # the clone holds the twin: its id stays its own
            made[id(twin)] = super().with_context(context)
        return made[id(twin)]


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
