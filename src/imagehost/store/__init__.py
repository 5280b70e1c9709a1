"""The image bytes: the Store interface and open_store(), which picks one by STORAGE.

keys      stored names, the same in every store: `{id}.{ext}`, `thumbs/{id}.webp`
scratch   local temporary files (both modes), named by pid for cleanup after a crash
objects   what a store hands out: ObjectInfo (size, age), Opened (to send), ObjectExists
local     STORAGE=local: files in IMAGES_DIR, atomic by fsync + rename
s3        STORAGE=s3: objects in a bucket, create-only PUTs; the only importer of obstore

Both stores keep the same guarantee: an original is visible only together with its thumbnail
(the ingest pipeline adds the catalog row after that, and deletes remove the row first), and a
failed commit leaves nothing visible. Temporary files are always local.
"""

import contextlib
from pathlib import Path
from typing import Protocol

from ..config import Settings
from .keys import ID_BYTES, IMAGE_NAME, THUMB_NAME, image_id_of, new_image_id
from .local import LocalStore
from .objects import ObjectExists, ObjectInfo, Opened
from .scratch import DATA_TEMP_DIR, IMAGES_TEMP_DIR, STALE_TEMP_S, disk_errors
from .scratch import remove_temp_files_of as _remove_temp_files_of

__all__ = [
    "ID_BYTES",
    "IMAGE_NAME",
    "STALE_TEMP_S",
    "THUMB_NAME",
    "LocalStore",
    "ObjectExists",
    "ObjectInfo",
    "Opened",
    "Store",
    "disk_errors",
    "image_id_of",
    "new_image_id",
    "open_store",
    "remove_temp_files_of",
    "temp_dir",
]


class Store(Protocol):
    """What ingest, api, maintenance and the supervisor use. Names are validated first
    (ValueError for a name we could not have made); sizes are bytes, times seconds since the
    epoch. Methods that reach a remote server raise errors.ServiceUnavailable when it fails."""

    temp: Path  # the local folder of temporary files
    shared: bool  # other nodes write too: `imagehost check` spares young orphans
    dedupes: bool  # uploads of the same bytes can share one stored file (link_existing)

    def scratch(self, suffix: str) -> contextlib.AbstractContextManager[Path]:
        """A local temporary file name for the duration of the block; removed after it."""

    def probe(self) -> None:
        """Raises OSError or ServiceUnavailable when the store cannot take a write now."""

    def commit(self, stored_temp: Path, thumbnail: bytes | None, filename: str) -> None:
        """Make the original (the file `stored_temp`) and its thumbnail (encoded; None: the
        original is its own) visible, thumbnail first, never overwriting; StorageFull (507)
        or ServiceUnavailable (503), and on any error nothing is left."""

    def link_existing(self, existing: str, filename: str) -> bool:
        """Store a new upload of the same bytes as `existing` under its own names without a
        second copy; False when that cannot be done now (the caller commits its own)."""
        ...

    def delete(self, filename: str) -> None:
        """Remove an original, then its thumbnail (every name one may have, keys.thumbnail_names);
        one already gone is not an error."""

    def put_thumbnail(self, thumb_temp: Path, filename: str) -> None:
        """Replace the thumbnail of the original `filename` (check, reindex, first request)."""

    def has_thumbnail(self, filename: str) -> bool:
        """Whether the original `filename` has its thumbnail."""

    def delete_thumbnail(self, thumb_name: str) -> None:
        """Remove a thumbnail by its own name (an orphan)."""

    def open_image(self, filename: str, etag: str | None = None) -> Opened | None:
        """The original to send (`unchanged` when `etag` matches), or None when missing."""

    def open_thumbnail(self, thumb_name: str, etag: str | None = None) -> Opened | None: ...

    def local_copy(self, filename: str) -> contextlib.AbstractContextManager[Path]:
        """A local file with the original's bytes for the block; FileNotFoundError."""

    def info(self, filename: str) -> ObjectInfo:
        """Size and modification time of an original; FileNotFoundError when it is gone."""

    def images(self) -> dict[str, float]:
        """Every original under our naming scheme → its modification time."""

    def thumbnails(self) -> dict[str, float]:
        """Every thumbnail's name (inside THUMBS) → its modification time."""

    def image_files(self) -> list[str]: ...

    def thumbnail_names(self) -> list[str]: ...

    def reject(self, filename: str, folder: Path) -> None:
        """Move an original out of the store into the local `folder` (not an acceptable image)."""

    def foreign_files(self) -> list[Path]:
        """Files dropped in by hand under names we did not make (local folder only; else [])."""

    def stale_temp_files(self) -> list[Path]: ...

    def remove_temp(self, path: Path) -> None: ...


def open_store(settings: Settings) -> Store:
    """The store STORAGE names. For s3, the bucket is checked first: an unreachable endpoint, a
    missing bucket or refused credentials raise errors.ConfigError naming the setting."""
    if settings.storage == "s3":
        from .s3 import open_s3_store  # imports obstore (~33 ms): only in S3 mode

        return open_s3_store(settings)
    return LocalStore(settings.images_dir)


def temp_dir(settings: Settings) -> Path:
    """Where the store of `settings` keeps its temporary files (without opening the store)."""
    if settings.storage == "s3":
        return Path(settings.data_dir).resolve() / DATA_TEMP_DIR
    return Path(settings.images_dir).resolve() / IMAGES_TEMP_DIR


def remove_temp_files_of(settings: Settings, pid: int) -> None:
    """Delete the temporary files a (dead) worker process left behind."""
    _remove_temp_files_of(temp_dir(settings), pid)
