"""Moving an installation: the image folder into the bucket, the SQLite catalog into PostgreSQL.

`imagehost migrate-store` copies every original and thumbnail of a local folder (IMAGES_DIR, or
--from-dir) into the bucket of the S3_* settings through the S3 store's own commit, so objects
carry the Content-Type and Cache-Control an upload gives them. `imagehost migrate-catalog`
copies every row of a SQLite catalog (DATA_DIR/catalog.sqlite3, or --from) into the PostgreSQL
catalog of DATABASE_URL, `seq` included, in one transaction, with the admin key kept beside it.

Both only add what is missing, so either can be run again after a failure or a kill: the second
run copies the rest and a run with nothing left to do changes nothing. Neither deletes or
overwrites anything at the target; both verify what they wrote. Run them while nothing writes
to the old installation (README, "Moving an installation").
"""

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import images, rights
from .catalog import FILE_NAME, Catalog, ImageRow, ImportConflict, open_catalog
from .catalog.base import Album
from .catalog.sqlite import SQLiteCatalog
from .config import Settings
from .errors import ApiError, ConfigError, ServiceUnavailable
from .store import LocalStore, ObjectExists, Store, open_store
from .store.keys import thumbnail_key, thumbnail_name

# Images copied at once: each costs two PUTs, a HEAD and a GET of a few ms, mostly waiting
# (obstore releases the GIL). Measured with 2,000 small images to SeaweedFS on the same 2 cores:
# 1 job 14.6 s, 8 jobs 6.4–13 s, 16 jobs 5.2–9.2 s (the server's own noise dominates); a bucket
# across a network gains more from parallel requests, and 8 stays polite to a shared server.
COPY_JOBS = 8
READ_BATCH = 1000  # rows read from a catalog at a time


@dataclass
class Tally:
    """What a migration did, in objects (migrate-store) or rows (migrate-catalog)."""

    copied: int = 0
    skipped: int = 0  # already at the target, the same
    failed: list[str] = field(default_factory=list)  # "name: reason", one per object or row

    def add(self, other: "Tally") -> None:
        self.copied += other.copied
        self.skipped += other.skipped
        self.failed += other.failed

    def counts(self) -> str:
        return (
            f"{self.copied} copied, {self.skipped} skipped (already there), "
            f"{len(self.failed)} failed"
        )


@dataclass
class StoreReport:
    tally: Tally
    images: int  # originals found in the folder
    source: Path
    bucket: str
    unpaired_thumbnails: int  # in the folder's thumbs/ without an original: not copied

    @property
    def ok(self) -> bool:
        return not self.tally.failed

    def problems(self) -> list[str]:
        return [f"migrate-store: failed: {reason}" for reason in self.tally.failed]

    def summary(self) -> str:
        line = (
            f"migrate-store: {self.tally.counts()}: the originals and thumbnails of "
            f"{self.images} images in {self.source}, to bucket {self.bucket!r}"
        )
        if self.unpaired_thumbnails:
            line += f"; {self.unpaired_thumbnails} thumbnails without an original not copied"
        return line


@dataclass
class CatalogReport:
    tally: Tally
    source: Path
    total: int  # rows in PostgreSQL afterwards
    version: int
    epoch: int
    admin_key: str  # what became of the source's admin key, in words
    albums: Tally  # the source's albums: copied, skipped (already there), failed

    @property
    def ok(self) -> bool:
        return not self.tally.failed and not self.albums.failed

    def problems(self) -> list[str]:
        failed = self.tally.failed + self.albums.failed
        return [f"migrate-catalog: failed: {reason}" for reason in failed]

    def summary(self) -> str:
        return (
            f"migrate-catalog: {self.tally.counts()}: the rows of {self.source}; PostgreSQL "
            f"now has {self.total} images (version {self.version}, its own epoch "
            f"{self.epoch}); albums: {self.albums.counts()}; admin key: {self.admin_key}"
        )


# --- migrate-store -----------------------------------------------------------------------------


