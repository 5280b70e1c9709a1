"""The catalog in SQLite (WAL mode): the default, one file in DATA_DIR.

Every worker process opens the same database file; WAL lets readers proceed while one writer
commits. A writer that cannot get the lock within BUSY_TIMEOUT_S gives up with
ServiceUnavailable (503) rather than waiting forever. Schema changes are numbered files in
migrations/sqlite/, applied in order and recorded in `PRAGMA user_version`. The sweeper lock
is an flock on sweeper.lock beside the database file (DATA_DIR): one machine, one lock file.
"""

import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import ServiceUnavailable
from .base import (
    ALBUM_COLUMNS,
    ALBUM_IMAGES,
    BYTES_FROM_ROWS,
    COLUMNS,
    COUNTERS,
    FIELDS,
    LIVE,
    SHARED_ROWS,
    Album,
    AlbumRow,
    Counters,
    ImageGone,
    ImageRow,
    ImportConflict,
    listing_filters,
    migrations,
    timestamp,
    with_seq,
)

_LIVE = LIVE.format(param="?")
_COUNTERS = COUNTERS.format(param="?")

BUSY_TIMEOUT_S = 5.0
BUSY = "The catalog is busy; try again shortly."
POOL_SIZE = 8  # idle connections kept per process
SWEEPER_LOCK_FILE = "sweeper.lock"  # beside the database file, in DATA_DIR


