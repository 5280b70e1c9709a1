"""The image catalog in SQLite (WAL mode), and the only module that writes SQL.

Every worker process opens the same database file; WAL lets readers proceed while one writer
commits. A writer that cannot get the lock within BUSY_TIMEOUT_S gives up with
ServiceUnavailable (503) rather than waiting forever. Schema changes are numbered files in
migrations/, applied in order and recorded in `PRAGMA user_version`.
"""

import contextlib
import queue
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ServiceUnavailable

BUSY_TIMEOUT_S = 5.0
POOL_SIZE = 8
FILE_NAME = "catalog.sqlite3"  # in DATA_DIR


@dataclass(frozen=True)
class ImageRow:
    seq: int
    id: str
    filename: str
    original_name: str
    content_type: str
    size: int  # bytes of the stored file
    width: int  # pixels, after orientation
    height: int
    created_at: str  # ISO 8601 UTC
    delete_token_hash: str | None


_COLUMNS = ", ".join(ImageRow.__dataclass_fields__)


@dataclass(frozen=True)
class Counters:
    total: int
    version: int
    epoch: int


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("imagehost") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


class Catalog:
    """A small pool of connections to the catalog database at `path`."""

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> "Catalog":
        """The catalog of an installation: DATA_DIR/catalog.sqlite3."""
        return cls(Path(data_dir) / FILE_NAME)

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        with self._errors():
            self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the upload is acknowledged (no acknowledged loss).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ServiceUnavailable("The catalog is busy; try again shortly.") from None
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
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in _migrations():
                if number > current:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        finally:
            conn.close()

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
        fields = [f for f in ImageRow.__dataclass_fields__ if f != "seq"]
        sql = f"INSERT INTO images ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})"
        added = []
        with self._transaction() as conn:
            for row in rows:
                cur = conn.execute(sql, [getattr(row, f) for f in fields])
                added.append(_with_seq(row, cur.lastrowid))
        return added

    def get(self, filename: str) -> ImageRow | None:
        with self._connection() as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM images WHERE filename = ?", (filename,)
            ).fetchone()
        return ImageRow(*found) if found else None

    def remove(self, filename: str) -> bool:
        """Delete the row; False when there was none (someone else deleted it first)."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM images WHERE filename = ?", (filename,)).rowcount > 0

    def page(self, limit: int, before_seq: int | None = None) -> list[ImageRow]:
        """Up to `limit` images, newest first, older than `before_seq` when given."""
        with self._connection() as conn:
            if before_seq is None:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM images ORDER BY seq DESC LIMIT ?", (limit,)
                )
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM images WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                    (before_seq, limit),
                )
            return [ImageRow(*r) for r in rows.fetchall()]

    def counters(self) -> Counters:
        with self._connection() as conn:
            values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return Counters(values["total"], values["version"], values["epoch"])

    def filenames(self) -> set[str]:
        with self._connection() as conn:
            return {r[0] for r in conn.execute("SELECT filename FROM images").fetchall()}

    def ping(self) -> None:
        """Raises when the database cannot be read (for /api/health)."""
        with self._connection() as conn:
            conn.execute("SELECT 1 FROM counters LIMIT 1").fetchone()


def _with_seq(row: ImageRow, seq: int) -> ImageRow:
    values = {f: getattr(row, f) for f in ImageRow.__dataclass_fields__}
    values["seq"] = seq
    return ImageRow(**values)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows about triggers)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]
