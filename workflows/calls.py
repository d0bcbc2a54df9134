"""Typed calls from workflow code: activities and other workflows by their protocol reference."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.protocol import Activity

In = TypeVar("In")
Out = TypeVar("Out")


def _result_type(ref: Activity[Any, Any]) -> dict[str, Any]:
    return {} if ref.output is type(None) else {"result_type": ref.output}


async def run_activity(ref: Activity[In, Out], arg: In, **options: Any) -> Out:
    """Run an activity (three history events and a task-queue round trip)."""
    return await workflow.execute_activity(ref.name, arg, **_result_type(ref), **options)


async def run_local_activity(ref: Activity[In, Out], arg: In, **options: Any) -> Out:
    """Run a local activity (one marker event, in the same workflow task)."""
    return await workflow.execute_local_activity(ref.name, arg, **_result_type(ref), **options)


def workflow_handle(workflow_id: str) -> workflow.ExternalWorkflowHandle[Any]:
    """Another workflow of the round, to signal with a protocol `Signal`."""
    return workflow.get_external_workflow_handle(workflow_id)
