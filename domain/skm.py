"""The satisfaction survey (SKM, Survei Kepuasan Masyarakat) and its index (IKM).

PermenPANRB 14/2017 asks every public service to survey its users on nine elements (unsur),
each answered on a 1..4 scale (1 tidak baik/sesuai, 2 kurang baik/sesuai, 3 baik/sesuai,
4 sangat baik/sesuai). The recruitment portal asks them three times: after registration, after
the SKD and at the end of an applicant's selection.

The index: each element's NRR (nilai rata-rata) is the mean of its answers; the elements weigh
equally (1/9 each; the regulation prints the weight as 0.111); the IKM is the weighted sum of
the NRRs times 25, so it lies in 25..100. Its quality band (mutu pelayanan) is read from the
regulation's conversion table, printed with 2 decimals: A 88.31-100 (Sangat Baik),
B 76.61-88.30 (Baik), C 65.00-76.60 (Kurang Baik), D 25.00-64.99 (Tidak Baik).

Between the printed bounds: the IKM is computed exactly (fractions, not floats), rounded to
2 decimals half up (88.305 -> 88.31), and that rounded figure, the one reported, is banded.
So 88.305 is A and 88.3049 is B; no value falls between two bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel

from domain.errors import RuleViolation

SurveyStage = Literal["registration", "skd", "end"]
STAGES: tuple[SurveyStage, ...] = ("registration", "skd", "end")
STAGE_LABELS: dict[SurveyStage, str] = {
    "registration": "Setelah pendaftaran",
    "skd": "Setelah SKD",
    "end": "Akhir seleksi",
}

Band = Literal["A", "B", "C", "D"]
SCALE = (1, 2, 3, 4)
WEIGHT = Fraction(1, 9)  # each element's weight in the IKM
FACTOR = 25  # converts the weighted NRR (1..4) to the IKM (25..100)


class Element(BaseModel, frozen=True):
    """One element (unsur) of the survey, with the question asked and its four answers."""

    code: str  # U1..U9, the regulation's order
    name: str  # the element's name in PermenPANRB 14/2017
    question: str  # as asked on the recruitment portal
    choices: tuple[str, str, str, str]  # the labels of answers 1, 2, 3 and 4


ELEMENTS: tuple[Element, ...] = (
    Element(
        code="U1",
        name="Persyaratan",
        question=(
            "Bagaimana pendapat Saudara tentang kesesuaian persyaratan pendaftaran "
            "(dokumen dan kualifikasi formasi) dengan jenis seleksinya?"
        ),
        choices=("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
    ),
    Element(
        code="U2",
        name="Sistem, mekanisme dan prosedur",
        question=(
            "Bagaimana pemahaman Saudara tentang kemudahan prosedur seleksi "
            "(pendaftaran, jadwal ujian, sanggah) di portal ini?"
        ),
        choices=("Tidak mudah", "Kurang mudah", "Mudah", "Sangat mudah"),
    ),
    Element(
        code="U3",
        name="Waktu penyelesaian",
        question=(
            "Bagaimana pendapat Saudara tentang kecepatan waktu dalam memberikan layanan "
            "(verifikasi, pengumuman hasil, jawaban sanggah)?"
        ),
        choices=("Tidak cepat", "Kurang cepat", "Cepat", "Sangat cepat"),
    ),
    Element(
        code="U4",
        name="Biaya/tarif",
        question=(
            "Bagaimana pendapat Saudara tentang biaya yang Saudara bayarkan kepada panitia "
            "untuk seleksi ini (seleksi CASN tidak dipungut biaya)?"
        ),
        choices=("Sangat mahal", "Cukup mahal", "Murah", "Gratis"),
    ),
    Element(
        code="U5",
        name="Produk spesifikasi jenis pelayanan",
        question=(
            "Bagaimana pendapat Saudara tentang kesesuaian informasi yang diberikan "
            "(pengumuman, kartu ujian, hasil) dengan yang dijanjikan?"
        ),
        choices=("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
    ),
    Element(
        code="U6",
        name="Kompetensi pelaksana",
        question=(
            "Bagaimana pendapat Saudara tentang kompetensi/kemampuan petugas panitia "
            "seleksi dalam melayani?"
        ),
        choices=("Tidak kompeten", "Kurang kompeten", "Kompeten", "Sangat kompeten"),
    ),
    Element(
        code="U7",
        name="Perilaku pelaksana",
        question=(
            "Bagaimana pendapat Saudara tentang perilaku petugas panitia seleksi terkait "
            "kesopanan dan keramahan?"
        ),
        choices=(
            "Tidak sopan dan ramah",
            "Kurang sopan dan ramah",
            "Sopan dan ramah",
            "Sangat sopan dan ramah",
        ),
    ),
    Element(
        code="U8",
        name="Penanganan pengaduan, saran dan masukan",
        question=(
            "Bagaimana pendapat Saudara tentang penanganan pengaduan, sanggah, saran dan "
            "masukan dalam seleksi ini?"
        ),
        choices=(
            "Tidak ada",
            "Ada tetapi tidak berfungsi",
            "Berfungsi kurang maksimal",
            "Dikelola dengan baik",
        ),
    ),
    Element(
        code="U9",
        name="Sarana dan prasarana",
        question=(
            "Bagaimana pendapat Saudara tentang kualitas sarana dan prasarana seleksi "
            "(portal pendaftaran, lokasi dan perangkat ujian)?"
        ),
        choices=("Buruk", "Cukup", "Baik", "Sangat baik"),
    ),
)

# The conversion table: (band, label, lowest IKM of the band as printed), best first.
BANDS: tuple[tuple[Band, str, Decimal], ...] = (
    ("A", "Sangat Baik", Decimal("88.31")),
    ("B", "Baik", Decimal("76.61")),
    ("C", "Kurang Baik", Decimal("65.00")),
    ("D", "Tidak Baik", Decimal("25.00")),
)


class IkmResult(BaseModel, frozen=True):
    """The index of a set of survey responses (one stage, one instansi, or a whole round)."""

    value: float  # the IKM, 25..100, rounded to 2 decimals half up (the figure reported)
    band: Band
    label: str  # Sangat Baik, Baik, Kurang Baik or Tidak Baik
    per_element: tuple[float, ...]  # the nine NRRs (mean answer, 1..4), in ELEMENTS' order
    respondents: int


def validate_answers(answers: Sequence[int]) -> tuple[int, ...]:
    """The nine answers of one response, checked: exactly nine, each an int 1..4, else a
    RuleViolation naming the element (its code and name) and the value."""
    if isinstance(answers, str | bytes) or len(answers) != len(ELEMENTS):
        count = len(answers) if not isinstance(answers, str | bytes) else answers
        raise RuleViolation(
            "answers", count, f"a response has exactly {len(ELEMENTS)} answers, one per element"
        )
    for element, answer in zip(ELEMENTS, answers, strict=True):
        if isinstance(answer, bool) or not isinstance(answer, int) or answer not in SCALE:
            raise RuleViolation(
                f"{element.code} ({element.name})", answer, "an answer is an integer 1..4"
            )
    return tuple(answers)


def round_ikm(value: Fraction | Decimal | float) -> Decimal:
    """`value` rounded to 2 decimals, half up. A float is read as its shortest decimal form
    (88.305 is "88.305", not the binary 88.30499...), as a person reading it would."""
    exact = Decimal(repr(value)) if isinstance(value, float) else value
    if isinstance(exact, Fraction):
        hundredths = (exact * 100 + Fraction(1, 2)).__floor__()
        return Decimal(hundredths).scaleb(-2)
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def quality(value: Fraction | Decimal | float) -> tuple[Band, str]:
    """The band and label of an IKM, after rounding it to 2 decimals (see the module's note).
    Raises RuleViolation outside 25..100."""
    rounded = round_ikm(value)
    if rounded < BANDS[-1][2] or rounded > 100:
        raise RuleViolation("ikm", value, "an IKM lies in 25..100")
    for band, label, lowest in BANDS:
        if rounded >= lowest:
            return band, label
    raise AssertionError("unreachable: the last band starts at 25")  # pragma: no cover


def ikm(responses: Sequence[Sequence[int]]) -> IkmResult:
    """The IKM of `responses` (each the nine answers of one respondent): the NRR of each
    element, weighted 1/9 each, summed, times 25; with its quality band. Raises
    RuleViolation for an invalid response (naming which) or when there is none."""
    if not responses:
        raise RuleViolation("responses", 0, "the IKM needs at least one response")
    checked = []
    for index, response in enumerate(responses):
        try:
            checked.append(validate_answers(response))
        except RuleViolation as bad:
            raise RuleViolation(f"responses[{index}].{bad.field}", bad.value, bad.problem) from None
    totals = [sum(r[i] for r in checked) for i in range(len(ELEMENTS))]
    return ikm_of_totals(totals, len(checked))


def ikm_of_totals(totals: Sequence[int], respondents: int) -> IkmResult:
    """The IKM of `respondents` responses from the sum of each element's answers (what a
    database adds up without sending every row): the same figure as `ikm` of those responses.
    Raises RuleViolation when the sums cannot come from that many valid responses."""
    if respondents < 1:
        raise RuleViolation("respondents", respondents, "the IKM needs at least one response")
    if len(totals) != len(ELEMENTS):
        raise RuleViolation("totals", len(totals), f"one sum per element, {len(ELEMENTS)}")
    for element, total in zip(ELEMENTS, totals, strict=True):
        if not SCALE[0] * respondents <= total <= SCALE[-1] * respondents:
            raise RuleViolation(
                f"{element.code} ({element.name})",
                total,
                f"the sum of {respondents} answers lies in "
                f"{SCALE[0] * respondents}..{SCALE[-1] * respondents}",
            )
    nrr = [Fraction(total, respondents) for total in totals]
    exact = sum((WEIGHT * x for x in nrr), Fraction(0)) * FACTOR
    band, label = quality(exact)
    return IkmResult(
        value=float(round_ikm(exact)),
        band=band,
        label=label,
        per_element=tuple(float(x) for x in nrr),
        respondents=respondents,
    )
