-- Values every node must agree on, kept in the shared catalog: the generated admin key when
-- ADMIN_KEY is not set (rights.load_admin_key). The first node to store a value wins
-- (INSERT … ON CONFLICT DO NOTHING); every node then reads that one. SQLite has no such table:
-- one machine keeps them in DATA_DIR.
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
