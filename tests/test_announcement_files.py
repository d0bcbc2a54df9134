"""The files `starter.py announce` and the demo write for a publication are named after its round,
stage and number, `<round>-<stage>.csv|html` and `<round>-<seq>.json` (docs/ANNOUNCEMENTS.md),
whatever the round id holds: a round id may hold a dot, which a path's suffix was taken at, so
round `CPNS-2027.1`'s three stages were all written over one `CPNS-2027.csv` and `CPNS-2027.html`."""

from __future__ import annotations

import pytest

from client.announcements import AnnouncementStage
from client.publication import write_files
from tests.web.publications import listing


@pytest.mark.parametrize("round_id", ["CPNS-2027", "CPNS-2027.1", "kab.contoh_2027"])
def test_each_stage_is_written_to_files_named_after_the_round_and_the_stage(tmp_path, round_id):
    written = {
        stage: write_files(listing(round_id, stage, rows=[]), 3, tmp_path)
        for stage in AnnouncementStage
    }

    assert {stage: [p.name for p in paths] for stage, paths in written.items()} == {
        stage: [
            f"{round_id}-{stage.value}.csv",
            f"{round_id}-{stage.value}.html",
            f"{round_id}-1.json",
        ]
        for stage in AnnouncementStage
    }
    assert all(p.exists() for paths in written.values() for p in paths)
