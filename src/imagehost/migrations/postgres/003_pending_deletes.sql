-- Deletes whose objects may still be in the bucket, as migrations/sqlite/002_pending_deletes.sql:
-- remove() adds the filename in the same transaction as it deletes the row, so a row is never
-- gone without its objects remembered; the sweeper (sweeper.py) deletes the objects, then the
-- entry. `since` is the database's clock, the same for every node.
CREATE TABLE pending_deletes (
    filename TEXT PRIMARY KEY,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