class SQLiteCatalog:
    """A small pool of connections to the catalog database at `path` (a Catalog).

    `migrations_applied`: the migration numbers this instance applied (none when another
    process had already applied them)."""

    def __init__(self, path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._writer = threading.Lock()  # see _transaction
        with self._errors():
            self.migrations_applied = self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._enter_wal(conn)
        # FULL: a commit is on disk before the upload is acknowledged (no acknowledged loss).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (once; it is kept in the file). While several processes
        create the file at the same moment, this can fail at once with "database is locked":
        SQLite does not call the busy handler for it, so it is retried here, within the same
        busy timeout (seen with 4 processes opening a new file together, 7 failures in 60)."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ServiceUnavailable(BUSY) from None
            raise

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            with self._errors():
                yield conn
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        if self._pool.qsize() < POOL_SIZE:
            self._pool.put(conn)
        else:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. This process's writers take turns on a lock first, so only one
        of them at a time waits for SQLite's: its busy handler sleeps in steps of up to 100
        ms, and with every thread of a worker waiting on it the slowest uploads at 32 clients
        took 7-9x the median instead of ~3x (measured 2026-12-03). Waiting for the turn counts
        against the same BUSY_TIMEOUT_S (then 503)."""
        if not self._writer.acquire(timeout=self.busy_timeout_s):
            raise ServiceUnavailable(BUSY)
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
        finally:
            self._writer.release()

    def _migrate(self) -> list[int]:
        conn = self._connect()
        applied = []
        try:
            conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in migrations("sqlite"):
                if number > current:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")
                    applied.append(number)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return applied

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def add(self, row: ImageRow) -> ImageRow:
        """Insert one image; returns it with its assigned `seq`."""
        return self.add_many([row])[0]

    def add_many(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert images in one transaction (the bulk path used by reindex and the benchmark)."""
        fields = [f for f in FIELDS if f != "seq"]
        sql = f"INSERT INTO images ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
        added = []
        with self._transaction() as conn:
            for row in rows:
                cur = conn.execute(sql, [getattr(row, f) for f in fields])
                added.append(with_seq(row, cur.lastrowid))
        return added

    def import_rows(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert rows with their own `seq`, in one transaction; those whose filename is here
        already are skipped. AUTOINCREMENT moves past the largest `seq` inserted by itself."""
        sql = (
            f"INSERT INTO images ({COLUMNS}) VALUES ({', '.join('?' * len(FIELDS))}) "
            "ON CONFLICT (filename) DO NOTHING"
        )
        added = []
        try:
            with self._transaction() as conn:
                for row in rows:
                    if conn.execute(sql, [getattr(row, f) for f in FIELDS]).rowcount:
                        added.append(row)
        except sqlite3.IntegrityError as exc:  # the seq or the id of another image
            raise ImportConflict(str(exc)) from None
        return added

    def get(self, filename: str) -> ImageRow | None:
        with self._connection() as conn:
            found = conn.execute(
                f"SELECT {COLUMNS} FROM images WHERE filename = ? AND {_LIVE}",
                (filename, timestamp()),
            ).fetchone()
        return ImageRow(*found) if found else None

    def get_by_id(self, image_id: str) -> ImageRow | None:
        with self._connection() as conn:
            found = conn.execute(
                f"SELECT {COLUMNS} FROM images WHERE id = ? AND {_LIVE}", (image_id, timestamp())
            )
            row = found.fetchone()
        return ImageRow(*row) if row else None

    def find_by_hash(self, content_hash: str) -> ImageRow | None:
        with self._connection() as conn:
            found = conn.execute(
                f"SELECT {COLUMNS} FROM images WHERE content_hash = ? AND {_LIVE}"
                " ORDER BY seq LIMIT 1",
                (content_hash, timestamp()),
            ).fetchone()
        return ImageRow(*found) if found else None

    def shared_rows(self) -> list[tuple[str, str, int]]:
        with self._connection() as conn:
            return [tuple(r) for r in conn.execute(SHARED_ROWS).fetchall()]

    def recount_bytes(self) -> tuple[int, int]:
        with self._transaction() as conn:
            before = conn.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()[0]
            after = conn.execute(f"SELECT {BYTES_FROM_ROWS}").fetchone()[0]
            conn.execute("UPDATE counters SET value = ? WHERE name = 'bytes'", (after,))
        return before, after

    def remove(self, filename: str) -> bool:
        """Delete the row and record the pending delete in one transaction; False when there
        was no row (someone else deleted it first)."""
        with self._transaction() as conn:
            if conn.execute("DELETE FROM images WHERE filename = ?", (filename,)).rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO pending_deletes (filename) VALUES (?) ON CONFLICT DO NOTHING",
                (filename,),
            )
            return True

    def expire(self, limit: int) -> list[str]:
        """Up to `limit` expired rows moved to the pending deletes, in one transaction."""
        with self._transaction() as conn:
            names = [
                (r[0],)
                for r in conn.execute(
                    "SELECT filename FROM images WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
                    (timestamp(), limit),
                ).fetchall()
            ]
            conn.executemany("DELETE FROM images WHERE filename = ?", names)
            conn.executemany(
                "INSERT INTO pending_deletes (filename) VALUES (?) ON CONFLICT DO NOTHING", names
            )
        return [n for (n,) in names]

    def pending_deletes(self, older_than_s: float, limit: int) -> list[str]:
        """Up to `limit` filenames removed at least `older_than_s` seconds ago, oldest first."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT filename FROM pending_deletes"
                " WHERE since <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)"
                " ORDER BY since, filename LIMIT ?",
                (f"-{float(older_than_s):.3f} seconds", limit),
            ).fetchall()
        return [r[0] for r in rows]

    def forget_deletes(self, filenames: Iterable[str]) -> None:
        """Drop these from the pending deletes, in one transaction."""
        names = [(f,) for f in filenames]
        if names:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM pending_deletes WHERE filename = ?", names)

    @contextlib.contextmanager
    def sweeper_lock(self) -> Iterator[bool]:
        """flock(LOCK_EX | LOCK_NB) on DATA_DIR/sweeper.lock, tried once: every process of
        the machine opens the same file, and the kernel drops the lock of one that dies."""
        fd = os.open(self.path.parent / SWEEPER_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def page(
        self, limit: int, before_seq: int | None = None, query: str | None = None
    ) -> list[ImageRow]:
        """Up to `limit` images, newest first, older than `before_seq`, matching `query`."""
        where, params = _listing(before_seq, query)
        sql = f"SELECT {COLUMNS} FROM images {where} ORDER BY seq DESC LIMIT ?"
        with self._connection() as conn:
            return [ImageRow(*r) for r in conn.execute(sql, (*params, limit)).fetchall()]

    def count(self, query: str) -> int:
        where, params = _listing(None, query)
        with self._connection() as conn:
            return conn.execute(f"SELECT count(*) FROM images {where}", params).fetchone()[0]

    def add_album(self, album: AlbumRow, image_ids: list[str]) -> bool:
        try:
            with self._transaction() as conn:
                conn.execute(
                    f"INSERT INTO albums ({ALBUM_COLUMNS}) VALUES (?, ?, ?, ?)",
                    (album.id, album.title, album.created_at, album.delete_token_hash),
                )
                if _set_album_images(conn, album.id, image_ids) < len(image_ids):
                    raise ImageGone  # rolls the album back
        except ImageGone:
            return False
        return True

    def album(self, album_id: str) -> Album | None:
        with self._connection() as conn:
            found = conn.execute(
                f"SELECT {ALBUM_COLUMNS} FROM albums WHERE id = ?", (album_id,)
            ).fetchone()
            if found is None:
                return None
            rows = conn.execute(ALBUM_IMAGES.format(param="?"), (album_id, timestamp()))
        return Album(AlbumRow(*found), [ImageRow(*r) for r in rows.fetchall()])

    def change_album(
        self, album_id: str, title: str | None = None, image_ids: list[str] | None = None
    ) -> bool:
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM albums WHERE id = ?", (album_id,)).fetchone() is None:
                return False
            if title is not None:
                conn.execute("UPDATE albums SET title = ? WHERE id = ?", (title, album_id))
            if image_ids is not None:
                conn.execute("DELETE FROM album_images WHERE album_id = ?", (album_id,))
                _set_album_images(conn, album_id, image_ids)
        return True

    def remove_album(self, album_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM albums WHERE id = ?", (album_id,)).rowcount > 0

    def counters(self) -> Counters:
        with self._connection() as conn:
            rows = conn.execute(_COUNTERS, (timestamp(),)).fetchall()
        return Counters.from_rows(rows)

    def album_ids(self) -> list[str]:
        with self._connection() as conn:
            found = conn.execute("SELECT id FROM albums ORDER BY created_at, id").fetchall()
        return [r[0] for r in found]

    def filenames(self) -> set[str]:
        with self._connection() as conn:
            return {r[0] for r in conn.execute("SELECT filename FROM images").fetchall()}

    def ping(self) -> None:
        """Raises when the database cannot be read (for /api/health)."""
        with self._connection() as conn:
            conn.execute("SELECT 1 FROM counters LIMIT 1").fetchone()

    def keep_setting(self, name: str, value: str) -> None:
        """None: one machine's catalog keeps no settings (the admin key stays in DATA_DIR)."""
        return None


def _set_album_images(conn: sqlite3.Connection, album_id: str, image_ids: list[str]) -> int:
    """Insert the album's entries in order, only for images that exist; how many."""
    added = 0
    for position, image_id in enumerate(image_ids):
        added += conn.execute(
            "INSERT INTO album_images (album_id, image_id, position)"
            " SELECT ?, id, ? FROM images WHERE id = ?",
            (album_id, position, image_id),
        ).rowcount
    return added


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows about triggers)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def _listing(before_seq: int | None, query: str | None) -> tuple[str, tuple]:
    return listing_filters("?", "LIKE", before_seq, query)
