"""`imagehost check` and `imagehost reindex`: find and repair drift between catalog and disk.

Repairs never delete an image someone could still want: a file without a row is indexed
(given a row), not removed; a row without a file is removed, since there is nothing to serve.
"""

import contextlib
import datetime
import os
import shutil
from dataclasses import dataclass, field

from . import images
from .catalog import Catalog, ImageRow
from .config import Settings
from .errors import ApiError
from .store import Store, image_id_of, new_image_id


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


def _open(settings: Settings) -> tuple[Store, Catalog]:
    return Store(settings.images_dir), Catalog(settings.data_dir / "catalog.sqlite3")


def check(settings: Settings, dry_run: bool = False, adopt_foreign: bool = False) -> Report:
    """Compare catalog and image folder; repair unless `dry_run`.

    With `adopt_foreign` (reindex), files dropped in by hand under any name are validated,
    renamed to a stored name and indexed; files that are not acceptable images are moved
    to DATA_DIR/rejected/.
    """
    store, catalog = _open(settings)
    report = Report()
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
                _index(store, catalog, filename, filename, settings, report)
        if adopt_foreign:
            for path in store.foreign_files():
                report.renamed_files.append(path.name)
                if not dry_run:
                    _adopt(store, catalog, path, settings, report)
        # Every image file left is indexed now (or would be, in a dry run): its thumbnail
        # should exist, and a thumbnail without an image file is an orphan.
        images = store.image_files()
        live_ids = {image_id_of(f) for f in images}
        for filename in images:
            if not store.thumbnail_path(image_id_of(filename)).exists():
                report.missing_thumbnails.append(filename)
                if not dry_run:
                    _thumbnail(store, filename)
        for image_id in store.thumbnail_ids():
            if image_id not in live_ids:
                report.orphan_thumbnails.append(f"thumbs/{image_id}.webp")
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        store.thumbnail_path(image_id).unlink()
        for path in store.stale_temp_files():
            report.stale_temp_files.append(path.name)
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    finally:
        catalog.close()
    return report


def _thumbnail(store: Store, filename: str) -> None:
    target = store.thumbnail_path(image_id_of(filename))
    temp = store.temp_path("thumb.webp")
    try:
        images.make_thumbnail(store.image_path(filename), temp)
        os.replace(temp, target)
    except ApiError:
        pass  # the original is unreadable; it stays listed, without a thumbnail
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _index(
    store: Store,
    catalog: Catalog,
    filename: str,
    original_name: str,
    settings: Settings,
    report: Report,
) -> bool:
    path = store.image_path(filename)
    try:
        info = images.inspect(path, max_pixels=settings.max_image_pixels)
    except ApiError:
        _reject(path, settings, report)
        return False
    created = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    catalog.add(
        ImageRow(
            seq=0,
            id=image_id_of(filename),
            filename=filename,
            original_name=original_name,
            content_type=info.content_type,
            size=path.stat().st_size,
            width=info.width,
            height=info.height,
            created_at=created.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            delete_token_hash=None,  # only the admin key can delete what nobody uploaded
        )
    )
    if not store.thumbnail_path(image_id_of(filename)).exists():
        _thumbnail(store, filename)
    return True


def _adopt(store: Store, catalog: Catalog, path, settings: Settings, report: Report) -> None:
    try:
        info = images.inspect(path, max_pixels=settings.max_image_pixels)
    except ApiError:
        _reject(path, settings, report)
        return
    filename = f"{new_image_id()}.{info.ext}"
    os.rename(path, store.image_path(filename))
    _index(store, catalog, filename, path.name, settings, report)


def _reject(path, settings: Settings, report: Report) -> None:
    folder = settings.data_dir / "rejected"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(path, folder / path.name)
    report.rejected_files.append(path.name)
