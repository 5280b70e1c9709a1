-- The bytes of the stored originals, summed, as one more counter (MAX_STORAGE_MB reads it), as
-- migrations/sqlite/005_bytes.sql; the statement triggers of 001 keep it. 'bytes' is locked
-- after 'total' and 'version', the order every writer takes, so no deadlock is added.
INSERT INTO counters (name, value) VALUES ('bytes', (SELECT coalesce(sum(size), 0) FROM images));

CREATE OR REPLACE FUNCTION images_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT := (SELECT count(*) FROM added);
BEGIN
    IF changed > 0 THEN
        UPDATE counters SET value = value + changed WHERE name = 'total';
        UPDATE counters SET value = value + changed WHERE name = 'version';
        UPDATE counters SET value = value + (SELECT sum(size) FROM added) WHERE name = 'bytes';
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
        UPDATE counters SET value = value - (SELECT sum(size) FROM removed) WHERE name = 'bytes';
    END IF;
    RETURN NULL;
END;
$$;
