-- Deduplication: content_hash is the SHA-256 of the stored file (hex), NULL where the store
-- keeps a copy per upload (S3) or for rows from before. Uploads with the same hash share one
-- file (hard links); 'bytes' counts each shared file once: a row adds its size only when no
-- other row has its hash, and takes it away only when it was the last one.
ALTER TABLE images ADD COLUMN content_hash TEXT;

CREATE INDEX images_by_hash ON images (content_hash) WHERE content_hash IS NOT NULL;

DROP TRIGGER images_added;
DROP TRIGGER images_removed;

CREATE TRIGGER images_added AFTER INSERT ON images BEGIN
    UPDATE counters SET value = value + 1 WHERE name IN ('total', 'version');
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes' AND (
        NEW.content_hash IS NULL OR NOT EXISTS (
            SELECT 1 FROM images WHERE content_hash = NEW.content_hash AND seq <> NEW.seq
        )
    );
END;

CREATE TRIGGER images_removed AFTER DELETE ON images BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'total';
    UPDATE counters SET value = value + 1 WHERE name = 'version';
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes' AND (
        OLD.content_hash IS NULL OR NOT EXISTS (
            SELECT 1 FROM images WHERE content_hash = OLD.content_hash
        )
    );
END;
