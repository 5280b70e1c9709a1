"""Image files on a local disk: atomic commits by link, deletes, listing (STORAGE=local).

Layout of IMAGES_DIR (served by nginx at /images/):
    {id}.{ext}            stored originals
    thumbs/{id}.jpg       thumbnails (of JPEG originals; `{id}.webp` of the others)
    .tmp/{pid}-{n}.*      uploads in progress; a dot folder nginx and `serve` never serve
An original appears under its public name only by link(2) after its bytes are fsynced, so a
crash leaves either nothing visible or a complete file. A new upload's thumbnail is written at
its name directly, before the original appears (nobody has the name yet); a thumbnail a crash
cut short is an orphan `imagehost check` removes, or, once its original is listed, remade on
its first request when missing. Nothing outside this package touches the folder: ingest and
maintenance go through the Store's methods.
"""

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .keys import (
    IMAGE_NAME,
    THUMB_NAME,
    THUMBS,
    checked_image_name,
    checked_thumbnail_name,
    thumbnail_name,
    thumbnail_names,
)
from .objects import ObjectExists, ObjectInfo, Opened
from .scratch import IMAGES_TEMP_DIR, disk_errors
from .scratch import remove_temp as _remove_temp
from .scratch import scratch as _scratch
from .scratch import stale_temp_files as _stale_temp_files
from .scratch import temp_path as _temp_path


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (its entries: links made or removed in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """The image folder. All paths it hands out are inside it; names are validated first."""

    shared = False  # one machine's folder: no other node writes to it
    dedupes = True  # uploads of the same bytes share one file: hard links (link_existing)

    def __init__(self, images_dir: Path):
        self.root = Path(images_dir).resolve()
        self.thumbs = self.root / THUMBS
        self.temp = self.root / IMAGES_TEMP_DIR
        for folder in (self.root, self.thumbs, self.temp):
            folder.mkdir(parents=True, exist_ok=True)

    def image_path(self, filename: str) -> Path:
        return self.root / checked_image_name(filename)

    def thumbnail_path(self, filename: str) -> Path:
        """The thumbnail of the original `filename`."""
        return self.thumbs / thumbnail_name(filename)

    def temp_path(self, suffix: str) -> Path:
        """A new temporary file name; the pid in it lets the supervisor clean after a crash."""
        return _temp_path(self.temp, suffix)

    def scratch(self, suffix: str) -> contextlib.AbstractContextManager[Path]:
        """A temporary file name for the duration of the block; the file is removed after it."""
        return _scratch(self.temp, suffix)

    def probe(self) -> None:
        """Raises OSError when a file cannot be created in the folder (for /api/health)."""
        with self.scratch("health") as path:
            path.write_bytes(b"")

    def commit(self, stored_temp: Path, thumbnail: bytes | None, filename: str) -> None:
        """Make the image and its thumbnail visible: fsync the image, write the thumbnail at
        its name, link the image into place, fsync the image folder. The thumbnail is written
        where it is served, not fsynced (nobody has its name until the upload is answered; after
        a power loss its first request or `imagehost check` remakes it from the image, so it
        costs no durability); thumbnail None: the image's own file is linked as its thumbnail.

        Raises StorageFull when the disk is full, ObjectExists when either name is taken; on
        any error nothing is left visible. Names appear create-only — O_EXCL, and link(2)
        rather than rename(2), which would replace an existing name — as S3's If-None-Match: *.
        The temporary name stays for the caller's scratch to remove.
        """
        with disk_errors():
            fsync_path(stored_temp)
            self._publish(stored_temp, filename, stored_temp if thumbnail is None else thumbnail)

    def link_existing(self, existing: str, filename: str) -> bool:
        """Give the stored image `existing` and its thumbnail the names of a new upload of the
        same bytes: create-only hard links, then the folder fsynced, as commit(). Each name is
        a file of its own to nginx and to delete(): removing one never touches the other.
        False, with nothing made, when `existing` or its thumbnail is gone meanwhile, or has
        as many links as the file system allows (the caller then commits its own copy)."""
        source = self.image_path(existing)
        source_thumb = self.thumbnail_path(existing)
        with disk_errors():
            try:
                self._publish(source, filename, source_thumb)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                return False  # ext4 allows 65,000 links to a file: this one gets its own
        return True

    def _publish(self, image_source: Path, filename: str, thumbnail: Path | bytes) -> None:
        """Make the thumbnail (a link to the file `thumbnail`, or a new file of its bytes;
        create-only), link the image under its new name (create-only), then fsync the
        folder; on any error the new names are removed again and the error raised."""
        image, thumb = self.image_path(filename), self.thumbnail_path(filename)
        if isinstance(thumbnail, bytes):
            self._write_new(thumb, thumbnail)
        else:
            self._link_new(thumbnail, thumb)
        try:
            self._link_new(image_source, image)
        except BaseException:
            thumb.unlink(missing_ok=True)  # ours; the original under `image` is not
            raise
        try:
            fsync_path(self.root)
        except BaseException:
            self.delete(filename)
            raise

    def same_file(self, first: str, second: str) -> bool:
        """Whether two stored names are links to one file (deduplicated)."""
        with contextlib.suppress(FileNotFoundError):
            return os.path.samefile(self.image_path(first), self.image_path(second))
        return False

    def relink(self, source: str, target: str) -> None:
        """Make the image `target` (and its thumbnail) a link to `source`'s, whose bytes it
        has: a new link beside it, renamed over it, so `target` never stops being served."""
        pairs = [
            (self.image_path(source), self.image_path(target)),
            (self.thumbnail_path(source), self.thumbnail_path(target)),
        ]
        with disk_errors():
            for src, dst in pairs:
                if not src.exists():
                    continue
                temp = dst.with_name(f".{dst.name}.link")
                temp.unlink(missing_ok=True)
                os.link(src, temp)
                os.replace(temp, dst)
            fsync_path(self.root)

    def _link_new(self, source: Path, target: Path) -> None:
        try:
            os.link(source, target)
        except FileExistsError:
            raise ObjectExists(str(target.relative_to(self.root))) from None

    def _write_new(self, target: Path, data: bytes) -> None:
        """A new file holding `data`; ObjectExists when the name is taken."""
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise ObjectExists(str(target.relative_to(self.root))) from None
        try:
            with open(fd, "wb", closefd=True) as out:
                out.write(data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def delete(self, filename: str) -> None:
        """Remove an image, then its thumbnail; a file already gone is not an error."""
        paths = [self.image_path(filename), *(self.thumbs / n for n in thumbnail_names(filename))]
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def put_thumbnail(self, thumb_temp: Path, filename: str) -> None:
        """Replace the thumbnail of `filename` by the file at `thumb_temp` (check, reindex,
        first request)."""
        with disk_errors():
            os.replace(thumb_temp, self.thumbnail_path(filename))

    def has_thumbnail(self, filename: str) -> bool:
        return self.thumbnail_path(filename).exists()

    def delete_thumbnail(self, thumb_name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.thumbs / checked_thumbnail_name(thumb_name)).unlink()

    def open_image(self, filename: str, etag: str | None = None) -> Opened | None:
        """The stored original to send (sendfile), or None when there is none."""
        return Opened.file(self.image_path(filename), etag)

    def open_thumbnail(self, thumb_name: str, etag: str | None = None) -> Opened | None:
        return Opened.file(self.thumbs / checked_thumbnail_name(thumb_name), etag)

    @contextlib.contextmanager
    def local_copy(self, filename: str) -> Iterator[Path]:
        """The stored file itself (no copy is needed here); FileNotFoundError when it is gone."""
        path = self.image_path(filename)
        if not path.is_file():
            raise FileNotFoundError(filename)
        yield path

    def info(self, filename: str) -> ObjectInfo:
        """Size and modification time; FileNotFoundError when it is gone."""
        stat = self.image_path(filename).stat()
        return ObjectInfo(size=stat.st_size, modified_s=stat.st_mtime)

    def images(self) -> dict[str, float]:
        """Stored originals that follow our naming scheme → modification time (s since epoch)."""
        return _modified({p for p in self.root.iterdir() if IMAGE_NAME.match(p.name)})

    def thumbnails(self) -> dict[str, float]:
        """Thumbnail name → modification time of the file. Empty files are left out, as
        missing: a thumbnail is not fsynced, and after a power cut its name may be there
        without its bytes (check then makes it again)."""
        return _modified({p for p in self.thumbs.iterdir() if THUMB_NAME.match(p.name)}, True)

    def image_files(self) -> list[str]:
        """Names of the stored originals that follow our naming scheme."""
        return sorted(p.name for p in self.root.iterdir() if IMAGE_NAME.match(p.name))

    def thumbnail_names(self) -> list[str]:
        return sorted(p.name for p in self.thumbs.iterdir() if THUMB_NAME.match(p.name))

    def reject(self, filename: str, folder: Path) -> None:
        """Move a stored original out of the store into `folder` (not an image we accept)."""
        self.move_out(self.image_path(filename), folder)

    def foreign_files(self) -> list[Path]:
        """Regular files in the image folder that we did not name (dropped in by hand)."""
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_file() and not p.name.startswith(".") and not IMAGE_NAME.match(p.name)
        )

    def adopt(self, path: Path, filename: str) -> None:
        """Give a file dropped into the folder by hand the stored name `filename` (reindex)."""
        os.rename(path, self.image_path(filename))
        fsync_path(self.root)

    def move_out(self, path: Path, folder: Path) -> None:
        """Move a file of the image folder (stored or foreign) into `folder`, outside it."""
        if path.parent != self.root:
            raise ValueError(f"not a file of this store: {path!r}")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(path, folder / path.name)

    def stale_temp_files(self) -> list[Path]:
        """Temporary files whose process is gone, or that are older than STALE_TEMP_S."""
        return _stale_temp_files(self.temp)

    def remove_temp(self, path: Path) -> None:
        """Remove one of this folder's temporary files (a leftover found by check)."""
        _remove_temp(self.temp, path)


Store = LocalStore  # its name before store/ became a package (tests/test_fuzz.py uses it)


def _modified(paths: set[Path], non_empty: bool = False) -> dict[str, float]:
    found = {}
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # deleted since the listing
            stat = path.stat()
            if stat.st_size or not non_empty:
                found[path.name] = stat.st_mtime
    return found
