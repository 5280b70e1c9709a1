-- Albums: several images shared under one link. An album's id is as unguessable as an image's
-- and it is listed nowhere; its delete token (kept as a SHA-256 hash) or the admin key changes
-- or deletes it. Deleting an album leaves its images; deleting an image takes it out of every
-- album (ON DELETE CASCADE). As migrations/sqlite/003_albums.sql.
CREATE TABLE albums (
    id TEXT NOT NULL PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    delete_token_hash TEXT NOT NULL
);

CREATE TABLE album_images (
    album_id TEXT NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (album_id, image_id)
);

-- An image's delete finds its album entries without a scan.
CREATE INDEX album_images_by_image ON album_images (image_id);
