-- Expiring uploads: expires_at as created_at (ISO 8601 UTC text, so text order is time order),
-- NULL for an image kept until deleted. Readers hide a row from its expiry on; the sweeper
-- finds the expired ones through this index, which holds only the images that expire.
ALTER TABLE images ADD COLUMN expires_at TEXT;

CREATE INDEX images_by_expiry ON images (expires_at) WHERE expires_at IS NOT NULL;
