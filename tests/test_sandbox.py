"""The worker's sandbox runner (runtime/sandbox.py) keeps the sandbox and drops only its overhead.

Runs on Temporal's time-skipping test server with the project's data converter (the AES-GCM
codec, so every payload goes through the context lookups the runner short-cuts).
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections import Counter
from datetime import timedelta

from google.protobuf.message import Message
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from runtime.connection import data_converter
from runtime.sandbox import CompiledSandboxRunner, _compiled, worker_runner


@activity.defn(name="sandbox_echo")
async def echo(text: str) -> str:
    return f"echo:{text}"


@workflow.defn(sandboxed=True)
class SandboxProbe:
    def __init__(self) -> None:
        self.told: list[str] = []

    @workflow.run
    async def run(self, text: str) -> list[str]:
        import datetime as dt

        try:
            dt.datetime.now()
            clock = "the wall clock was readable"
        except Exception as exc:  # the sandbox's RestrictedWorkflowAccessError
            clock = type(exc).__name__
        answer = await workflow.execute_activity(
            "sandbox_echo", text, result_type=str, start_to_close_timeout=timedelta(seconds=10)
        )
        local = await workflow.execute_local_activity(
            "sandbox_echo", "local", result_type=str, start_to_close_timeout=timedelta(seconds=10)
        )
        await workflow.wait_condition(lambda: bool(self.told))
        return [clock, answer, local, *self.told]

    @workflow.signal
    def tell(self, text: str) -> None:
        self.told.append(text)


@workflow.defn(sandboxed=True)
class SandboxBreaker:
    @workflow.run
    async def run(self) -> str:
        raise RuntimeError("a workflow failure still travels through the failure converter")


async def test_compiled_runner_keeps_restrictions_and_round_trips_payloads(test_server_path, keys):
    runner = worker_runner()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path), data_converter=data_converter(keys)
    )
    async with env:
        queue = f"sandbox-{uuid.uuid4().hex[:8]}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[SandboxProbe, SandboxBreaker],
            activities=[echo],
            workflow_runner=runner,
            workflow_failure_exception_types=[RuntimeError],
        ):
            hits_before = _compiled.cache_info().hits
            handle = await env.client.start_workflow(
                SandboxProbe.run, "secret", id=f"probe-{uuid.uuid4().hex[:6]}", task_queue=queue
            )
            await handle.signal(SandboxProbe.tell, "signal payload")
            result = await handle.result()
            assert result == [
                "RestrictedWorkflowAccessError",
                "echo:secret",
                "echo:local",
                "signal payload",
            ]
            # Entering the sandbox reused compiled code rather than compiling per activation.
            assert _compiled.cache_info().hits > hits_before
            try:
                await env.client.execute_workflow(
                    SandboxBreaker.run, id=f"breaker-{uuid.uuid4().hex[:6]}", task_queue=queue
                )
            except WorkflowFailureError as exc:
                assert "still travels" in str(exc.cause)
            else:
                raise AssertionError("the failing workflow completed")
            # The payloads the server holds are encrypted: the input text is not readable there.
            history = await handle.fetch_history()
            raw = b"".join(e.SerializeToString() for e in history.events)
            assert b"secret" not in raw


# What a cached workflow must not keep once its activation is handled: with upb, any part of one of
# these keeps the whole message (the start's input, every job's payloads) in memory.
ACTIVATION_MESSAGES = (
    "coresdk.workflow_activation.WorkflowActivation",
    "coresdk.workflow_activation.WorkflowActivationJob",
    "coresdk.workflow_activation.InitializeWorkflow",
)


PROBES = 3


async def _held_while_cached(test_server_path, keys, runner) -> Counter:
    """Protobuf messages alive while PROBES SandboxProbes wait in the worker's cache, each after its
    start, an activity, a local activity, each its own activation."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path), data_converter=data_converter(keys)
    )
    async with env:
        queue = f"sandbox-{uuid.uuid4().hex[:8]}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[SandboxProbe],
            activities=[echo],
            workflow_runner=runner,
        ):
            handles = [
                await env.client.start_workflow(
                    SandboxProbe.run,
                    "x" * 4000,
                    id=f"rest-{uuid.uuid4().hex[:6]}",
                    task_queue=queue,
                )
                for _ in range(PROBES)
            ]
            for handle in handles:
                await _at_rest(handle)
            # The server may record a task's completion while the worker's loop is still done with
            # it (a run beside the suite once counted two activations): counted again, briefly,
            # until no more than the one the loop keeps is left. What every cached probe keeps
            # stays in every count. Another worker of this process (the session stack's, still
            # taking an earlier module's flood of signals: 10 activations counted once, 12-07)
            # holds activations of its own, so the count also waits, up to 10 s in all, until no
            # activation of a run other than the probes' is alive.
            ours = {handle.result_run_id for handle in handles}
            activation = "coresdk.workflow_activation.WorkflowActivation"
            for tries in range(100):
                gc.collect()
                messages = [o for o in gc.get_objects() if isinstance(o, Message)]
                held = Counter(type(o).DESCRIPTOR.full_name for o in messages)
                others = sum(
                    1
                    for o in messages
                    if type(o).DESCRIPTOR.full_name == activation and o.run_id not in ours
                )
                # The probes' own count settles within 2 s (the SDK's instance keeps one each).
                if not others and (held[activation] <= 1 or tries >= 19):
                    break
                await asyncio.sleep(0.1)
            for handle in handles:
                await handle.terminate("measured")
    return held


async def _at_rest(handle) -> None:
    """Until the probe waits for its signal: its local activity done, nothing pending."""
    for _ in range(200):
        raw = (await handle.describe()).raw_description
        history = await handle.fetch_history()
        done = any(e.HasField("marker_recorded_event_attributes") for e in history.events)
        if done and not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the probe never came to rest")


async def test_cached_workflows_hold_no_part_of_their_activations(test_server_path, keys):
    held = await _held_while_cached(test_server_path, keys, worker_runner())
    # The SDK's worker loop keeps the last activation it handled (one, however many are cached);
    # no cached workflow keeps one of its own, nor any job or start of one.
    assert held["coresdk.workflow_activation.WorkflowActivation"] <= 1
    assert held["coresdk.workflow_activation.WorkflowActivationJob"] == 0
    assert held["coresdk.workflow_activation.InitializeWorkflow"] == 0
    # The same probes on the SDK's own instance each keep their first activation (through the
    # start's headers): what this census sees if the worker's runner loses its inner runner.
    stock = CompiledSandboxRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    )
    held = await _held_while_cached(test_server_path, keys, stock)
    assert held["coresdk.workflow_activation.InitializeWorkflow"] >= PROBES
