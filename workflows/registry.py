"""Every workflow the project registers: the worker runs them, the auditor replays them.

Imported by the worker and the auditor, never from inside the workflow sandbox.
"""

from __future__ import annotations

from workflows.aftermath import ApplicantAftermath
from workflows.applicant import ApplicantJourney
from workflows.formasi import FormasiSelection
from workflows.national import NationalClaim, NationalRound
from workflows.round import RecruitmentRound

WORKFLOWS = (
    ApplicantJourney,
    FormasiSelection,
    RecruitmentRound,
    ApplicantAftermath,
    NationalRound,
    NationalClaim,
)
