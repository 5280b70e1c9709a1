"""The ingest pipeline: received bytes → stored original + thumbnail + catalog row + delete token.

Used by the upload handler and by `imagehost check`/`reindex`. It owns the temporary files, the
commit order and the cleanup: the thumbnail and the original become visible together (store
commit: thumbnail first, then the original, create-only), then the row is added; a failure at
any step removes what earlier steps made, so a refused or failed upload leaves no object and no
row, and an acknowledged one has both. It knows the store and the catalog only by their
interfaces, not whether the bytes end up in a folder or a bucket.
"""

import datetime
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import images, metrics, rights
from .catalog import Catalog, ImageRow
from .catalog.base import timestamp
from .config import Settings
from .errors import ImageRejected, UnsupportedImage
from .store import Store, disk_errors, image_id_of, new_image_id
from .store.keys import thumbnail_name
from .uploads import Upload

# Uploads processed (decoded, thumbnailed, scrubbed) at once per worker process; the others wait
# their turn with their bytes received. One: there is a worker per CPU already, so more slots
# only add decode buffers. Measured 2026-12-02 with `up`, 2 workers on 2 cores, bench/load.py's
# client, medians of 3 × 5 s (slots 1 / 2 / 4 / 64): 70 KB JPEG at 8 clients 205 / 205 / 190 /
# 191 req/s; 350 KB PNG at 8 clients 74 / 69 / 72 / 74 req/s; 4 MB 12 MP JPEG at 32 clients
# 22.6 / 19.8 / 19.2 / 19.9 req/s with peak worker RSS 51 / 61 / 73 / 125 MB.
PIPELINE_SLOTS = 1


@dataclass(frozen=True)
class ImageLimits:
    """What an upload must satisfy, from the settings."""

    allowed_formats: tuple[str, ...]
    max_pixels: int
    max_frames: int
    strip_metadata: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> "ImageLimits":
        return cls(
            settings.allowed_formats,
            settings.max_image_pixels,
            settings.max_frames,
            settings.strip_metadata,
        )


@dataclass(frozen=True)
class Stored:
    """An acknowledged upload: its catalog row and the delete token (shown once, never kept)."""

    row: ImageRow
    delete_token: str


def _sha256(path: Path) -> str:
    """The hex SHA-256 of a stored file: its identity for deduplication."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Ingest:
    """The pipeline bound to one store and one catalog."""

    def __init__(self, store: Store, catalog: Catalog, limits: ImageLimits):
        self.store = store
        self.catalog = catalog
        self.limits = limits
        self.slots = threading.BoundedSemaphore(PIPELINE_SLOTS)

    def upload(self, receive: Callable[[Path], Upload]) -> Stored:
        """Receive an upload with `receive(spool_path)`, check it, store it, index it.

        `receive` reads the request body (spooling past memory to the path it is given) and
        raises its own 400/413 refusals. Raises errors.UnsupportedImage (415),
        errors.ImageRejected (422), errors.StorageFull (507) or errors.ServiceUnavailable
        (503: catalog busy, S3 server down); whatever is raised, nothing is left behind
        (when the S3 server fails during the cleanup too, `imagehost check` removes the rest).
        """
        limits = self.limits
        with self.store.scratch("upload") as received, self.store.scratch("stored") as stored:
            with disk_errors():
                with metrics.step("receive"):
                    upload = receive(received)
                with self.slots, metrics.step("process"):
                    processed = images.process(
                        upload.read(),
                        stored,
                        allowed_formats=limits.allowed_formats,
                        max_pixels=limits.max_pixels,
                        max_frames=limits.max_frames,
                        strip_metadata=limits.strip_metadata,
                    )
                info = processed.info
                size = stored.stat().st_size
                content_hash = _sha256(stored) if self.store.dedupes else None
            image_id = new_image_id()
            filename = f"{image_id}.{info.ext}"
            with metrics.step("store"):
                twin = content_hash and self.catalog.find_by_hash(content_hash)
                if not (twin and self.store.link_existing(twin.filename, filename)):
                    self.store.commit(stored, processed.thumbnail, filename)
        token, token_hash = rights.new_delete_token()
        now = datetime.datetime.now(datetime.UTC)
        expires_at = None
        if upload.lifetime_s is not None:
            expires_at = timestamp(now + datetime.timedelta(seconds=upload.lifetime_s))
        row = ImageRow(
            seq=0,
            id=image_id,
            filename=filename,
            original_name=upload.original_name,
            content_type=info.content_type,
            size=size,
            width=info.width,
            height=info.height,
            created_at=timestamp(now),
            delete_token_hash=token_hash,
            expires_at=expires_at,
            content_hash=content_hash,
        )
        try:
            with metrics.step("catalog"):
                return Stored(self.catalog.add(row), token)
        except BaseException:
            self.store.delete(filename)
            raise

    def index(self, filename: str, original_name: str) -> ImageRow:
        """Give a stored file that has no row one (check, reindex), and its thumbnail.

        The row has no delete token: only the admin key deletes what nobody uploaded here.
        `created_at` is the file's modification time. Raises errors.UnsupportedImage or
        errors.ImageRejected when the file is not an image we accept; nothing is added then.
        FileNotFoundError when it is gone.
        """
        stat = self.store.info(filename)
        with self.store.local_copy(filename) as local:
            info = images.inspect(local, max_pixels=self.limits.max_pixels)
            content_hash = _sha256(local) if self.store.dedupes else None
            row = self.catalog.add(
                ImageRow(
                    seq=0,
                    id=image_id_of(filename),
                    filename=filename,
                    original_name=original_name,
                    content_type=info.content_type,
                    size=stat.size,
                    width=info.width,
                    height=info.height,
                    created_at=timestamp(
                        datetime.datetime.fromtimestamp(stat.modified_s, datetime.UTC)
                    ),
                    delete_token_hash=None,
                    content_hash=content_hash,  # check links it to its twins, if any
                )
            )
            if not self.store.has_thumbnail(row.filename):
                self._thumbnail_from(local, row.filename)
        return row

    def adopt(self, path: Path) -> ImageRow:
        """Index a file dropped into the image folder under a name we did not make (reindex;
        local files only: the S3 store has no foreign files).

        It is checked first, then renamed to a new stored name. Raises like `index` when it is
        not an image we accept; the file is then left where it is.
        """
        info = images.inspect(path, max_pixels=self.limits.max_pixels)
        filename = f"{new_image_id()}.{info.ext}"
        self.store.adopt(path, filename)
        return self.index(filename, path.name)

    def remake_thumbnail(self, filename: str) -> bool:
        """Write the thumbnail of a stored image again; False when the original is unreadable
        or gone (it stays listed, without a thumbnail)."""
        try:
            with self.store.local_copy(filename) as local:
                return self._thumbnail_from(local, filename)
        except FileNotFoundError:
            return False

    def make_missing_thumbnail(self, thumb_name: str) -> bool:
        """Make the thumbnail `thumb_name` of a listed image that has none (its first request):
        False when no live image has a thumbnail of that name, or its original is unreadable."""
        row = self.catalog.get_by_id(thumb_name.rsplit(".", 1)[0])
        if row is None or thumbnail_name(row.filename) != thumb_name:
            return False
        return self.remake_thumbnail(row.filename)

    def _thumbnail_from(self, original: Path, filename: str) -> bool:
        with self.slots, self.store.scratch("thumb") as temp:  # a decode: one at a time
            try:
                images.make_thumbnail(original, temp)
            except (UnsupportedImage, ImageRejected):
                return False
            self.store.put_thumbnail(temp, filename)
        return True
