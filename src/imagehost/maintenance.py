"""`imagehost check` and `imagehost reindex`: find and repair drift between catalog and store.

Repairs never delete an image someone could still want: a file without a row is indexed
(given a row), not removed; a row without a file is removed, since there is nothing to serve.
Files are handled only through the Store, rows only through the Catalog, and indexing goes
through the same ingest module as uploads. Both store modes: a local folder, or a bucket
(where objects without a row count only after a grace period). Deletes whose objects outlived
their row (the catalog's pending deletes: S3 down at that moment, a node killed) are finished
here as by the sweeper, and their objects are never taken for unindexed files.
"""

import errno
import time
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog, open_catalog
from .config import Settings
from .errors import ImageRejected, UnsupportedImage
from .ingest import ImageLimits, Ingest
from .store import LocalStore, Store, open_store
from .store.keys import thumbnail_name
from .sweeper import sweep

REJECTED_DIR = "rejected"  # in DATA_DIR: files reindex found not to be images we accept
# Objects without a row (and thumbnails without an original) younger than this are left alone
# in a bucket several nodes write to: an upload takes milliseconds between its objects and its
# row, and an hour also covers a node stalled under load or a clock a little off.
ORPHAN_GRACE_S = 3600
PENDING_BATCH = 1000  # pending deletes read (and swept) at a time


@dataclass
class Report:
    """What was found (and repaired unless dry_run), as lists of names."""

    pending_deletes: list[str] = field(default_factory=list)  # rows gone, objects not yet
    missing_files: list[str] = field(default_factory=list)  # rows whose file is gone
    unindexed_files: list[str] = field(default_factory=list)  # files without a row
    missing_thumbnails: list[str] = field(default_factory=list)
    orphan_thumbnails: list[str] = field(default_factory=list)
    stale_temp_files: list[str] = field(default_factory=list)
    renamed_files: list[str] = field(default_factory=list)  # reindex: hand-dropped names
    rejected_files: list[str] = field(default_factory=list)  # not images we accept
    unshared_twins: list[str] = field(default_factory=list)  # same bytes, not yet one file
    bytes_counts: list[str] = field(default_factory=list)  # the catalog's sum, if it was off
    # deduplication: uploads sharing a file with an older one, and the bytes that saves
    shared_images: int = 0
    saved_bytes: int = 0

    def _findings(self) -> list[str]:
        return [f for f in self.__dataclass_fields__ if isinstance(getattr(self, f), list)]

    @property
    def clean(self) -> bool:
        return not any(getattr(self, f) for f in self._findings())

    def lines(self) -> list[str]:
        out = []
        for name in self._findings():
            for item in getattr(self, name):
                out.append(f"{name.replace('_', ' ')[:-1]}: {item}")
        out = out or ["store clean: catalog and image folder agree"]
        if self.shared_images:
            out.append(
                f"deduplication: {self.shared_images} uploads share a file with another, "
                f"saving {self.saved_bytes} bytes"
            )
        return out


