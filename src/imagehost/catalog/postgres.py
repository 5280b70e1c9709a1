"""The catalog in PostgreSQL (DATABASE_URL): the only module that imports psycopg.

Each process keeps a psycopg_pool.ConnectionPool of up to POOL_SIZE connections (as many as the
SQLite catalog keeps), shared by its request threads; every statement runs on its own in
autocommit, so no transaction outlives a call. Nothing waits forever — each of these ends in
errors.ServiceUnavailable (503):

- STATEMENT_TIMEOUT_S, the server's statement_timeout: a statement blocked by a lock or slow.
  The same 5 s as SQLite's busy timeout, so both catalogs fail alike under a stuck writer.
- POOL_TIMEOUT_S: a request waiting for a free connection (all busy, or the database down and
  no new connection can be made). A request waits at most POOL_TIMEOUT_S + STATEMENT_TIMEOUT_S.
- CONNECT_TIMEOUT_S: a host that does not answer (libpq's connect_timeout).
- a server that vanished without closing the connection: TCP keepalives and tcp_user_timeout
  notice it within about 20 s (DEAD_PEER_S), rather than the kernel's default of ~2 hours.

Connections the server closed while idle (a restart, a failover) are found before use with a
non-blocking poll of the socket and replaced. While the database is down the pool retries in the
background with backoff and gives up after RECONNECT_TIMEOUT_S; the next request then tries
afresh, so a database that comes back is used again within a few seconds, without a restart.

Migrations (migrations/postgres/NNN_name.sql) run at start in one transaction under
pg_advisory_xact_lock(MIGRATION_LOCK): nodes starting together queue on the lock and each
migration is applied exactly once; `schema_migrations` has one row per applied number.
A database that cannot be reached or migrated stops start-up with errors.ConfigError: one line
naming DATABASE_URL and the server, never the password. The `settings` table keeps what every
node must agree on (the generated admin key: keep_setting, first node wins). The sweeper lock
is pg_try_advisory_lock(SWEEPER_LOCK) on a pooled connection held for the sweep: one sweeper
in the whole installation, and a node that dies releases it with its session.
"""

import contextlib
import logging
import select
from collections.abc import Iterable, Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from ..errors import ConfigError, ServiceUnavailable
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

log = logging.getLogger("imagehost.catalog")
_LIVE = LIVE.format(param="%s")
_COUNTERS = COUNTERS.format(param="%s")

STATEMENT_TIMEOUT_S = 5.0
POOL_TIMEOUT_S = 5.0
POOL_SIZE = 8  # connections per process at most; one is opened at start, the rest on demand
CONNECT_TIMEOUT_S = 5  # libpq takes whole seconds (and at least 2)
DEAD_PEER_S = 20  # keepalives: 10 s idle, then 2 probes 5 s apart; tcp_user_timeout the same
# psycopg_pool's default (300 s) would let its backoff grow to minutes during a long outage.
RECONNECT_TIMEOUT_S = 10.0
MIGRATION_TIMEOUT_S = 60.0  # waiting for another node's migration, and running ours
# Idle in a transaction (a frozen process holding row locks) this long: the server ends it.
IDLE_IN_TRANSACTION_S = 30
# migrate-catalog's one transaction: 100,000 rows take a few seconds, so 5 s would be tight.
IMPORT_TIMEOUT_S = 600
MIGRATION_LOCK = 0x696D616765686F  # "imageho": the advisory lock key, the same on every node
SWEEPER_LOCK = 0x696D6167657377  # "imagesw": the sweeper's, the same on every node

_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
_ARRAY_TYPES = {
    "seq": "bigint",
    "size": "bigint",
    "width": "integer",
    "height": "integer",
}  # else text
_INSERTED = [f for f in FIELDS if f != "seq"]
# One statement for any number of rows: the columns as arrays, unnested in order (ORDINALITY),
# so seq follows the order given, as it does in SQLite.
_INSERT = (
    f"INSERT INTO images ({', '.join(_INSERTED)}) "
    f"SELECT {', '.join(_INSERTED)} FROM unnest("
    + ", ".join(f"%s::{_ARRAY_TYPES.get(f, 'text')}[]" for f in _INSERTED)
    + f") WITH ORDINALITY AS given({', '.join(_INSERTED)}, n) ORDER BY n "
    "RETURNING filename, seq"
)
# migrate-catalog: every column, seq included; a filename already here is skipped.
_IMPORT = (
    f"INSERT INTO images ({COLUMNS}) SELECT {COLUMNS} FROM unnest("
    + ", ".join(f"%s::{_ARRAY_TYPES.get(f, 'text')}[]" for f in FIELDS)
    + f") AS given({COLUMNS}) ON CONFLICT (filename) DO NOTHING RETURNING filename"
)
# Past the largest seq, never back: a sequence already further (rows deleted) stays there.
_SEQUENCE = "pg_get_serial_sequence('images', 'seq')"
_SEQUENCE_PAST_ROWS = (
    f"SELECT setval({_SEQUENCE}, max(seq)) FROM images "
    f"HAVING max(seq) > coalesce(pg_sequence_last_value({_SEQUENCE}::regclass), 0)"
)


