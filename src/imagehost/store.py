"""Image files on disk: names, temporary files, atomic commits and deletes.

Layout of IMAGES_DIR (served by nginx at /images/):
    {id}.{ext}            stored originals
    thumbs/{id}.webp      thumbnails
    .tmp/{pid}-{n}.*      uploads in progress; a dot folder nginx and `serve` never serve
A file appears under its public name only by rename(2) after its bytes are fsynced, so a crash
leaves either nothing visible or a complete file. Nothing outside this module touches the
folder: ingest and maintenance go through the Store's methods.
"""

import contextlib
import errno
import itertools
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import StorageFull
from .formats import EXTENSIONS, ID_PATTERN, THUMBNAIL_EXT

_temp_counter = itertools.count()  # next() on it is atomic under the GIL
ID_BYTES = 12  # 16 URL-safe characters, 96 random bits
# \Z, not $: `$` also matches before a trailing newline.
IMAGE_NAME = re.compile(rf"({ID_PATTERN})\.({'|'.join(EXTENSIONS)})\Z")
THUMB_NAME = re.compile(rf"({ID_PATTERN})\.{THUMBNAIL_EXT}\Z")
TEMP_DIR = ".tmp"
STALE_TEMP_S = 3600  # temp files of live processes older than this are leftovers too


def new_image_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def image_id_of(filename: str) -> str | None:
    """The id in a stored name, or None when `filename` is not a name we could have made."""
    match = IMAGE_NAME.match(filename)
    return match.group(1) if match else None


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """Turn a full disk (ENOSPC, EDQUOT) into StorageFull (507)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull() from None
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """The image folder. All paths it hands out are inside it; names are validated first."""

    def __init__(self, images_dir: Path):
        self.root = Path(images_dir).resolve()
        self.thumbs = self.root / "thumbs"
        self.temp = self.root / TEMP_DIR
        for folder in (self.root, self.thumbs, self.temp):
            folder.mkdir(parents=True, exist_ok=True)

    def image_path(self, filename: str) -> Path:
        if not IMAGE_NAME.match(filename):
            raise ValueError(f"not a stored image name: {filename!r}")
        return self.root / filename

    def thumbnail_path(self, image_id: str) -> Path:
        name = f"{image_id}.{THUMBNAIL_EXT}"
        if not THUMB_NAME.match(name):
            raise ValueError(f"not an image id: {image_id!r}")
        return self.thumbs / name

    def temp_path(self, suffix: str) -> Path:
        """A new temporary file name; the pid in it lets the supervisor clean after a crash."""
        # Unique, not secret (the folder is never served): a counter is cheaper than urandom.
        return self.temp / f"{os.getpid()}-{next(_temp_counter)}.{suffix}"

    @contextlib.contextmanager
    def scratch(self, suffix: str) -> Iterator[Path]:
        """A temporary file name for the duration of the block; the file is removed after it."""
        path = self.temp_path(suffix)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def probe(self) -> None:
        """Raises OSError when a file cannot be created in the folder (for /api/health)."""
        with self.scratch("health") as path:
            path.write_bytes(b"")

    def commit(self, stored_temp: Path, thumb_temp: Path, filename: str, image_id: str) -> None:
        """Make the image and its thumbnail visible: fsync the image, rename both into place,
        fsync the image folder. The thumbnail is not fsynced: after a power loss
        `imagehost check` remakes it from the image, so it costs no durability.

        Raises StorageFull when the disk is full; on any error nothing is left visible.
        """
        image, thumb = self.image_path(filename), self.thumbnail_path(image_id)
        with disk_errors():
            _fsync_file(stored_temp)
            os.rename(thumb_temp, thumb)
            try:
                os.rename(stored_temp, image)
                _fsync_dir(self.root)
            except BaseException:
                self.delete(filename)
                raise

    def delete(self, filename: str) -> None:
        """Remove an image and its thumbnail; a file already gone is not an error."""
        image_id = image_id_of(filename)
        for path in (self.image_path(filename), self.thumbnail_path(image_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def put_thumbnail(self, thumb_temp: Path, image_id: str) -> None:
        """Replace the thumbnail of `image_id` by the file at `thumb_temp` (check, reindex)."""
        with disk_errors():
            os.replace(thumb_temp, self.thumbnail_path(image_id))

    def has_thumbnail(self, image_id: str) -> bool:
        return self.thumbnail_path(image_id).exists()

    def delete_thumbnail(self, image_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.thumbnail_path(image_id).unlink()

    def adopt(self, path: Path, filename: str) -> None:
        """Give a file dropped into the folder by hand the stored name `filename` (reindex)."""
        os.rename(path, self.image_path(filename))
        _fsync_dir(self.root)

    def move_out(self, path: Path, folder: Path) -> None:
        """Move a file of the image folder (stored or foreign) into `folder`, outside it."""
        if path.parent != self.root:
            raise ValueError(f"not a file of this store: {path!r}")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(path, folder / path.name)

    def mtime(self, filename: str) -> float:
        """When the stored file was last written, in seconds since the epoch."""
        return self.image_path(filename).stat().st_mtime

    def size(self, filename: str) -> int:
        """The stored file's size in bytes."""
        return self.image_path(filename).stat().st_size

    def image_files(self) -> list[str]:
        """Names of the stored originals that follow our naming scheme."""
        return sorted(p.name for p in self.root.iterdir() if IMAGE_NAME.match(p.name))

    def foreign_files(self) -> list[Path]:
        """Regular files in the image folder that we did not name (dropped in by hand)."""
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_file() and not p.name.startswith(".") and not IMAGE_NAME.match(p.name)
        )

    def thumbnail_ids(self) -> list[str]:
        return sorted(p.stem for p in self.thumbs.iterdir() if THUMB_NAME.match(p.name))

    def stale_temp_files(self) -> list[Path]:
        """Temporary files whose process is gone, or that are older than STALE_TEMP_S."""
        stale = []
        now = time.time()
        for path in self.temp.iterdir():
            pid = path.name.split("-", 1)[0]
            alive = pid.isdigit() and _pid_alive(int(pid))
            if not alive or now - path.stat().st_mtime > STALE_TEMP_S:
                stale.append(path)
        return stale

    def remove_temp(self, path: Path) -> None:
        """Remove one of this folder's temporary files (a leftover found by check)."""
        if path.parent != self.temp:
            raise ValueError(f"not a temporary file of this store: {path!r}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_temp_files_of(images_dir: Path, pid: int) -> None:
    """Delete the temporary files a (dead) worker process left behind."""
    temp = Path(images_dir) / TEMP_DIR
    for path in temp.glob(f"{pid}-*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