def migrate_store(
    settings: Settings, from_dir: Path | None = None, jobs: int = COPY_JOBS
) -> StoreReport:
    """Copy the originals and thumbnails of the folder `from_dir` (default IMAGES_DIR) into the
    bucket of the S3 settings. Skips objects already there with the same size, verifies the
    size of every object written, never overwrites an original. A local original without its
    thumbnail gets a new one. Raises ConfigError when STORAGE is not s3, the folder is missing
    or the bucket does not answer at start; any later failure is one line in the report."""
    if settings.storage != "s3":
        raise ConfigError(
            "STORAGE: migrate-store copies into the bucket of the S3_* settings, so it needs "
            "STORAGE=s3 (the source is --from-dir, default IMAGES_DIR)"
        )
    folder = Path(from_dir or settings.images_dir)
    if not folder.is_dir():
        what = "--from-dir" if from_dir else "IMAGES_DIR"
        raise ConfigError(f"{what}={str(folder)!r}: no such folder to copy from")
    source, target = LocalStore(folder), open_store(settings)
    # Two listings up front: on a fresh bucket nothing needs a request of its own to be skipped.
    in_bucket, thumbs_in_bucket = target.images(), target.thumbnails()
    originals = source.image_files()
    stop = threading.Event()  # the bucket stopped answering: do not wait on it for every image

    def copy(filename: str) -> Tally:
        if stop.is_set():
            return Tally(failed=[f"{filename}: not tried, the bucket stopped answering"])
        try:
            return copy_image(source, target, filename, in_bucket, thumbs_in_bucket)
        except ServiceUnavailable:
            stop.set()
            return Tally(failed=[f"{filename}: the bucket did not answer"])

    tally = Tally()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done in pool.map(copy, originals):
            tally.add(done)
    live = {thumbnail_name(f) for f in originals}
    return StoreReport(
        tally=tally,
        images=len(originals),
        source=source.root,
        bucket=settings.s3_bucket,
        unpaired_thumbnails=len(set(source.thumbnail_names()) - live),
    )


def copy_image(
    source: LocalStore,
    target: Store,
    filename: str,
    in_bucket: dict[str, float],
    thumbs_in_bucket: dict[str, float],
) -> Tally:
    """One original and its thumbnail; ServiceUnavailable passes (the bucket is down)."""
    thumb_name, thumb_key = thumbnail_name(filename), thumbnail_key(filename)
    tally = Tally()
    with contextlib.ExitStack() as files:
        try:
            image = files.enter_context(_staged(target, source.image_path(filename)))
            thumb = files.enter_context(_thumbnail(target, source, filename))
        except (OSError, ApiError) as exc:  # unreadable, or no thumbnail and not decodable
            return Tally(failed=[f"{filename}: cannot read it here ({why(exc)})"])
        image_size, thumb_size = image.stat().st_size, thumb.stat().st_size
        there = _image_size(target, filename) if filename in in_bucket else None
        thumb_there = _thumb_size(target, thumb_name) if thumb_name in thumbs_in_bucket else None
        if there is None:
            if thumb_there is not None:
                # Left by a run killed between the two PUTs: commit writes both again, the
                # thumbnail first, so an original is never visible without it.
                target.delete_thumbnail(thumb_name)
            try:
                target.commit(image, thumb.read_bytes(), filename)
            except ObjectExists as exc:  # something else wrote it since the listing
                return Tally(failed=[f"{exc.key}: appeared in the bucket meanwhile; run again"])
            tally.add(_verified(filename, image_size, _image_size(target, filename)))
            tally.add(_verified(thumb_key, thumb_size, _thumb_size(target, thumb_name)))
            return tally
        if there == image_size:
            tally.skipped += 1
        else:
            tally.failed.append(
                f"{filename}: the bucket holds another object of {there} bytes under this "
                f"name (here {image_size}); not overwritten"
            )
        if thumb_there == thumb_size:
            tally.skipped += 1
        else:  # missing, or not ours: thumbnails are made from the original, replacing is safe
            target.put_thumbnail(thumb, filename)
            tally.add(_verified(thumb_key, thumb_size, _thumb_size(target, thumb_name)))
    return tally


@contextlib.contextmanager
def _staged(target: Store, path: Path) -> Iterator[Path]:
    """`path` as a temporary file of the target store: a store may consume the files it
    commits (a local one renames them), and the source folder must stay as it is."""
    suffix = path.name.rsplit(".", 1)[-1]
    with target.scratch(suffix) as staged:
        try:
            os.link(path, staged)  # the same disk: no copy
        except OSError:
            shutil.copyfile(path, staged)
        yield staged


@contextlib.contextmanager
def _thumbnail(target: Store, source: LocalStore, filename: str) -> Iterator[Path]:
    """The folder's thumbnail of `filename`, or one made now when it has none (as `imagehost
    check` would)."""
    local = source.thumbnail_path(filename)
    if local.is_file():
        with _staged(target, local) as staged:
            yield staged
        return
    with target.scratch("thumb") as made:
        images.make_thumbnail(source.image_path(filename), made)
        yield made


def _image_size(target: Store, filename: str) -> int | None:
    try:
        return target.info(filename).size
    except FileNotFoundError:
        return None


def _thumb_size(target: Store, thumb_name: str) -> int | None:
    opened = target.open_thumbnail(thumb_name)
    if opened is None:
        return None
    opened.close()
    return opened.size


