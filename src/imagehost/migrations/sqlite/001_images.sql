-- The image catalog. `seq` orders the listing (newest first) and is the pagination cursor.
CREATE TABLE images (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL UNIQUE,
    original_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    delete_token_hash TEXT
);

-- Kept by triggers so the listing's X-Total-Count and ETag cost one row read, not a scan.
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) VALUES
    ('total', 0),
    ('version', 0),
    ('epoch', abs(random() % 1000000000));

CREATE TRIGGER images_added AFTER INSERT ON images BEGIN
    UPDATE counters SET value = value + 1 WHERE name IN ('total', 'version');
END;

CREATE TRIGGER images_removed AFTER DELETE ON images BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'total';
    UPDATE counters SET value = value + 1 WHERE name = 'version';
END;
