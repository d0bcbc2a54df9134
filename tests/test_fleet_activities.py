"""Every activity a workflow asks for by name is one the worker registers: a declared activity
without a worker fails its workflow task for ever (as `keep_page` did before it was added, at the
first round that offered 500 seats; no test reached that many)."""

from __future__ import annotations

from temporalio import activity

from apps.fleet import fleet_activities
from domain.national import CHECK_CLAIM, FIND_CLAIMED_JOURNEY, RELEASE_CLAIM
from domain.protocol import ACTIVITIES
from runtime.embedded import isolated_settings


def _names(callables) -> list[str]:
    names = []
    for fn in callables:
        definition = activity._Definition.from_callable(fn)
        assert definition is not None and definition.name, f"{fn!r} is not an activity"
        names.append(definition.name)
    return names


def test_the_fleet_registers_every_activity_of_the_protocol_once(tmp_path):
    registered = _names(fleet_activities(None, isolated_settings(tmp_path), None))
    assert len(registered) == len(set(registered)), "an activity registered twice"
    missing = sorted({a.name for a in ACTIVITIES} - set(registered))
    assert missing == [], f"declared in domain/protocol.py, registered by no worker: {missing}"
    # The rest are the national claims' (domain/national.py, activities/claims.py).
    others = sorted(set(registered) - {a.name for a in ACTIVITIES})
    assert others == sorted([CHECK_CLAIM.name, RELEASE_CLAIM.name, FIND_CLAIMED_JOURNEY.name])
