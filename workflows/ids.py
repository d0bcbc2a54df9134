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


def aftermath_workflow_id(round_id: str, applicant_id: str) -> str:
    """Id of an applicant's ApplicantAftermath: the journey's id and `/after`."""
    return f"{journey_workflow_id(round_id, applicant_id)}/after"


def aftermath_of(workflow_id: str) -> tuple[str, str] | None:
    """(round id, applicant id) of an aftermath's workflow id; None when it is not one."""
    parts = workflow_id.split("/")
    if len(parts) != 4 or parts[1] != "applicant" or parts[3] != "after" or not all(parts):
        return None
    return parts[0], parts[2]


def national_workflow_id(national_id: str) -> str:
    """Id of a national round's NationalRound workflow."""
    return f"{national_id}/national"


def claim_workflow_id(national_id: str, national_applicant_id: str) -> str:
    """Id of one NIK's NationalClaim: one per NIK per national round, because the applicant id is
    the NIK's national pseudonym (client/national.py)."""
    return f"{national_id}/claim/{national_applicant_id}"
