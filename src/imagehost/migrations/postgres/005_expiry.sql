-- Expiring uploads, as migrations/sqlite/004_expiry.sql: expires_at as created_at (ISO 8601
-- UTC text), NULL for an image kept until deleted; the index holds only the images that expire.
ALTER TABLE images ADD COLUMN expires_at TEXT;

CREATE INDEX images_by_expiry ON images (expires_at) WHERE expires_at IS NOT NULL;
