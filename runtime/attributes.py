"""The search attributes this project registers: ids and stages only, never personal data.

Workflows import this module inside the sandbox, so it imports nothing but temporalio.common.
"""

from temporalio.common import SearchAttributeKey

ROUND_ID = SearchAttributeKey.for_keyword("RoundId")
FORMASI_CODE = SearchAttributeKey.for_keyword("FormasiCode")
RECRUITMENT_STAGE = SearchAttributeKey.for_keyword("RecruitmentStage")
WORKFLOW_KIND = SearchAttributeKey.for_keyword("CasnKind")

ALL = [ROUND_ID, FORMASI_CODE, RECRUITMENT_STAGE, WORKFLOW_KIND]
