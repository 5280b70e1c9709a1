-- The bytes of the stored originals, summed, as one more counter (MAX_STORAGE_MB reads it):
-- the same triggers as 001's keep it, so the quota check is one row read, not a scan.
INSERT INTO counters (name, value) VALUES ('bytes', (SELECT coalesce(sum(size), 0) FROM images));

DROP TRIGGER images_added;
DROP TRIGGER images_removed;

CREATE TRIGGER images_added AFTER INSERT ON images BEGIN
    UPDATE counters SET value = value + 1 WHERE name IN ('total', 'version');
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
END;

CREATE TRIGGER images_removed AFTER DELETE ON images BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'total';
    UPDATE counters SET value = value + 1 WHERE name = 'version';
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
END;
