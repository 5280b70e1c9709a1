"""What every catalog shares: the row and counter types, the Catalog interface, migration files.

Kept apart from the package's __init__ (which imports the implementations) so that sqlite and
postgres can import it without a cycle.
"""

import contextlib
import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Protocol


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
    expires_at: str | None = None  # ISO 8601 UTC, as created_at; None: kept until deleted
    content_hash: str | None = None  # SHA-256 of the stored file; None: not shared (S3, old)


FIELDS = tuple(ImageRow.__dataclass_fields__)  # the images table's columns, in this order
COLUMNS = ", ".join(FIELDS)


@dataclass(frozen=True)
class AlbumRow:
    id: str
    title: str
    created_at: str  # ISO 8601 UTC
    delete_token_hash: str


@dataclass(frozen=True)
class Album:
    """An album and its images, in the album's order (images deleted since are not there)."""

    row: AlbumRow
    images: list[ImageRow]


def timestamp(moment: datetime.datetime | None = None) -> str:
    """A time as the catalog keeps it (created_at, expires_at): ISO 8601 UTC with microseconds
    and a Z, so that comparing the text compares the times."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# An image that has expired is gone for every reader from that moment, whether or not the
# sweeper has removed its row yet; `{param}` is the current timestamp().
LIVE = "(images.expires_at IS NULL OR images.expires_at > {param})"
# Every counter and the expired rows not swept yet, in one read; `{param}`: now.
COUNTERS = (
    "SELECT name, value FROM counters UNION ALL"
    " SELECT 'expired', count(*) FROM images WHERE expires_at <= {param}"
)

# What the 'bytes' counter should hold, from the rows: each shared file once (recount_bytes).
BYTES_FROM_ROWS = (
    "(SELECT coalesce(sum(size), 0) FROM images WHERE content_hash IS NULL)"
    " + (SELECT coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM images"
    " WHERE content_hash IS NOT NULL GROUP BY content_hash) AS files)"
)
# Rows that share their file with another: (content_hash, filename, size), grouped, oldest first.
SHARED_ROWS = (
    "SELECT content_hash, filename, size FROM images WHERE content_hash IN"
    " (SELECT content_hash FROM images WHERE content_hash IS NOT NULL"
    " GROUP BY content_hash HAVING count(*) > 1) ORDER BY content_hash, seq"
)

ALBUM_COLUMNS = ", ".join(AlbumRow.__dataclass_fields__)
# The live images of one album, in its order: ImageRow columns; parameters: album id, now.
ALBUM_IMAGES = (
    f"SELECT {', '.join(f'images.{f}' for f in FIELDS)} FROM album_images"
    " JOIN images ON images.id = album_images.image_id"
    " WHERE album_images.album_id = {param} AND " + LIVE + " ORDER BY album_images.position"
)


def like_pattern(query: str) -> str:
    """A LIKE pattern (ESCAPE '\\') matching `query` anywhere in a name, taken literally."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def listing_filters(
    param: str, like: str, before_seq: int | None, query: str | None
) -> tuple[str, tuple]:
    """The WHERE clause of a listing page and its parameters, in a dialect's placeholder
    (`?`, `%s`) and case-insensitive match (`LIKE`: SQLite folds ASCII letters only; `ILIKE`)."""
    clauses, params = [LIVE.format(param=param)], [timestamp()]
    if before_seq is not None:
        clauses.append(f"seq < {param}")
        params.append(before_seq)
    if query:
        clauses.append(f"original_name {like} {param} ESCAPE '\\'")
        params.append(like_pattern(query))
    return "WHERE " + " AND ".join(clauses), tuple(params)


@dataclass(frozen=True)
class Counters:
    """Kept by triggers in the database, so the listing's ETag and X-Total-Count are one read.

    `total` rows now; `version` +1 for every row added or removed (never goes back); `epoch`
    random at the catalog's creation (a new catalog never repeats an old ETag); `expired`
    rows past their expiry that the sweeper has not removed yet (an indexed count, nearly
    always 0): the listing shows total - expired, and its ETag changes when an image expires;
    `bytes` the sizes of the stored originals summed (MAX_STORAGE_MB counts these).
    """

    total: int
    version: int
    epoch: int
    expired: int = 0
    bytes: int = 0

    @classmethod
    def from_rows(cls, rows) -> "Counters":
        """From the (name, value) rows of COUNTERS."""
        values = dict(rows)
        return cls(*(values[name] for name in cls.__dataclass_fields__))

    @property
    def live(self) -> int:
        return self.total - self.expired


