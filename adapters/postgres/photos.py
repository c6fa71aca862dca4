"""Photo rows: mixed into ``PgRepositories``."""

from __future__ import annotations

import asyncpg

from service.ports import Photo, PhotoMatch

_COLUMNS = (
    "id, case_id, customer_id, original_sha256, detected_format, content_type, width, height, size_bytes,"
    " phash, image_key, thumbnail_key, matches_case_id, matches_photo_id, created_at"
)


# the hash back as the 16 hex digits the service speaks (two's complement keeps all 64 bits)
_SELECT = _COLUMNS.replace(" phash,", " lpad(to_hex(phash::bigint), 16, '0') AS phash,")


def _photo(row: asyncpg.Record) -> Photo:
    return Photo(**dict(row))


class PgPhotos:
    conn: asyncpg.Connection

    async def add_photo(self, merchant_id: str, photo: Photo) -> Photo | None:
        """The new row, or None when this case already has the same file (stored once)."""
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO photos (merchant_id, {_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ('x' || $11)::bit(64), $12, $13, $14, $15, $16)
            ON CONFLICT (merchant_id, case_id, original_sha256) DO NOTHING
            RETURNING {_SELECT}
            """,
            merchant_id,
            photo.id,
            photo.case_id,
            photo.customer_id,
            photo.original_sha256,
            photo.detected_format,
            photo.content_type,
            photo.width,
            photo.height,
            photo.size_bytes,
            photo.phash,
            photo.image_key,
            photo.thumbnail_key,
            photo.matches_case_id,
            photo.matches_photo_id,
            photo.created_at,
        )
        return _photo(row) if row else None

    async def find_photo_by_sha(self, merchant_id: str, case_id: str, sha256: str) -> Photo | None:
        row = await self.conn.fetchrow(
            f"SELECT {_SELECT} FROM photos WHERE merchant_id = $1 AND case_id = $2 AND original_sha256 = $3",
            merchant_id,
            case_id,
            sha256,
        )
        return _photo(row) if row else None

    async def get_photo(self, merchant_id: str, case_id: str, photo_id: str) -> Photo | None:
        row = await self.conn.fetchrow(
            f"SELECT {_SELECT} FROM photos WHERE merchant_id = $1 AND case_id = $2 AND id = $3",
            merchant_id,
            case_id,
            photo_id,
        )
        return _photo(row) if row else None

    async def case_photos(self, merchant_id: str, case_ids: list[str]) -> list[Photo]:
        rows = await self.conn.fetch(
            f"SELECT {_SELECT} FROM photos WHERE merchant_id = $1 AND case_id = ANY($2::text[]) ORDER BY created_at, id",
            merchant_id,
            case_ids,
        )
        return [_photo(row) for row in rows]

    async def count_case_photos(self, merchant_id: str, case_id: str) -> int:
        return await self.conn.fetchval(
            "SELECT count(*) FROM photos WHERE merchant_id = $1 AND case_id = $2", merchant_id, case_id
        )

    async def similar_photo_elsewhere(
        self, merchant_id: str, customer_id: str, phash: str, max_distance: int
    ) -> PhotoMatch | None:
        """The closest photo of another customer's case that looks the same (a reused picture)."""
        row = await self.conn.fetchrow(
            """
            SELECT case_id, id, bit_count(phash # ('x' || $3)::bit(64)) AS distance
              FROM photos
             WHERE merchant_id = $1 AND customer_id <> $2
               AND bit_count(phash # ('x' || $3)::bit(64)) <= $4
             ORDER BY distance, created_at LIMIT 1
            """,
            merchant_id,
            customer_id,
            phash,
            max_distance,
        )
        return PhotoMatch(case_id=row["case_id"], photo_id=row["id"], distance=row["distance"]) if row else None
