"""Workflow ids: free of personal data (no NIK, no name)."""

from __future__ import annotations


def round_workflow_id(round_id: str) -> str:
    """Id of a round's RecruitmentRound workflow."""
    return f"{round_id}/round"


def formasi_workflow_id(round_id: str, formasi_code: str) -> str:
    """Id of a formasi's FormasiSelection workflow."""
    return f"{round_id}/formasi/{formasi_code}"


def journey_workflow_id(round_id: str, applicant_id: str) -> str:
    """Id of an applicant's journey; one per NIK per round, because applicant_id is the NIK's pseudonym."""
    return f"{round_id}/applicant/{applicant_id}"
