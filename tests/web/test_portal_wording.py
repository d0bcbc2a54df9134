"""The portal reads the engine's refusals by their English wording (gateway/portal.py `_REASONS`).

These tests make every refusal the registration rules and the appeal rules can give, from the
domain code itself, and check that the portal has Indonesian for each. A rule whose wording
changes, or a new rule, fails here instead of reaching an applicant as "ditolak oleh sistem: ..."
in English. The count of `Refusal(field=...)` in domain/registration.py keeps the table below
complete: a new rule there needs its case here.
"""

from __future__ import annotations

import inspect
import random
import re
from datetime import UTC, date, datetime, timedelta

import pytest

import domain.registration as registration
from apps.demo import EXAMPLE, synthetic_applicants
from domain.administration import appeal_refusal
from domain.codes import AdminDecision
from domain.config import Category, load_round_config
from domain.registration import Gender, check_registration
from gateway.portal import indonesian

CONFIG = load_round_config(EXAMPLE)
APPLIED_ON = date(2026, 12, 3)
FALLBACK = "ditolak oleh sistem"


def _umum_formasi():
    return next(f for f in CONFIG.formasi if f.category == Category.UMUM)


def _reserved_formasi():
    return next(f for f in CONFIG.formasi if f.category != Category.UMUM)


def _eligible(formasi):
    """A registration the rules accept for `formasi` (from the demo's own applicants)."""
    for reg in synthetic_applicants(CONFIG, 400, random.Random(3)):
        if reg.formasi_code == formasi.code and not check_registration(reg, formasi, APPLIED_ON):
            return reg
    raise AssertionError(f"the demo made no eligible applicant for {formasi.code}")


def _nik_with(reg, **parts) -> str:
    nik = reg.nik
    if "region" in parts:
        nik = parts["region"] + nik[6:]
    if "birth" in parts:
        nik = nik[:6] + parts["birth"] + nik[12:]
    if "serial" in parts:
        nik = nik[:12] + parts["serial"]
    return nik


def _other_gender(reg):
    return Gender.MALE if reg.gender == Gender.FEMALE else Gender.FEMALE


def _cases():
    """(rule, registration changes, formasi or None) for every refusal the rules can give."""
    umum, reserved = _umum_formasi(), _reserved_formasi()
    reg = _eligible(umum)
    too_young = APPLIED_ON.replace(year=APPLIED_ON.year - umum.min_age + 1)
    return [
        ("nik shape", umum, {"nik": "12345"}),
        ("region code", umum, {"nik": _nik_with(reg, region="000000")}),
        ("birth part not a date", umum, {"nik": _nik_with(reg, birth="999999")}),
        (
            "birth part against the birth date",
            umum,
            {"birth_date": reg.birth_date + timedelta(days=1)},
        ),
        ("gender against the NIK", umum, {"gender": _other_gender(reg)}),
        ("serial part", umum, {"nik": _nik_with(reg, serial="0000")}),
        ("citizen", umum, {"citizen": False}),
        ("no such formasi", None, {"formasi_code": "NO-SUCH"}),
        ("age", umum, {"birth_date": too_young, "nik": None}),
        ("education", umum, {"education_level": "SMA"}),
        ("major", umum, {"major": "Ilmu Tidak Ada"}),
        ("gpa", umum, {"gpa": 0.5}),
        ("reserved formasi", reserved, {"category": Category.UMUM, "formasi_code": None}),
        ("general formasi", umum, {"category": reserved.category}),
    ]


def _nik_for_birth(reg, birth: date) -> str:
    day = birth.day + (40 if reg.gender == Gender.FEMALE else 0)
    return _nik_with(reg, birth=f"{day:02d}{birth.month:02d}{birth.year % 100:02d}")


def _refusals(formasi, changes):
    base = _eligible(formasi or _umum_formasi())
    update = dict(changes)
    if update.get("nik", "") is None:  # keep the NIK's birth part true to the new birth date
        update["nik"] = _nik_for_birth(base, update["birth_date"])
    if update.get("formasi_code", "") is None:
        update["formasi_code"] = formasi.code
    reg = base.model_copy(update=update)
    return check_registration(reg, formasi, APPLIED_ON)


