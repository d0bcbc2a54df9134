"""Optimalisasi: empty seats go to those who lost on rank in a formasi with the same job and education."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from domain.ranking import FinalEntry, final_rank_key


class Vacancy(BaseModel, frozen=True):
    """Empty seats of one formasi after its final ranking."""

    formasi_code: str
    jabatan: str
    education_level: str
    seats: int


class OptimalisasiCandidate(BaseModel, frozen=True):
    """Someone who completed SKB, passed every gate and lost on rank."""

    entry: FinalEntry
    jabatan: str
    education_level: str


class Offer(BaseModel, frozen=True):
    """A seat offered to a candidate (result code P/L-2 once accepted)."""

    applicant_id: str
    from_formasi: str
    to_formasi: str


def _matches(c: OptimalisasiCandidate, v: Vacancy) -> bool:
    return (
        c.jabatan.strip().casefold() == v.jabatan.strip().casefold()
        and c.education_level.strip().upper() == v.education_level.strip().upper()
    )


def allocate(
    vacancies: Sequence[Vacancy],
    candidates: Sequence[OptimalisasiCandidate],
    declined: Iterable[str] = (),
) -> list[Offer]:
    """Offers, best final score first (the final tie-break chain), skipping those who declined.

    Each candidate takes at most one seat; among matching formasi with seats left the one with
    the lowest code is offered first, so the result never depends on input order. Run again with
    the decliners added to get the seat passed on to the next in rank.
    """
    out = set(declined)
    seats = {v.formasi_code: v.seats for v in vacancies}
    ordered_vacancies = sorted(vacancies, key=lambda v: v.formasi_code)
    offers: list[Offer] = []
    for c in sorted(candidates, key=lambda c: final_rank_key(c.entry)):
        if c.entry.applicant_id in out:
            continue
        for v in ordered_vacancies:
            if seats[v.formasi_code] > 0 and _matches(c, v):
                seats[v.formasi_code] -= 1
                offers.append(
                    Offer(
                        applicant_id=c.entry.applicant_id,
                        from_formasi=c.entry.formasi_code,
                        to_formasi=v.formasi_code,
                    )
                )
                break
    return offers
