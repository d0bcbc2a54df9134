"""Registration: the NIK, age on the application date, education and the needs category."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.config import Category, Formasi
from domain.registration import (
    RECORDED,
    Gender,
    Registration,
    age_on,
    check_registration,
    mask_nik,
    nik_birth_date,
    nik_problems,
)

APPLIED_ON = date(2027, 8, 10)
BIRTH = date(1998, 5, 17)

FORMASI = Formasi(
    code="PK-AP-DISKOMINFO",
    jabatan="Pranata Komputer Ahli Pertama",
    unit="Dinas Komunikasi dan Informatika",
    education_level="S1",
    majors=["Teknik Informatika", "Sistem Informasi"],
    min_gpa=2.75,
    quota=3,
)


def nik_for(birth: date, gender: Gender, region: str = "327301", serial: str = "0001") -> str:
    """A NIK as the civil registry builds it: region, DDMMYY (women +40 on the day), serial."""
    day = birth.day + (40 if gender == Gender.FEMALE else 0)
    return f"{region}{day:02d}{birth:%m%y}{serial}"


def registration(**changes) -> Registration:
    """A registration that meets every rule of FORMASI, with some fields changed."""
    birth = changes.get("birth_date", BIRTH)
    gender = changes.get("gender", Gender.MALE)
    fields = {
        "nik": nik_for(birth, gender),
        "name": "Budi Santoso",
        "birth_date": birth,
        "gender": gender,
        "education_level": "S1",
        "major": "Teknik Informatika",
        "gpa": 3.20,
        "formasi_code": FORMASI.code,
    }
    fields.update(changes)
    return Registration(**fields)


def refused_fields(reg: Registration, formasi: Formasi | None = FORMASI, on=APPLIED_ON) -> set:
    return {r.field for r in check_registration(reg, formasi, on)}


def test_a_registration_meeting_every_rule_is_accepted():
    assert check_registration(registration(), FORMASI, APPLIED_ON) == []


def test_a_woman_whose_nik_day_is_plus_40_is_accepted():
    reg = registration(gender=Gender.FEMALE)
    assert reg.nik[6:8] == "57"
    assert check_registration(reg, FORMASI, APPLIED_ON) == []


@pytest.mark.parametrize(
    ("nik", "birth", "gender", "expected"),
    [
        ("3273011705980001", date(1998, 5, 17), Gender.MALE, date(1998, 5, 17)),
        ("3273015705980001", date(1998, 5, 17), Gender.FEMALE, date(1998, 5, 17)),
        ("3273010101050001", date(2005, 1, 1), Gender.MALE, date(2005, 1, 1)),
        ("3273016902000001", date(2000, 2, 29), Gender.FEMALE, date(2000, 2, 29)),
    ],
    ids=["man", "woman +40", "born 2005", "woman born on leap day 2000"],
)
def test_nik_encodes_the_birth_date(nik, birth, gender, expected):
    assert nik_birth_date(nik) == expected
    assert nik_problems(nik, birth, gender) == []


NIK = "3273011705980001"
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

# (case, the NIK as submitted) -- each is the NIK above, stored as its 16 ASCII digits
NIK_FORMS = [
    ("ASCII digits", NIK),
    ("fullwidth digits", NIK.translate(FULLWIDTH)),
    ("fullwidth and ASCII mixed", NIK[:8] + NIK[8:].translate(FULLWIDTH)),
    ("surrounding whitespace", f"  {NIK}\t"),
    ("ideographic spaces around fullwidth digits", f"\u3000{NIK.translate(FULLWIDTH)}\u3000"),
]


@pytest.mark.parametrize(
    "submitted", [case[1] for case in NIK_FORMS], ids=[c[0] for c in NIK_FORMS]
)
def test_a_nik_in_any_accepted_form_is_stored_as_16_ascii_digits(submitted):
    assert registration(nik=submitted).nik == NIK


def test_fullwidth_and_ascii_digits_are_the_same_applicant_not_two():
    assert registration(nik=NIK.translate(FULLWIDTH)) == registration(nik=NIK)


@given(st.lists(st.booleans(), min_size=16, max_size=16))
def test_any_mix_of_fullwidth_and_ascii_digits_is_the_same_nik(fullwidth):
    submitted = "".join(
        d.translate(FULLWIDTH) if w else d for d, w in zip(NIK, fullwidth, strict=True)
    )
    assert registration(nik=submitted).nik == NIK


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# (case, the NIK as submitted, words of the error) -- none may become a NIK
REFUSED_NIKS = [
    ("Arabic-Indic digits", NIK.translate(ARABIC_INDIC), "U+0663 ARABIC-INDIC DIGIT THREE"),
    ("one Arabic-Indic digit", NIK[:15] + "١", "character 16 is U+0661"),
    ("superscript digit (NFKC makes it 3)", "³" + NIK[1:], "U+00B3 SUPERSCRIPT THREE"),
    ("circled digit (NFKC makes it 3)", "③" + NIK[1:], "U+2462 CIRCLED DIGIT THREE"),
    ("Devanagari digits", NIK.translate(str.maketrans("0123456789", "०१२३४५६७८९")), "DEVANAGARI"),
    ("15 digits", NIK[:15], "has 15"),
    ("17 digits", NIK + "1", "has 17"),
    ("fullwidth, 15 digits", NIK[:15].translate(FULLWIDTH), "has 15"),
    ("a letter", NIK[:14] + "A1", "character 15 is U+0041 LATIN CAPITAL LETTER A"),
    ("embedded space", NIK[:4] + " " + NIK[4:15], "character 5 is U+0020 SPACE"),
    ("a sign", "+" + NIK[1:], "U+002B PLUS SIGN"),
    ("a zero-width space", NIK[:8] + "\u200b" + NIK[8:], "ZERO WIDTH SPACE"),
    ("empty", "", "has 0"),
]


@pytest.mark.parametrize(
    ("submitted", "words"),
    [case[1:] for case in REFUSED_NIKS],
    ids=[case[0] for case in REFUSED_NIKS],
)
def test_a_nik_in_any_other_form_is_refused_naming_the_field_and_the_problem(submitted, words):
    with pytest.raises(ValidationError) as err:
        registration(nik=submitted)
    [problem] = err.value.errors()
    assert problem["loc"] == ("nik",)
    assert words in problem["msg"]


LONG_REFUSED = [case for case in REFUSED_NIKS if len(case[1]) > 8]


@pytest.mark.parametrize(
    "submitted", [c[1] for c in LONG_REFUSED], ids=[c[0] for c in LONG_REFUSED]
)
def test_a_refused_nik_is_shown_masked_never_whole(submitted):
    with pytest.raises(ValidationError) as err:
        registration(nik=submitted)
    message = str(err.value)
    assert submitted not in message
    assert unicodedata.normalize("NFKC", submitted) not in message
    assert "****" in message


@pytest.mark.parametrize(
    ("field", "text", "character"),
    [
        ("name", "Budi\x00Santoso", "U+0000"),
        ("name", "Budi\nSantoso", "U+000A"),
        ("name", "Budi\rSantoso", "U+000D"),
        ("name", "Budi \x1b[31mSantoso", "U+001B"),
        ("name", "Budi \u202eosotnaS", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("name", "Budi \u2066Santoso", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("major", "Teknik\tInformatika", "U+0009"),
        ("education_level", "S1\u200b", "U+200B (ZERO WIDTH SPACE)"),
        ("formasi_code", "PK-AP\u2028", "U+2028"),
    ],
)
def test_text_that_is_not_printable_is_refused_naming_the_field_and_character_not_the_text(
    field, text, character
):
    with pytest.raises(ValidationError) as err:
        registration(**{field: text})
    [problem] = err.value.errors()
    assert problem["loc"] == (field,)
    assert character in problem["msg"] and "not printable" in problem["msg"]
    assert "Budi" not in problem["msg"] and "Budi" not in str(err.value)


def test_a_name_with_a_no_break_space_or_letters_of_any_script_is_text():
    assert registration(name="Budi\u00a0Santoso").name == "Budi\u00a0Santoso"
    assert registration(name="Ni Luh Putu Ayu Ṣāliḥah").name == "Ni Luh Putu Ayu Ṣāliḥah"


def test_a_mask_keeps_the_first_and_last_four_only():
    assert mask_nik(NIK) == "3273********0001"


def test_a_nik_sent_as_a_json_number_is_refused():
    with pytest.raises(ValidationError) as err:
        Registration.model_validate_json(registration().model_dump_json().replace(f'"{NIK}"', NIK))
    assert err.value.errors()[0]["loc"] == ("nik",)


# (case, nik, declared gender, field refused, words of the reason)
BAD_NIKS = [
    ("15 digits", "327301170598001", Gender.MALE, "nik", "16 digits"),
    ("17 digits", "32730117059800011", Gender.MALE, "nik", "16 digits"),
    ("a letter", "32730117059800A1", Gender.MALE, "nik", "16 digits"),
    ("region 000000", "0000001705980001", Gender.MALE, "nik", "000000"),
    ("day 32", "3273013205980001", Gender.MALE, "nik", "DDMMYY"),
    ("month 13", "3273011713980001", Gender.MALE, "nik", "DDMMYY"),
    ("woman's day 72 (32)", "3273017205980001", Gender.FEMALE, "nik", "DDMMYY"),
    ("birth date mismatch", "3273011805980001", Gender.MALE, "nik", "birth_date"),
    ("man with a +40 day", "3273015705980001", Gender.MALE, "gender", "+40"),
    ("woman without +40", "3273011705980001", Gender.FEMALE, "gender", "+40"),
    ("serial 0000", "3273011705980000", Gender.MALE, "nik", "0000"),
]


@pytest.mark.parametrize(
    ("nik", "gender", "field", "reason_words"),
    [case[1:] for case in BAD_NIKS],
    ids=[case[0] for case in BAD_NIKS],
)
def test_bad_nik_is_refused_naming_field_and_reason(nik, gender, field, reason_words):
    problems = nik_problems(nik, BIRTH, gender)
    assert [p.field for p in problems] == [field]
    assert reason_words in problems[0].reason


@pytest.mark.parametrize("nik", [case[1] for case in BAD_NIKS], ids=[c[0] for c in BAD_NIKS])
def test_refusals_never_show_the_full_nik(nik):
    gender = Gender.FEMALE if int(nik[6:8] if nik[6:8].isdigit() else 0) > 40 else Gender.MALE
    for problem in nik_problems(nik, BIRTH, gender):
        assert nik not in problem.value
        assert nik not in str(problem)


def test_every_refusal_names_a_field_and_a_reason():
    reg = registration(
        nik="0000001705980001",
        education_level="D3",
        major="Hukum",
        gpa=2.10,
        category=Category.DISABILITAS,
        citizen=False,
    )
    problems = check_registration(reg, FORMASI, APPLIED_ON)
    assert {p.field for p in problems} == {
        "nik",
        "citizen",
        "education_level",
        "major",
        "gpa",
        "category",
    }
    for p in problems:
        assert p.reason and str(p).startswith(f"{p.field}=")


# (case, birth date, formasi max_age, accepted) -- applied on 2027-08-10
AGES = [
    ("18th birthday on the application date", date(2009, 8, 10), 35, True),
    ("day before the 18th birthday", date(2009, 8, 11), 35, False),
    ("day before the 36th birthday (still 35)", date(1991, 8, 11), 35, True),
    ("36th birthday on the application date", date(1991, 8, 10), 35, False),
    ("day after turning 36", date(1991, 8, 9), 35, False),
    ("40 on a formasi with max_age 40", date(1987, 8, 11), 40, True),
    ("36 on a formasi with max_age 40", date(1991, 8, 9), 40, True),
    ("41 on a formasi with max_age 40", date(1986, 8, 10), 40, False),
]


@pytest.mark.parametrize(
    ("birth", "max_age", "accepted"),
    [case[1:] for case in AGES],
    ids=[case[0] for case in AGES],
)
def test_age_limits_are_inclusive_on_the_application_date(birth, max_age, accepted):
    formasi = FORMASI.model_copy(update={"max_age": max_age})
    refused = "birth_date" in refused_fields(registration(birth_date=birth), formasi)
    assert refused is not accepted


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2000, 2, 29), date(2018, 2, 28), 17),
        (date(2000, 2, 29), date(2018, 3, 1), 18),
        (date(1990, 12, 31), date(2027, 1, 1), 36),
        (date(1990, 12, 31), date(2026, 12, 30), 35),
    ],
)
def test_age_counts_whole_years(birth, on, age):
    assert age_on(birth, on) == age


@pytest.mark.parametrize(
    ("education_level", "major", "accepted"),
    [
        ("S1", "Teknik Informatika", True),
        ("s1", "teknik informatika", True),
        ("S1", "  SISTEM INFORMASI ", True),
        ("D3", "Teknik Informatika", False),
        ("S2", "Teknik Informatika", False),
        ("S1", "Teknik Elektro", False),
    ],
)
def test_education_level_and_major_match_case_insensitively(education_level, major, accepted):
    reg = registration(education_level=education_level, major=major)
    refused = refused_fields(reg) & {"education_level", "major"}
    assert (not refused) is accepted


@pytest.mark.parametrize(
    ("gpa", "accepted"),
    [(2.75, True), (2.74, False), (4.00, True), (0.0, False)],
)
def test_gpa_at_the_minimum_is_accepted_and_just_below_is_refused(gpa, accepted):
    assert ("gpa" not in refused_fields(registration(gpa=gpa))) is accepted


# (case, formasi category, applicant category, accepted)
CATEGORIES = [
    ("general applicant, general formasi", Category.UMUM, Category.UMUM, True),
    ("cumlaude applicant, cumlaude formasi", Category.CUMLAUDE, Category.CUMLAUDE, True),
    ("general applicant, cumlaude formasi", Category.CUMLAUDE, Category.UMUM, False),
    ("disabilitas applicant, cumlaude formasi", Category.CUMLAUDE, Category.DISABILITAS, False),
    ("disabilitas applicant, general formasi", Category.UMUM, Category.DISABILITAS, False),
    ("papua applicant, papua formasi", Category.PAPUA, Category.PAPUA, True),
]


@pytest.mark.parametrize(
    ("formasi_category", "applicant_category", "accepted"),
    [case[1:] for case in CATEGORIES],
    ids=[case[0] for case in CATEGORIES],
)
def test_special_needs_formasi_takes_only_its_own_category(
    formasi_category, applicant_category, accepted
):
    formasi = FORMASI.model_copy(update={"category": formasi_category})
    reg = registration(category=applicant_category)
    assert ("category" not in refused_fields(reg, formasi)) is accepted


def test_non_citizen_is_refused():
    assert "citizen" in refused_fields(registration(citizen=False))


def test_unknown_formasi_is_refused_with_its_code():
    problems = check_registration(registration(formasi_code="NOPE"), None, APPLIED_ON)
    assert [(p.field, p.value) for p in problems] == [("formasi_code", "NOPE")]


def test_a_start_or_sheet_that_does_not_validate_shows_none_of_the_registration():
    # Registration hides its input in errors, but not when it is a part of another model: the
    # models that carry one hide theirs too (an error may reach a log: a decode's failure).
    from domain.messages import JourneyStart
    from domain.sheet import ApplicantSheet

    reg = registration(name="Budi Santoso").model_dump(mode="json")
    del reg["gender"]  # a field missing: pydantic's error shows the whole registration as input
    for model in (JourneyStart, ApplicantSheet):
        with pytest.raises(ValidationError) as err:
            model.model_validate({"registration": reg})
        assert "Budi" not in str(err.value) and reg["nik"] not in str(err.value), model


def _with_birth_date(written: object) -> Registration:
    return Registration.model_validate(registration().model_dump() | {"birth_date": written})


@pytest.mark.parametrize("written", [946684800, "946684800", "20000101", "17/05/1998", 1.5])
def test_a_birth_date_is_written_yyyy_mm_dd_and_nothing_else_is_read_as_one(written):
    """pydantic's lax date read a Unix time as a date and answered 20000101 about datetimes."""
    with pytest.raises(ValidationError) as caught:
        _with_birth_date(written)
    [error] = caught.value.errors()
    assert error["loc"] == ("birth_date",)
    assert "not a date written YYYY-MM-DD" in error["msg"]


def test_a_birth_date_in_its_one_form_or_as_a_date_is_taken():
    assert _with_birth_date(" 1998-05-17 ").birth_date == BIRTH
    assert _with_birth_date(BIRTH).birth_date == BIRTH
    recorded = registration().model_dump(mode="json") | {"birth_date": 895363200}
    taken = Registration.model_validate(recorded, context={RECORDED: True})
    assert taken.birth_date == BIRTH  # a start recorded before the rule still decodes
