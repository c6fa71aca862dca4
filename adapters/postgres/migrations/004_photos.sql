-- Photo evidence. The blobs are written before the row, so a row never points at nothing; the
-- perceptual hash is a bit(64) so the distance to other photos is a bit_count in SQL.

CREATE TABLE photos (
    merchant_id      text NOT NULL REFERENCES merchants (id),
    id               text NOT NULL,
    case_id          text NOT NULL,
    customer_id      text NOT NULL,
    original_sha256  text NOT NULL,
    detected_format  text NOT NULL,
    content_type     text NOT NULL,
    width            integer NOT NULL,
    height           integer NOT NULL,
    size_bytes       integer NOT NULL,
    phash            bit(64) NOT NULL,
    image_key        text NOT NULL,
    thumbnail_key    text NOT NULL,
    matches_case_id  text,
    matches_photo_id text,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
-- The same file sent twice to one case is stored once.
CREATE UNIQUE INDEX photos_once_per_case ON photos (merchant_id, case_id, original_sha256);
CREATE INDEX photos_by_case ON photos (merchant_id, case_id, created_at);