def check(
    settings: Settings,
    dry_run: bool = False,
    adopt_foreign: bool = False,
    orphan_grace_s: float | None = None,
) -> Report:
    """Compare catalog and store; repair unless `dry_run`.

    With `adopt_foreign` (reindex; a local folder only, a bucket has none), files dropped in by
    hand under any name are validated, renamed to a stored name and indexed; files that are not
    acceptable images are moved to DATA_DIR/rejected/.

    An object without a row, or a thumbnail without an original, counts only once it is older
    than `orphan_grace_s` seconds (default ORPHAN_GRACE_S for a store other nodes write to, 0
    for a local folder): an upload in flight on another node has its objects but not yet its
    row. Lists the bucket with the owner's credentials (the backends' own, never nginx's).
    """
    store, catalog = open_store(settings), open_catalog(settings)
    ingest = Ingest(store, catalog, ImageLimits.from_settings(settings))
    if orphan_grace_s is None:
        orphan_grace_s = ORPHAN_GRACE_S if store.shared else 0
    settled = time.time() - orphan_grace_s

    def in_flight(modified_s: float) -> bool:
        """Written too recently to tell from an upload still on its way to its row."""
        return orphan_grace_s > 0 and modified_s > settled

    rejected = settings.data_dir / REJECTED_DIR
    report = Report()

    def reject(path: Path) -> None:
        store.move_out(path, rejected)
        report.rejected_files.append(path.name)

    try:
        swept = _sweep_pending(catalog, store, dry_run)
        report.pending_deletes.extend(sorted(swept))
        rows = catalog.filenames()  # before listing: a row is only ever added after its object
        files = store.images()
        # Objects of deleted images (in a dry run, or deleted on another node since the sweep)
        # are never unindexed files: indexing them would bring a deleted image back.
        pending = swept | set(catalog.pending_deletes(0, PENDING_BATCH))
        files = {f: t for f, t in files.items() if f not in pending}
        for filename in sorted(rows - files.keys()):
            report.missing_files.append(filename)
            if not dry_run:
                catalog.remove(filename)
                store.delete(filename)
                catalog.forget_deletes([filename])
        young = {f for f in files.keys() - rows if in_flight(files[f])}  # left for a later run
        for filename in sorted(files.keys() - rows - young):
            report.unindexed_files.append(filename)
            if not dry_run:
                try:
                    ingest.index(filename, filename)
                except (UnsupportedImage, ImageRejected):
                    store.reject(filename, rejected)
                    report.rejected_files.append(filename)
                except FileNotFoundError:
                    pass  # deleted since the listing
        if adopt_foreign:
            for path in store.foreign_files():
                report.renamed_files.append(path.name)
                if not dry_run:
                    try:
                        ingest.adopt(path)
                    except (UnsupportedImage, ImageRejected):
                        reject(path)
        # Every image file left but those of pending deletes is indexed now (or would be, in a
        # dry run): its thumbnail should exist, and a thumbnail without an image file is an
        # orphan.
        # (An older store's WebP thumbnail of a JPEG original is such an orphan: JPEG
        # originals have JPEG thumbnails now, made here or on their first request.)
        image_files = store.image_files()
        wanted = {thumbnail_name(f) for f in image_files}
        thumbnails = store.thumbnails()
        skipped = young | pending
        for filename in image_files:
            if filename not in skipped and thumbnail_name(filename) not in thumbnails:
                report.missing_thumbnails.append(filename)
                if not dry_run:
                    ingest.remake_thumbnail(filename)
        for name in sorted(thumbnails.keys() - wanted):
            if in_flight(thumbnails[name]):
                continue  # an upload writes its thumbnail first
            report.orphan_thumbnails.append(f"thumbs/{name}")
            if not dry_run:
                store.delete_thumbnail(name)
        for path in store.stale_temp_files():
            report.stale_temp_files.append(path.name)
            if not dry_run:
                store.remove_temp(path)
        if store.dedupes:
            _check_sharing(catalog, store, report, dry_run)
        if not dry_run:  # recounting writes the counter; a dry run leaves it
            counted, should = catalog.recount_bytes()
            if counted != should:
                report.bytes_counts.append(f"stored bytes counted {counted}, recounted {should}")
    finally:
        catalog.close()
    return report


def _check_sharing(catalog: Catalog, store: LocalStore, report: Report, dry_run: bool) -> None:
    """Uploads of the same bytes share the oldest one's file: count the saving, and link
    the copies that are not (indexed by check, or made before a crash) unless dry_run."""
    first: dict[str, str] = {}
    for content_hash, filename, size in catalog.shared_rows():
        if content_hash not in first:
            first[content_hash] = filename
            continue
        original = first[content_hash]
        if not store.same_file(original, filename):
            report.unshared_twins.append(f"{filename} (the bytes of {original})")
            if dry_run:
                continue
            try:
                store.relink(original, filename)
            except FileNotFoundError:
                continue  # one of them was deleted meanwhile
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                continue  # the original has as many links as the file system allows
        report.shared_images += 1
        report.saved_bytes += size


def _sweep_pending(catalog: Catalog, store: Store, dry_run: bool) -> set[str]:
    """Every pending delete (its objects removed and the entry forgotten unless dry_run),
    in batches of PENDING_BATCH: each batch is forgotten, so the next one is new."""
    if dry_run:
        return set(catalog.pending_deletes(0, PENDING_BATCH))
    swept: set[str] = set()
    while True:
        done = sweep(catalog, store, 0, PENDING_BATCH)
        swept.update(done)
        if len(done) < PENDING_BATCH:
            return swept