@pytest.mark.parametrize(("rule", "formasi", "changes"), _cases(), ids=[c[0] for c in _cases()])
def test_each_registration_rule_refuses_in_indonesian(rule, formasi, changes):
    refusals = _refusals(formasi, changes)
    assert refusals, f"{rule}: the registration was not refused, so the case tests nothing"
    for refusal in refusals:
        text = indonesian(refusal.reason)
        assert not text.startswith(FALLBACK), (
            f"{rule}: the portal has no Indonesian for {refusal.reason!r}"
        )


def test_the_cases_cover_every_refusal_the_registration_rules_can_give():
    source = inspect.getsource(registration)
    sites = len(re.findall(r"\bRefusal\(\s*field=", source))
    reasons = set()
    for _rule, formasi, changes in _cases():
        for refusal in _refusals(formasi, changes):
            # One reason per site: the numbers and codes a reason carries are not the rule.
            reasons.add(re.sub(r"\d[\d.-]*|formasi \S+", "#", refusal.reason))
    assert len(reasons) == sites, (
        f"domain/registration.py can refuse in {sites} ways and these cases give {len(reasons)}: "
        "a new rule needs its case here and its Indonesian in gateway/portal.py"
    )


def test_each_appeal_refusal_reads_in_indonesian():
    announced = datetime(2026, 12, 1, 8, tzinfo=UTC)
    window = timedelta(days=3)
    reasons = {
        appeal_refusal(AdminDecision.MS, announced, announced, window, False),
        appeal_refusal(AdminDecision.TMS, None, announced, window, False),
        appeal_refusal(AdminDecision.TMS, announced, announced, window, True),
        appeal_refusal(AdminDecision.TMS, announced, announced + window, window, False),
    }
    assert None not in reasons and len(reasons) == 4
    for reason in reasons:
        assert not indonesian(reason).startswith(FALLBACK), reason
    late = appeal_refusal(AdminDecision.TMS, announced, announced + window, window, False)
    assert indonesian(late) == "masa sanggah sudah berakhir pada 4 Des 2026 15.00 WIB"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Jayapura", "23 Agu 2027 24.00 WIT"),
        ("Asia/Makassar", "23 Agu 2027 23.00 WITA"),
        ("Asia/Jakarta", "23 Agu 2027 22.00 WIB"),
    ],
)
def test_a_refusal_names_its_time_in_the_rounds_zone(zone, shown):
    # The sanggah window of a round in Papua ends at 24:00 WIT (15:00 UTC): its refusal says so
    # on the applicant's clock, the end of the day still in it.
    closed = datetime(2027, 8, 23, 15, tzinfo=UTC).isoformat()
    assert indonesian(f"the appeal window closed at {closed}", zone) == (
        f"masa sanggah sudah berakhir pada {shown}"
    )
    registration = f"registration refused: started at x, after registration closed at {closed}"
    assert indonesian(registration, zone) == f"pendaftaran sudah ditutup pada {shown}"


def _problems_in(function) -> list[str]:
    """Every reason `function` assigns to `problem`, as text: the f-string parts filled with a
    timestamp, the one value the applicant-facing reasons carry."""
    import ast
    import textwrap

    reasons = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if not (
            isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["problem"]
        ):
            continue
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            reasons.append(value.value)
        elif isinstance(value, ast.JoinedStr):
            reasons.append(
                "".join(
                    part.value if isinstance(part, ast.Constant) else "2026-12-04T08:00:00+00:00"
                    for part in value.values
                )
            )
    return reasons


def test_each_refusal_of_what_the_portal_sends_reads_in_indonesian():
    """The final sanggah and the optimalisasi answer, which the portal files for the applicant."""
    import domain.sheet as sheet

    reasons = [
        *_problems_in(sheet._refuse_final_appeal),
        *_problems_in(sheet._refuse_offer_answer),
    ]
    assert len(reasons) == 6, reasons  # a rule added or rewritten here is read too
    for reason in reasons:
        assert not indonesian(reason).startswith(FALLBACK), f"no Indonesian for {reason!r}"


def test_a_minimum_ipk_is_written_with_a_decimal_comma_as_the_form_asks():
    """The form's hint says "misalnya 3,25"; the refusal of an IPK below a formasi's minimum
    must write the minimum the same way, not as the rule's "2.75"."""
    [refusal] = _refusals(_umum_formasi(), {"gpa": 0.5})
    text = indonesian(refusal.reason)
    assert re.fullmatch(r"di bawah IPK minimum \d,\d\d", text), text
