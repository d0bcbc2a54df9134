"""The selection rules of a CASN round as pure functions over pydantic models.

No I/O, no Temporal, no clock: the same code decides inside a workflow, in a test, and in an
auditor's offline re-computation.
"""
