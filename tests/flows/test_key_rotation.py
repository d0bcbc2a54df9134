"""Payload key rotation on the real stack: histories written under the old key stay readable by
workers and auditors that hold it in CASN_PAYLOAD_PREVIOUS_KEYS, and without it the auditor is told
which variable to check."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid

import pytest
from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from auditing.history import AuditError, messages
from runtime.codec import KEY_ID, key_id
from runtime.connection import connect, data_converter
from runtime.keys import load_or_create_keys

pytestmark = pytest.mark.stack

KEY_A, KEY_B = os.urandom(32), os.urandom(32)


@workflow.defn(name="RotationProbe", sandboxed=False)
class RotationProbe:
    """Collects signalled items until told to finish; its state lives only in its history."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self, first: str) -> list[str]:
        await workflow.wait_condition(lambda: self.finished)
        return [first, *self.items]

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


def _keys(stack_settings, current: bytes, *previous: bytes):
    """The keys a process loads from CASN_PAYLOAD_KEY and CASN_PAYLOAD_PREVIOUS_KEYS."""
    settings = stack_settings.model_copy(
        update={
            "payload_key": base64.b64encode(current).decode(),
            "payload_previous_keys": ",".join(base64.b64encode(k).decode() for k in previous),
        }
    )
    return settings, load_or_create_keys(settings)


def _worker(client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RotationProbe],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=0,  # every task replays the history from the start
    )


async def test_histories_written_under_an_old_key_stay_readable_after_rotation(
    stack, stack_settings
):
    task_queue = f"rotation-{uuid.uuid4().hex[:8]}"
    workflow_id = f"rotation/{uuid.uuid4().hex[:8]}"
    settings_a, keys_a = _keys(stack_settings, KEY_A)
    client_a = await connect(settings_a, stack, keys_a)
    async with _worker(client_a, task_queue):
        handle = await client_a.start_workflow(
            RotationProbe.run, "before", id=workflow_id, task_queue=task_queue
        )
        await handle.signal(RotationProbe.add, "under A")
        await handle.query("__stack_trace")  # the worker has taken the signal

    # Rotated: B encrypts, A only decrypts.
    settings_b, keys_b = _keys(stack_settings, KEY_B, KEY_A)
    client_b = await connect(settings_b, stack, keys_b)
    async with _worker(client_b, task_queue):
        handle = client_b.get_workflow_handle(workflow_id)
        await handle.signal(RotationProbe.add, "under B")
        await handle.signal(RotationProbe.finish)
        result = await asyncio.wait_for(handle.result(), 30)
    history = await handle.fetch_history()
    read = await messages(history, data_converter(keys_b))

    _, keys_b_alone = _keys(stack_settings, KEY_B)
    with pytest.raises(AuditError) as unreadable:
        await messages(history, data_converter(keys_b_alone))

    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata[KEY_ID].decode() == key_id(KEY_A)  # the history spans both keys
    assert result == ["before", "under A", "under B"]
    assert [(m.kind, m.content) for m in read] == [
        ("start", "before"),
        ("signal", "under A"),
        ("signal", "under B"),
        ("signal", None),
    ]
    message = str(unreadable.value)
    assert f"encrypted with key id '{key_id(KEY_A)}'" in message
    assert "CASN_PAYLOAD_PREVIOUS_KEYS" in message