def _verified(key: str, expected: int, found: int | None) -> Tally:
    if found == expected:
        return Tally(copied=1)
    return Tally(failed=[f"{key}: wrote {expected} bytes, the bucket holds {found}"])


def why(exc: OSError | ApiError) -> str:
    if isinstance(exc, ApiError):
        return exc.detail
    return exc.strerror or type(exc).__name__


# --- migrate-catalog ---------------------------------------------------------------------------


def migrate_catalog(settings: Settings, from_file: Path | None = None) -> CatalogReport:
    """Copy every row of the SQLite catalog `from_file` (default DATA_DIR/catalog.sqlite3) into
    the PostgreSQL catalog of DATABASE_URL in one transaction, `seq` and everything else kept;
    rows already there are skipped, then every source row is compared with what PostgreSQL
    holds. The admin key in the source's folder is stored in PostgreSQL unless it keeps one
    already (the first key stored wins, as between nodes). Raises ConfigError when DATABASE_URL
    is unset or unreachable, or the source file is missing."""
    if not settings.database_url:
        raise ConfigError(
            "DATABASE_URL: migrate-catalog copies into PostgreSQL, so it needs DATABASE_URL "
            "(the source is --from, default DATA_DIR/catalog.sqlite3)"
        )
    path = Path(from_file or Path(settings.data_dir) / FILE_NAME)
    if not path.is_file():
        what = "--from" if from_file else "DATA_DIR"
        raise ConfigError(f"{what}: there is no SQLite catalog at {str(path)!r}")
    with contextlib.closing(SQLiteCatalog(path)) as lite:
        rows = _all_rows(lite)
        albums = [lite.album(album_id) for album_id in lite.album_ids()]
    target = open_catalog(settings)
    try:
        tally = Tally()
        try:
            tally.copied = len(target.import_rows(rows))
        except ImportConflict as exc:
            tally.failed.append(
                f"nothing copied: another image in PostgreSQL has a seq or id of this catalog "
                f"({exc}); migrate into an empty database"
            )
        else:
            tally.skipped = len(rows) - tally.copied
            tally.failed += _differences(rows, {r.filename: r for r in _all_rows(target)})
        album_tally = _copy_albums(target, [a for a in albums if a is not None])
        admin_key = _carry_admin_key(target, path.parent)
        counters = target.counters()
    finally:
        target.close()
    return CatalogReport(
        tally=tally,
        source=path,
        total=counters.total,
        version=counters.version,
        epoch=counters.epoch,
        admin_key=admin_key,
        albums=album_tally,
    )


def _copy_albums(target: Catalog, albums: list[Album]) -> Tally:
    """Each album not in PostgreSQL yet, with its images in order (copied after the images)."""
    tally = Tally()
    for album in albums:
        if target.album(album.row.id) is not None:
            tally.skipped += 1
        elif target.add_album(album.row, [image.id for image in album.images]):
            tally.copied += 1
        else:
            tally.failed.append(f"album {album.row.id}: one of its images is not in PostgreSQL")
    return tally


def _all_rows(catalog: Catalog) -> list[ImageRow]:
    """Every row, oldest first, read through the listing's own query in batches."""
    rows: list[ImageRow] = []
    batch = catalog.page(READ_BATCH)
    while batch:
        rows += batch
        batch = catalog.page(READ_BATCH, before_seq=batch[-1].seq)
    return rows[::-1]


def _differences(rows: list[ImageRow], copied: dict[str, ImageRow]) -> list[str]:
    """A line for every source row that PostgreSQL does not hold exactly (a row skipped as
    present that is another version of it, or a write that did not land)."""
    out = []
    for row in rows:
        found = copied.get(row.filename)
        if found is None:
            out.append(f"{row.filename}: not in PostgreSQL after the copy")
        elif found != row:
            changed = [f for f in row.__dataclass_fields__ if getattr(row, f) != getattr(found, f)]
            out.append(
                f"{row.filename}: PostgreSQL already has it with another {', '.join(changed)}"
            )
    return out


def _carry_admin_key(target: Catalog, data_dir: Path) -> str:
    """Store the admin key of `data_dir` in PostgreSQL unless it keeps one; say what happened."""
    local = rights.local_admin_key(data_dir)
    if local is None:
        return f"none in {data_dir} to carry over (nodes make one at their first start)"
    kept = rights.keep_admin_key(target, local)
    if kept == local:
        return f"the one in {data_dir} is the one PostgreSQL keeps"
    return (
        f"PostgreSQL keeps another one already (a node started there first), so the one in "
        f"{data_dir} is no longer used; set ADMIN_KEY on every node to choose one"
    )
