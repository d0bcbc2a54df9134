"""A close's update id names the page of journeys it was sent with (domain/protocol.py)."""

from __future__ import annotations

from domain.protocol import close_page_of, close_update_id, listing_digest


def test_the_id_names_the_close_the_listing_and_the_place_and_reads_back():
    listing = listing_digest(["R/applicant/A", "R/applicant/B"])
    update_id = close_update_id("R/skd_closed/8", listing, 1)
    assert update_id == f"close_stage-R/skd_closed/8@{listing}.1"
    assert close_page_of(update_id) == ("R/skd_closed/8", listing, 1)


def test_a_listing_is_named_by_its_ids_in_order():
    a, b = "R/applicant/A", "R/applicant/B"
    assert len(listing_digest([a, b])) == 16
    assert listing_digest([a, b]) == listing_digest([a, b])
    assert listing_digest([a, b]) != listing_digest([b, a])
    assert listing_digest([a]) != listing_digest([a, b])


def test_ids_that_name_no_page_are_not_read_as_one():
    assert close_page_of("close_stage-R/skd_closed/8") is None  # sent before ids named pages
    assert close_page_of("report_skd-0123") is None
    assert close_page_of("close_stage-R/skd_closed/8@NOTHEX0123456789.1") is None
    assert close_page_of("close_stage-R/skd_closed/8@0123456789abcdef.x") is None
    # An announcement id holding '@' still reads back whole.
    listing = "0123456789abcdef"
    assert close_page_of(close_update_id("a@b", listing, 7)) == ("a@b", listing, 7)
