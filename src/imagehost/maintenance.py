"""`imagehost check` and `imagehost reindex`: find and repair drift between catalog and store.

Repairs never delete an image someone could still want: a file without a row is indexed
(given a row), not removed; a row without a file is removed, since there is nothing to serve.
Files are handled only through the Store, rows only through the Catalog, and indexing goes
through the same ingest module as uploads.
"""

from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .config import Settings
from .errors import ImageRejected, UnsupportedImage
from .formats import THUMBNAIL_EXT
from .ingest import ImageLimits, Ingest
from .store import Store, image_id_of

REJECTED_DIR = "rejected"  # in DATA_DIR: files reindex found not to be images we accept


@dataclass
class Report:
    """What was found (and repaired unless dry_run), as lists of names."""

    missing_files: list[str] = field(default_factory=list)  # rows whose file is gone
    unindexed_files: list[str] = field(default_factory=list)  # files without a row
    missing_thumbnails: list[str] = field(default_factory=list)
    orphan_thumbnails: list[str] = field(default_factory=list)
    stale_temp_files: list[str] = field(default_factory=list)
    renamed_files: list[str] = field(default_factory=list)  # reindex: hand-dropped names
    rejected_files: list[str] = field(default_factory=list)  # not images we accept

    @property
    def clean(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)

    def lines(self) -> list[str]:
        out = []
        for name in self.__dataclass_fields__:
            for item in getattr(self, name):
                out.append(f"{name.replace('_', ' ')[:-1]}: {item}")
        return out or ["store clean: catalog and image folder agree"]


def check(settings: Settings, dry_run: bool = False, adopt_foreign: bool = False) -> Report:
    """Compare catalog and image folder; repair unless `dry_run`.

    With `adopt_foreign` (reindex), files dropped in by hand under any name are validated,
    renamed to a stored name and indexed; files that are not acceptable images are moved
    to DATA_DIR/rejected/.
    """
    store, catalog = Store(settings.images_dir), Catalog.in_data_dir(settings.data_dir)
    ingest = Ingest(store, catalog, ImageLimits.from_settings(settings))
    rejected = settings.data_dir / REJECTED_DIR
    report = Report()

    def reject(path: Path) -> None:
        store.move_out(path, rejected)
        report.rejected_files.append(path.name)

    try:
        rows = catalog.filenames()
        files = set(store.image_files())
        for filename in sorted(rows - files):
            report.missing_files.append(filename)
            if not dry_run:
                catalog.remove(filename)
                store.delete(filename)
        for filename in sorted(files - rows):
            report.unindexed_files.append(filename)
            if not dry_run:
                try:
                    ingest.index(filename, filename)
                except (UnsupportedImage, ImageRejected):
                    reject(store.image_path(filename))
        if adopt_foreign:
            for path in store.foreign_files():
                report.renamed_files.append(path.name)
                if not dry_run:
                    try:
                        ingest.adopt(path)
                    except (UnsupportedImage, ImageRejected):
                        reject(path)
        # Every image file left is indexed now (or would be, in a dry run): its thumbnail
        # should exist, and a thumbnail without an image file is an orphan.
        image_files = store.image_files()
        live_ids = {image_id_of(f) for f in image_files}
        for filename in image_files:
            if not store.has_thumbnail(image_id_of(filename)):
                report.missing_thumbnails.append(filename)
                if not dry_run:
                    ingest.remake_thumbnail(filename)
        for image_id in store.thumbnail_ids():
            if image_id not in live_ids:
                report.orphan_thumbnails.append(f"thumbs/{image_id}.{THUMBNAIL_EXT}")
                if not dry_run:
                    store.delete_thumbnail(image_id)
        for path in store.stale_temp_files():
            report.stale_temp_files.append(path.name)
            if not dry_run:
                store.remove_temp(path)
    finally:
        catalog.close()
    return report
