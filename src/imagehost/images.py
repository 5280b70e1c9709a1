"""The image pipeline, and the only module that imports PIL: detect, verify, scrub, thumbnail.

(Interface fixed by the core; the implementation is being written.)
"""

from dataclasses import dataclass
from pathlib import Path

# format name (as in ALLOWED_FORMATS) -> (stored file extension, served Content-Type)
FORMATS = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "gif": ("gif", "image/gif"),
    "webp": ("webp", "image/webp"),
    "avif": ("avif", "image/avif"),
}
THUMBNAIL_MAX_SIDE = 320


@dataclass(frozen=True)
class ImageInfo:
    format: str  # key of FORMATS
    ext: str
    content_type: str
    width: int  # after EXIF orientation is applied, in pixels
    height: int
    frames: int  # 1 for still images


def process(
    source: Path,
    stored: Path,
    thumbnail: Path,
    *,
    allowed_formats: tuple[str, ...],
    max_pixels: int,
    max_frames: int,
    strip_metadata: bool,
) -> ImageInfo:
    """Run the whole pipeline on the uploaded bytes in `source`.

    Writes the file to store at `stored` (scrubbed of metadata when `strip_metadata`, else a
    copy) and a WebP thumbnail at `thumbnail`; neither is fsynced (the store does that).
    Raises errors.UnsupportedImage (415) when the bytes are not an allowed format, and
    errors.ImageRejected (422, codes too_many_pixels / too_many_frames / corrupt_image) when
    the image cannot be accepted. On error it may leave partial files at `stored`/`thumbnail`;
    the caller removes them.
    """
    raise NotImplementedError


def make_thumbnail(source: Path, thumbnail: Path) -> None:
    """Write the WebP thumbnail (longest side <= 320 px, orientation applied, first frame)."""
    raise NotImplementedError


def inspect(source: Path, *, max_pixels: int) -> ImageInfo:
    """Detect and verify a stored file (for reindex/check); raises like `process`."""
    raise NotImplementedError
