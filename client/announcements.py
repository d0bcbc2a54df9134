"""Announcements of a stage (administration, SKD, final) as CSV and printable HTML, in official order."""

from __future__ import annotations

import csv
import html
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import asyncpg


class AnnouncementStage(StrEnum):
    """The announcements that can be published."""

    ADMIN = "admin"
    SKD = "skd"
    FINAL = "final"


ANNOUNCEMENT_COLUMNS = {
    AnnouncementStage.ADMIN: ("applicant_id", "name", "formasi_code", "admin"),
    AnnouncementStage.SKD: ("applicant_id", "name", "formasi_code", "skd_total", "skd_code"),
    AnnouncementStage.FINAL: (
        "applicant_id",
        "name",
        "formasi_code",
        "placed_formasi",
        "skd_total",
        "skb_score",
        "final_score",
        "final_code",
    ),
}
_FINAL_ORDER = {"P/L": 0, "P/L-2": 1}


def announcement_order(stage: AnnouncementStage, rows: list[dict]) -> list[dict]:
    """The official order: admin by registration number; SKD and final by formasi, passing codes
    first, then by score, highest first."""
    if stage == AnnouncementStage.ADMIN:
        return sorted(rows, key=lambda r: r["applicant_id"])
    if stage == AnnouncementStage.SKD:
        return sorted(
            rows,
            key=lambda r: (
                r["formasi_code"],
                r["skd_code"] != "P/L",
                -(r["skd_total"] if r["skd_total"] is not None else -1),
                r["applicant_id"],
            ),
        )
    return sorted(
        rows,
        key=lambda r: (
            r["placed_formasi"]
            if r["final_code"] == "P/L-2" and r["placed_formasi"]
            else r["formasi_code"],
            _FINAL_ORDER.get(r["final_code"], 2),
            -(float(r["final_score"]) if r["final_score"] is not None else -1.0),
            r["applicant_id"],
        ),
    )


async def write_announcement(
    database_url: str, round_id: str, stage: AnnouncementStage, out_dir: Path
) -> tuple[Path, Path, int]:
    """Write the stage's announcement as CSV and printable HTML, from the read model."""
    result_column = {"admin": "admin", "skd": "skd_code", "final": "final_code"}[stage.value]
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            f"SELECT * FROM applicants WHERE round_id = $1 AND {result_column} IS NOT NULL",
            round_id,
        )
    finally:
        await conn.close()
    columns = ANNOUNCEMENT_COLUMNS[stage]
    rows = announcement_order(stage, [dict(r) for r in records])
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{round_id}-{stage.value}"
    csv_path, html_path = base.with_suffix(".csv"), base.with_suffix(".html")

    def cell(value) -> str:
        return "" if value is None else str(value)

    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["no", *columns])
        for i, r in enumerate(rows, start=1):
            writer.writerow([i, *(cell(r[c]) for c in columns)])
    title = f"Pengumuman {stage.value.upper()} — {round_id}"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("no", *columns))
    body = "\n".join(
        "<tr>"
        + f"<td>{i}</td>"
        + "".join(f"<td>{html.escape(cell(r[c]))}</td>" for c in columns)
        + "</tr>"
        for i, r in enumerate(rows, start=1)
    )
    html_path.write_text(
        f'<!doctype html>\n<html lang="id"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #444;padding:2px 6px}@media print{th{background:#ddd}}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{len(rows)} peserta; generated "
        f"{html.escape(datetime.now(UTC).isoformat(timespec='seconds'))} from the recorded results.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></body></html>\n",
        encoding="utf-8",
    )
    return csv_path, html_path, len(rows)
