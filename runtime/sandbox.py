"""The workflow sandbox, without its per-payload overhead.

temporalio's sandboxed instance (1.35.0) enters the sandbox by `exec` of a short source string,
under its restricted importer and builtins: once per activation, and twice more for every
payload it converts, only to ask the instance inside for the payload's serialization context
and external-store context. The profile of a journeys run put about a fifth of the worker's CPU
there. This runner changes two things and nothing else:

- each entry string is compiled once (they are a handful of constants) instead of on every
  `exec`;
- the two context lookups call the instance inside directly. They are the SDK's own bookkeeping
  (workflow info and pending commands), run no workflow code and import nothing, so they need
  neither the restricted importer nor the sandbox's builtins.

Activations still run inside the sandbox with every restriction (imports, builtins, the
determinism checks): workflow code sees no difference.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from types import CodeType
from typing import Any, TypeVar

from google.protobuf.message import Message
from temporalio.bridge.proto.workflow_activation import InitializeWorkflow, WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
)
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker._interceptor import ExecuteWorkflowInput
from temporalio.worker._workflow_instance import _WorkflowInstanceImpl
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance


@lru_cache(maxsize=256)
def _compiled(source: str) -> CodeType:
    return compile(source, "<temporal-sandbox>", "exec")


class _CompiledInstance(_Instance):
    def _run_code(self, code: str | CodeType, **extra_globals: Any) -> None:  # type: ignore[override]
        super()._run_code(_compiled(code) if isinstance(code, str) else code, **extra_globals)  # type: ignore[arg-type]

    def _inside(self) -> Any:
        return self.globals_and_locals["__temporal_in_sandbox"]

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._inside().get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._inside().get_external_store_context(command_info)


class CompiledSandboxRunner(SandboxedWorkflowRunner):
    """SandboxedWorkflowRunner whose instances compile the sandbox's entry code once per process."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _CompiledInstance(_detached(det), self.runner_class, self.restrictions)


M = TypeVar("M", bound=Message)


def _copy(message: M) -> M:
    out = type(message)()
    out.CopyFrom(message)
    return out


def _detached(det: WorkflowInstanceDetails) -> WorkflowInstanceDetails:
    """The details with their protobuf parts copied out of the first activation.

    The SDK hands the instance the headers, memo and last completion result as parts of that
    activation's message, and a part keeps the whole message's memory (its upb arena) alive for as
    long as the workflow stays in the sticky cache. Copies hold only themselves.
    """
    info = dataclasses.replace(
        det.info,
        headers={k: _copy(v) for k, v in det.info.headers.items()},
        raw_memo={k: _copy(v) for k, v in det.info.raw_memo.items()},
    )
    return dataclasses.replace(
        det,
        info=info,
        last_completion_result=_copy(det.last_completion_result),
        last_failure=_copy(det.last_failure) if det.last_failure is not None else None,
    )


class _DetachedWorkflowInstance(_WorkflowInstanceImpl):
    """The SDK's workflow instance, holding no part of an activation once it has been handled.

    The instance (temporalio 1.35.0) keeps, between activations, parts of protobuf messages that
    are not its own: the start's headers (a part of the first activation, which also holds the
    start's input and whatever came with it), the deployment version and the internal flags of the
    last activation, and the last completion with its commands. With upb each part keeps the whole
    message's memory alive, outside the Python heap, for as long as the workflow is cached. Copies
    of the parts, and an empty completion, hold only themselves (bench `cache-memory`)."""

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        completion = super().activate(act)
        version = self._deployment_version_for_current_task
        if version is not None:
            self._deployment_version_for_current_task = _copy(version)
        self._current_internal_flags = list(self._current_internal_flags)
        # A new activation starts with a new completion; the caller holds this one until sent.
        self._current_completion = WorkflowActivationCompletion()
        return completion

    def _make_workflow_input(self, init_job: InitializeWorkflow) -> ExecuteWorkflowInput:
        made = super()._make_workflow_input(init_job)
        return dataclasses.replace(made, headers={k: _copy(v) for k, v in made.headers.items()})


class DetachedInstanceRunner(UnsandboxedWorkflowRunner):
    """Makes `_DetachedWorkflowInstance`s: the runner the sandbox runs inside itself."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _DetachedWorkflowInstance(det)  # type: ignore[abstract]


def worker_runner() -> CompiledSandboxRunner:
    """The runner the project's worker uses (and the benchmarks that measure it).

    The sandbox still forbids I/O, clocks and randomness in workflow code, but every module is
    passed through instead of re-imported for each new workflow instance: the workflow modules
    hold no module-level state, and re-importing them cost ~11% of a journey's worker time.
    """
    return CompiledSandboxRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules(),
        runner_class=DetachedInstanceRunner,
    )