class PostgresCatalog:
    """The catalog in the PostgreSQL database at `url` (a Catalog); applies migrations first.

    `migrations_applied`: the migration numbers this instance applied (none when another node
    had already applied them). Raises errors.ConfigError when the database cannot be reached
    or migrated.
    """

    def __init__(
        self,
        url: str,
        *,
        statement_timeout_s: float = STATEMENT_TIMEOUT_S,
        pool_timeout_s: float = POOL_TIMEOUT_S,
        pool_size: int = POOL_SIZE,
    ):
        self.conninfo, self.where = _conninfo(url, statement_timeout_s)
        self.migrations_applied = _migrate(self.conninfo, self.where)
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout_s,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            kwargs={"autocommit": True},
            name="catalog",
            open=True,
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            for _attempt in range(2):
                with self._pool.connection() as conn:
                    if _closed_by_server(conn):
                        conn.close()  # the pool replaces a closed connection
                        # After a restart every idle connection is dead: sweep them in one go.
                        self._pool.check()
                        continue
                    yield conn
                    return
            raise psycopg.OperationalError("no live connection")
        except psycopg.OperationalError as exc:  # also PoolTimeout and QueryCanceled
            log.warning("catalog unavailable: %s: %s", type(exc).__name__, _first_line(exc))
            raise ServiceUnavailable("The catalog is busy or unreachable; try again.") from None

    def _rows(self, query: str, params: tuple = ()) -> list[tuple]:
        with self._connection() as conn:
            return conn.execute(query, params).fetchall()

    def _execute(self, query: str, params: tuple = ()) -> None:
        with self._connection() as conn:
            conn.execute(query, params)

    def close(self) -> None:
        self._pool.close()

    def add(self, row: ImageRow) -> ImageRow:
        """Insert one image; returns it with its assigned `seq`."""
        return self.add_many([row])[0]

    def add_many(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert images in one statement, so in one transaction (the bulk path)."""
        rows = list(rows)
        if not rows:
            return []
        columns = tuple([getattr(row, f) for row in rows] for f in _INSERTED)
        seqs = dict(self._rows(_INSERT, columns))
        return [with_seq(row, seqs[row.filename]) for row in rows]

    def import_rows(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert rows with their own `seq` in one transaction, under a table lock (no upload
        takes a seq meanwhile); those whose filename is here already are skipped. The identity
        sequence is then set past the largest `seq`; the triggers count the rows added (total
        and version), and the epoch stays this catalog's own."""
        rows = list(rows)
        columns = tuple([getattr(row, f) for row in rows] for f in FIELDS)
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {IMPORT_TIMEOUT_S * 1000}")
                conn.execute("LOCK TABLE images IN SHARE ROW EXCLUSIVE MODE")
                added = {r[0] for r in conn.execute(_IMPORT, columns).fetchall()}
                conn.execute(_SEQUENCE_PAST_ROWS)
        except psycopg.errors.UniqueViolation as exc:  # the seq or the id of another image
            detail = exc.diag.message_detail or _first_line(exc)
            raise ImportConflict(detail) from None
        return [row for row in rows if row.filename in added]

    def get(self, filename: str) -> ImageRow | None:
        found = self._rows(
            f"SELECT {COLUMNS} FROM images WHERE filename = %s AND {_LIVE}",
            (filename, timestamp()),
        )
        return ImageRow(*found[0]) if found else None

    def get_by_id(self, image_id: str) -> ImageRow | None:
        found = self._rows(
            f"SELECT {COLUMNS} FROM images WHERE id = %s AND {_LIVE}", (image_id, timestamp())
        )
        return ImageRow(*found[0]) if found else None

    def find_by_hash(self, content_hash: str) -> ImageRow | None:
        found = self._rows(
            f"SELECT {COLUMNS} FROM images WHERE content_hash = %s AND {_LIVE}"
            " ORDER BY seq LIMIT 1",
            (content_hash, timestamp()),
        )
        return ImageRow(*found[0]) if found else None

    def shared_rows(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self._rows(SHARED_ROWS)]

    def recount_bytes(self) -> tuple[int, int]:
        with self._connection() as conn, conn.transaction():
            before = conn.execute(
                "SELECT value FROM counters WHERE name = 'bytes' FOR UPDATE"
            ).fetchone()[0]
            after = conn.execute(f"SELECT {BYTES_FROM_ROWS}").fetchone()[0]
            conn.execute("UPDATE counters SET value = %s WHERE name = 'bytes'", (after,))
        return before, after

    def expire(self, limit: int) -> list[str]:
        """Up to `limit` expired rows moved to the pending deletes, in one statement."""
        return [
            r[0]
            for r in self._rows(
                "WITH gone AS (DELETE FROM images WHERE filename IN (SELECT filename FROM images"
                " WHERE expires_at <= %s ORDER BY expires_at LIMIT %s) RETURNING filename)"
                " INSERT INTO pending_deletes (filename) SELECT filename FROM gone"
                " ON CONFLICT DO NOTHING RETURNING filename",
                (timestamp(), limit),
            )
        ]

    def remove(self, filename: str) -> bool:
        """Delete the row and record the pending delete in one transaction; False when there
        was no row (someone else deleted it first)."""
        with self._connection() as conn, conn.transaction():
            gone = conn.execute("DELETE FROM images WHERE filename = %s", (filename,)).rowcount
            if gone:
                conn.execute(
                    "INSERT INTO pending_deletes (filename) VALUES (%s) ON CONFLICT DO NOTHING",
                    (filename,),
                )
            return gone > 0

    def pending_deletes(self, older_than_s: float, limit: int) -> list[str]:
        """Up to `limit` filenames removed at least `older_than_s` seconds ago (by the
        database's clock), oldest first."""
        rows = self._rows(
            "SELECT filename FROM pending_deletes WHERE since <= now() - make_interval(secs => %s)"
            " ORDER BY since, filename LIMIT %s",
            (float(older_than_s), limit),
        )
        return [r[0] for r in rows]

    def forget_deletes(self, filenames: Iterable[str]) -> None:
        """Drop these from the pending deletes, in one statement."""
        names = list(filenames)
        if names:
            self._execute("DELETE FROM pending_deletes WHERE filename = ANY(%s)", (names,))

    @contextlib.contextmanager
    def sweeper_lock(self) -> Iterator[bool]:
        """pg_try_advisory_lock(SWEEPER_LOCK), tried once, on a connection kept for the block
        (a session lock belongs to its connection); unlocked at the end. A connection that
        cannot unlock is closed rather than pooled: its session ends, and the lock with it."""
        with self._connection() as conn:
            found = conn.execute("SELECT pg_try_advisory_lock(%s)", (SWEEPER_LOCK,)).fetchone()
            if not found[0]:
                yield False
                return
            try:
                yield True
            finally:
                try:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (SWEEPER_LOCK,))
                except psycopg.Error as exc:
                    log.warning("sweeper lock: unlock failed (%s); closing", _first_line(exc))
                    conn.close()

    def page(
        self, limit: int, before_seq: int | None = None, query: str | None = None
    ) -> list[ImageRow]:
        """Up to `limit` images, newest first, older than `before_seq`, matching `query`."""
        where, params = _listing(before_seq, query)
        sql = f"SELECT {COLUMNS} FROM images {where} ORDER BY seq DESC LIMIT %s"
        return [ImageRow(*r) for r in self._rows(sql, (*params, limit))]

    def count(self, query: str) -> int:
        where, params = _listing(None, query)
        return self._rows(f"SELECT count(*) FROM images {where}", params)[0][0]

    def add_album(self, album: AlbumRow, image_ids: list[str]) -> bool:
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(
                    f"INSERT INTO albums ({ALBUM_COLUMNS}) VALUES (%s, %s, %s, %s)",
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
                f"SELECT {ALBUM_COLUMNS} FROM albums WHERE id = %s", (album_id,)
            ).fetchone()
            if found is None:
                return None
            rows = conn.execute(ALBUM_IMAGES.format(param="%s"), (album_id, timestamp())).fetchall()
        return Album(AlbumRow(*found), [ImageRow(*r) for r in rows])

    def change_album(
        self, album_id: str, title: str | None = None, image_ids: list[str] | None = None
    ) -> bool:
        with self._connection() as conn, conn.transaction():
            # FOR UPDATE: two changes of one album at once apply one after the other.
            found = conn.execute(
                "SELECT 1 FROM albums WHERE id = %s FOR UPDATE", (album_id,)
            ).fetchone()
            if found is None:
                return False
            if title is not None:
                conn.execute("UPDATE albums SET title = %s WHERE id = %s", (title, album_id))
            if image_ids is not None:
                conn.execute("DELETE FROM album_images WHERE album_id = %s", (album_id,))
                _set_album_images(conn, album_id, image_ids)
        return True

    def remove_album(self, album_id: str) -> bool:
        with self._connection() as conn:
            return conn.execute("DELETE FROM albums WHERE id = %s", (album_id,)).rowcount > 0

    def counters(self) -> Counters:
        return Counters.from_rows(self._rows(_COUNTERS, (timestamp(),)))

    def album_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM albums ORDER BY created_at, id")]

    def filenames(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT filename FROM images")}

    def ping(self) -> None:
        """Raises when the database cannot be read (for /api/health)."""
        self._rows("SELECT 1 FROM counters LIMIT 1")

    def keep_setting(self, name: str, value: str) -> str:
        """The value kept in the `settings` table under `name`; `value` is stored first when
        there is none. Two statements, not one: a single statement's snapshot would miss the
        row of a node that committed it while this INSERT waited for it."""
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (name, value),
            )
            return conn.execute("SELECT value FROM settings WHERE name = %s", (name,)).fetchone()[0]


