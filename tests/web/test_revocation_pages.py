"""The pages that show a DIS or dismissal after the journey ended: the applicant's status and the
public lookup, rendered from their templates (the data comes from tests/flows/test_revocation.py's
kind of round; here only what the pages make of it)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from client.announcements import waktu as public_waktu
from client.status import ApplicantView, RevocationView, angka, waktu
from gateway.deps import TEMPLATES

PAGES = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape())
AT = datetime(2028, 5, 1, 2, 0, tzinfo=UTC)  # 09.00 WIB, 11.00 WIT


@pytest.mark.parametrize(
    ("zone", "since"),
    [("Asia/Jakarta", "1 Mei 2028 09.00 WIB"), ("Asia/Jayapura", "1 Mei 2028 11.00 WIT")],
    ids=["WIB", "WIT: the round's zone"],
)
def test_the_status_page_shows_the_dismissal_with_its_decree_date_and_reason(zone, since):
    view = ApplicantView(
        round_id="R",
        applicant_id="ABCDEFGHIJKLMNOP",
        formasi_code="F1",
        stage="ended",
        stage_label="Selesai",
        terminal="PNS",
        terminal_label="Diangkat menjadi PNS",
        revocations=[
            RevocationView(
                code="DIBERHENTIKAN",
                label="Diberhentikan",
                at=AT,
                journey_terminal="PNS",
                reason="tidak masuk kerja <46 hari>",
                decree_no="800/3/2028",
            )
        ],
        standing="DIBERHENTIKAN",
        as_of=AT,
    )
    html = PAGES.get_template("portal/status.html").render(
        view=view,
        config={"instansi": "Pemkab Uji"},
        waktu=partial(waktu, zone=zone),
        account=None,
    )
    assert (
        '<dt>Setelah seleksi berakhir</dt><dd class="revocation"><strong>Diberhentikan</strong> '
        f"sejak {since} · keputusan nomor 800/3/2028<br>"
        "tidak masuk kerja &lt;46 hari&gt;</dd>"
    ) in html


@pytest.mark.parametrize(
    ("zone", "since"),
    [("Asia/Jakarta", "1 Mei 2028, 09.00 WIB"), ("Asia/Makassar", "1 Mei 2028, 10.00 WITA")],
    ids=["WIB", "WITA: the round's zone"],
)
def test_the_lookup_names_a_dis_after_the_end_with_its_date(zone, since):
    published = SimpleNamespace(seq=3, stage="final", published_at=AT)
    row = SimpleNamespace(
        applicant_id="ABCDEFGHIJKLMNOP",
        from_formasi=None,
        rank=1,
        twk=None,
        final_score="88.500",
        skd_total=400,
        skb_score="90.000",
        code="P/L",
    )
    html = PAGES.get_template("public/lookup.html").render(
        round_id="R",
        instansi="Pemkab Uji",
        nomor="ABCDEFGHIJKLMNOP",
        found=[(published, "F1", row)],
        ended="DIS",
        revoked=("DIS", AT),
        waktu=partial(public_waktu, zone=zone),
        angka=angka,
        titles={"final": "Pengumuman Hasil Akhir"},
        account=None,
    )
    assert f"Status terkini: DIS (diskualifikasi, sejak {since}, setelah seleksi berakhir)." in html
    assert "<td>P/L (DIS setelah pengumuman)</td>" in html
    assert "<td>SKD 400, SKB 90,000, akhir 88,500</td>" in html  # decimal commas