class Catalog(Protocol):
    """The image rows of an installation. Every method may raise errors.ServiceUnavailable
    (503) when the database is busy or unreachable for longer than its timeout; none waits
    forever."""

    def add(self, row: ImageRow) -> ImageRow:
        """Insert one image; returns it with its assigned `seq` (the `seq` given is ignored)."""
        ...

    def add_many(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert images in one transaction (the bulk path used by reindex and the benchmark):
        all of them or, on any error, none."""
        ...

    def import_rows(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """Insert rows of another catalog as they are, `seq` included (migrate-catalog), in one
        transaction; a row whose filename is already here is skipped. Returns the rows added.
        Afterwards new rows get a `seq` past every one imported. Raises ImportConflict when a
        row's `seq` or `id` belongs to another image here (nothing is added then)."""
        ...

    def get(self, filename: str) -> ImageRow | None: ...

    def get_by_id(self, image_id: str) -> ImageRow | None:
        """The image whose id this is (share pages name an image by id, not file name)."""
        ...

    def find_by_hash(self, content_hash: str) -> ImageRow | None:
        """The oldest live image whose stored file has this SHA-256 (deduplication)."""
        ...

    def shared_rows(self) -> list[tuple[str, str, int]]:
        """(content_hash, filename, size) of every row sharing its file, grouped by hash."""
        ...

    def recount_bytes(self) -> tuple[int, int]:
        """Set the 'bytes' counter from the rows; (what it held, what it holds now)."""
        ...

    def remove(self, filename: str) -> bool:
        """Delete the row and, in the same transaction, add its filename to the pending
        deletes (its objects are still to be removed); False when there was no row (someone
        else deleted it first), and nothing is added then."""
        ...

    def expire(self, limit: int) -> list[str]:
        """Remove up to `limit` rows whose expiry has passed, adding them to the pending
        deletes in the same transaction (as remove()); their filenames. Only the holder of
        the sweeper lock calls it, so each expired image is removed once."""
        ...

    def pending_deletes(self, older_than_s: float, limit: int) -> list[str]:
        """Up to `limit` filenames whose row was removed at least `older_than_s` seconds ago
        and whose objects are not known to be gone yet, oldest first."""
        ...

    def forget_deletes(self, filenames: Iterable[str]) -> None:
        """Drop these from the pending deletes (their objects are gone); unknown names are
        ignored."""
        ...

    def sweeper_lock(self) -> contextlib.AbstractContextManager[bool]:
        """The installation-wide sweeper lock, tried without waiting: the block gets True when
        it holds the lock (released at its end), False when another sweeper — in this
        process, another one or on another node — holds it."""
        ...

    def page(
        self, limit: int, before_seq: int | None = None, query: str | None = None
    ) -> list[ImageRow]:
        """Up to `limit` images, newest first, older than `before_seq` when given, and with
        `query` in their original name (case-insensitive for ASCII letters) when given."""
        ...

    def count(self, query: str) -> int:
        """How many images have `query` in their original name (as page() matches; a scan:
        the plain total is counters().total)."""
        ...

    def add_album(self, album: AlbumRow, image_ids: list[str]) -> bool:
        """Insert an album of these images, in this order, in one transaction; False (and
        nothing added) when one of them no longer exists."""
        ...

    def album(self, album_id: str) -> Album | None: ...

    def album_ids(self) -> list[str]:
        """Every album's id, oldest first: for migrate-catalog only (the API lists none)."""
        ...

    def change_album(
        self, album_id: str, title: str | None = None, image_ids: list[str] | None = None
    ) -> bool:
        """Set the title and/or the images (in this order; ids of images deleted meanwhile
        are left out), in one transaction; False when there is no such album."""
        ...

    def remove_album(self, album_id: str) -> bool:
        """Delete the album (never its images); False when there was none."""
        ...

    def counters(self) -> Counters: ...

    def filenames(self) -> set[str]: ...

    def ping(self) -> None:
        """Raises when the database cannot be read (for /api/health)."""
        ...

    def keep_setting(self, name: str, value: str) -> str | None:
        """The value every node reads under `name`: `value` is stored unless one is there
        already (the first node wins), and the stored one returned. None from a catalog of
        one machine (SQLite), which keeps no settings: DATA_DIR does."""
        ...

    def close(self) -> None:
        """Release every connection; the catalog is not used afterwards."""
        ...


class ImageGone(Exception):
    """Inside an implementation: an image of a new album was deleted meanwhile (rolls back)."""


class ImportConflict(Exception):
    """import_rows found a row's `seq` or `id` taken by another image (the message says which):
    the catalog imported into was not empty of other images."""


def with_seq(row: ImageRow, seq: int) -> ImageRow:
    values = {f: getattr(row, f) for f in FIELDS}
    values["seq"] = seq
    return ImageRow(**values)


def migrations(dialect: str) -> list[tuple[int, str]]:
    """(number, SQL script) of migrations/<dialect>/NNN_name.sql, in order."""
    folder = resources.files("imagehost") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)