def _set_album_images(conn: psycopg.Connection, album_id: str, image_ids: list[str]) -> int:
    """Insert the album's entries in order, only for images that exist; how many."""
    inserted = conn.execute(
        "INSERT INTO album_images (album_id, image_id, position)"
        " SELECT %s, images.id, given.n FROM unnest(%s::text[]) WITH ORDINALITY AS given(id, n)"
        " JOIN images ON images.id = given.id",
        (album_id, image_ids),
    )
    return inserted.rowcount


def _conninfo(url: str, statement_timeout_s: float) -> tuple[str, str]:
    """(libpq connection string with our timeouts, "user@host:port/db" for messages).

    Settings already in the URL win (a DBA may want a longer connect_timeout)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigError("DATABASE_URL: is not a valid PostgreSQL URL") from None
    where = (
        f"{params.get('user', '')}@{params.get('host') or 'localhost'}:"
        f"{params.get('port') or 5432}/{params.get('dbname', '')}"
    )
    ours = (
        f"-c statement_timeout={int(statement_timeout_s * 1000)} "
        f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S * 1000}"
    )
    params["options"] = f"{ours} {params.get('options', '')}".strip()  # a later -c wins
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    params.setdefault("application_name", "imagehost")
    params.setdefault("keepalives", "1")
    params.setdefault("keepalives_idle", "10")
    params.setdefault("keepalives_interval", "5")
    params.setdefault("keepalives_count", "2")
    params.setdefault("tcp_user_timeout", str(DEAD_PEER_S * 1000))
    return make_conninfo(**params), where


def _migrate(conninfo: str, where: str) -> list[int]:
    """Apply the migrations not applied yet; the numbers applied. Raises ConfigError."""
    applied = []
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(MIGRATION_TIMEOUT_S * 1000)}")
            with conn.transaction():
                # Released at COMMIT: the next node in the queue then finds nothing to do.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(_BOOKKEEPING)
                found = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
                current = found[0] or 0
                for number, script in migrations("postgres"):
                    if number > current:
                        conn.execute(script)  # no parameters: several statements are fine
                        conn.execute(
                            "INSERT INTO schema_migrations (version) VALUES (%s)", (number,)
                        )
                        applied.append(number)
    except psycopg.OperationalError as exc:
        raise ConfigError(f"DATABASE_URL: cannot use {where}: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise ConfigError(f"DATABASE_URL: migrating {where} failed: {_first_line(exc)}") from None
    return applied


def _closed_by_server(conn: psycopg.Connection) -> bool:
    """An idle connection with something to read has been closed by the server (a restart,
    an admin's pg_terminate_backend): it would fail at the next statement."""
    poller = select.poll()  # not select.select: a busy worker's descriptors may pass 1024
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _first_line(exc: Exception) -> str:
    """libpq messages span lines (hints, "Is the server running…"); a start-up error is one."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "unknown")


def _listing(before_seq: int | None, query: str | None) -> tuple[str, tuple]:
    return listing_filters("%s", "ILIKE", before_seq, query)
