"""Publications stored straight into the read model, as a publisher stores one, for the tests of
the public pages that read them (nothing here checks a signature)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from client.announcements import AnnouncementStage
from client.publication import Publication, PublishedFormasi, PublishedRow, _insert
from domain.messages import ZERO_SHA256


def listing(
    round_id: str, stage: AnnouncementStage, rows: list[PublishedRow], signature: str = ""
) -> Publication:
    """Publication 1 of the round, its rows in one formasi F1 (quota 1)."""
    return Publication(
        format="casn-pengumuman/1",
        round_id=round_id,
        seq=1,
        stage=stage,
        instansi="Instansi Uji",
        rules_digest="0" * 64,
        published_at=datetime.now(UTC),
        reported_by="operator",
        prev_sha256=ZERO_SHA256,
        corrects=None,
        formasi=[
            PublishedFormasi(
                code="F1", jabatan="Analis", unit="Pusat", education_level="S1", quota=1, rows=rows
            )
        ],
        signature=signature,
    )


async def store(db: asyncpg.Connection | asyncpg.Pool, publication: Publication) -> None:
    """Store the publication in one transaction."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            await store(conn, publication)
        return
    async with db.transaction():
        await _insert(db, publication)
