-- Deletes whose objects may still be in the store: remove() adds the filename in the same
-- transaction as it deletes the row, so a row is never gone without its objects remembered;
-- the sweeper (sweeper.py) deletes the objects, then the entry. `since`: ISO 8601 UTC with
-- milliseconds, as created_at (compared as text, which orders these alike).
CREATE TABLE pending_deletes (
    filename TEXT NOT NULL PRIMARY KEY,
    since TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
