-- Deduplication, as migrations/sqlite/006_dedupe.sql: content_hash (SHA-256 hex of the stored
-- file, NULL where each upload keeps its own copy), and 'bytes' counting a shared file once.
-- Two transactions adding the same new hash at the same moment may each count it; `imagehost
-- check` recounts 'bytes' from the rows (catalog.recount_bytes).
ALTER TABLE images ADD COLUMN content_hash TEXT;

CREATE INDEX images_by_hash ON images (content_hash) WHERE content_hash IS NOT NULL;

CREATE OR REPLACE FUNCTION images_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT := (SELECT count(*) FROM added);
BEGIN
    IF changed > 0 THEN
        UPDATE counters SET value = value + changed WHERE name = 'total';
        UPDATE counters SET value = value + changed WHERE name = 'version';
        UPDATE counters SET value = value + (
            SELECT coalesce(sum(size), 0) FROM added WHERE content_hash IS NULL
        ) + (
            SELECT coalesce(sum(size), 0) FROM (
                SELECT DISTINCT ON (a.content_hash) a.size FROM added a
                WHERE a.content_hash IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM images i
                    WHERE i.content_hash = a.content_hash
                      AND i.seq NOT IN (SELECT seq FROM added)
                )
            ) AS new_files
        ) WHERE name = 'bytes';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION images_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT := (SELECT count(*) FROM removed);
BEGIN
    IF changed > 0 THEN
        UPDATE counters SET value = value - changed WHERE name = 'total';
        UPDATE counters SET value = value + changed WHERE name = 'version';
        UPDATE counters SET value = value - (
            SELECT coalesce(sum(size), 0) FROM removed WHERE content_hash IS NULL
        ) - (
            SELECT coalesce(sum(size), 0) FROM (
                SELECT DISTINCT ON (r.content_hash) r.size FROM removed r
                WHERE r.content_hash IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM images i WHERE i.content_hash = r.content_hash
                )
            ) AS gone_files
        ) WHERE name = 'bytes';
    END IF;
    RETURN NULL;
END;
$$;
