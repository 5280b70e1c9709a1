"""The formats registry: every fact about an accepted image format, written once.

Each entry names the format as ALLOWED_FORMATS spells it, the extension a stored file gets, the
Content-Type it is served with and the name Pillow knows it by, and carries the byte-level
functions of its container. Everything else that lists the formats — the settings' choices,
route and store name patterns, OpenAPI, the nginx template's image location and `types` block,
tests and the benchmark — is derived from FORMATS. No module of this package imports Pillow
(tests/test_formats.py checks): images.py decodes, these modules only walk containers.

base     Corrupt (what every walk raises on broken bytes) and the pixel and frame ceilings
exif     the minimal EXIF block written back, the IFD0 orientation reader
jpeg     marker segments: scrub, cut after EOI
png      chunks: CRC check, scrub, cut after IEND
gif      blocks: frame walk, scrub, cut at the trailer
webp     RIFF chunks: canvas from the header, size check, scrub, cut at the RIFF end
avif     ISOBMFF boxes: where the image ends, metadata items blanked in place
"""

from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass

from . import avif, gif, jpeg, png, webp
from .base import CEILING_FRAMES as CEILING_FRAMES  # re-exported for config and images
from .base import CEILING_PIXELS as CEILING_PIXELS
from .base import Corrupt as Corrupt

# A stored image id: what store.new_image_id makes (16 characters), with room for ids made by
# earlier versions or by hand (reindex keeps a valid name as it is).
ID_PATTERN = r"[A-Za-z0-9_-]{10,64}"
THUMBNAIL_EXT = "webp"
THUMBNAIL_TYPE = "image/webp"


@dataclass(frozen=True)
class Format:
    name: str  # as in ALLOWED_FORMATS
    ext: str  # of the stored file
    content_type: str  # served with
    pil_name: str  # Pillow's format name (images.py is the only user)
    _: KW_ONLY
    # The container's functions; each raises Corrupt on bytes it cannot walk. Used by images.py.
    # (data, strip, orientation) -> the pieces of the stored file: the image's own bytes only,
    # scrubbed of metadata when `strip`, `orientation` (None: leave EXIF alone) written back.
    rewrite: Callable[[bytes, bool, int | None], Iterator[memoryview | bytes]]
    # Walks the whole container (all frames) where the decoder of the first frame would not.
    check: Callable[[bytes], None] | None = None
    # Canvas (width, height) from the first 512 bytes, for a decoder that allocates it on open.
    header_canvas: Callable[[bytes], tuple[int, int] | None] | None = None
    # The canvas after each frame, lazily: frames counted by a walk instead of by the decoder.
    frame_canvases: Callable[[bytes], Iterator[tuple[int, int]]] | None = None
    # Where the image ends when only a decoder can confirm a cut there (see avif.image_end);
    # images.scrub then hands rewrite a memoryview of data[:end] rather than a copy.
    image_end: Callable[[bytes], int] | None = None


# Order: the default of ALLOWED_FORMATS and of every list derived from it.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("jpeg", "jpg", "image/jpeg", "JPEG", rewrite=jpeg.rewrite),
        Format("png", "png", "image/png", "PNG", rewrite=png.rewrite, check=png.check),
        Format(
            "gif", "gif", "image/gif", "GIF", rewrite=gif.rewrite, frame_canvases=gif.frame_canvases
        ),
        Format(
            "webp",
            "webp",
            "image/webp",
            "WEBP",
            rewrite=webp.rewrite,
            check=webp.check,
            header_canvas=webp.header_canvas,
        ),
        Format(
            "avif", "avif", "image/avif", "AVIF", rewrite=avif.rewrite, image_end=avif.image_end
        ),
    )
}
NAMES = tuple(FORMATS)
BY_EXT = {f.ext: f for f in FORMATS.values()}
EXTENSIONS = tuple(BY_EXT)

# Unanchored, without capturing groups: each user anchors (\Z in Python, ^…$ elsewhere).
IMAGE_NAME_PATTERN = rf"{ID_PATTERN}\.(?:{'|'.join(EXTENSIONS)})"
THUMB_NAME_PATTERN = rf"{ID_PATTERN}\.{THUMBNAIL_EXT}"


def sniff(head: bytes) -> Format | None:
    """The format the magic bytes at the start of a file announce, or None.

    The same signatures Pillow accepts, so a file sniffed here is opened with that plugin only.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return FORMATS["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FORMATS["png"]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return FORMATS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FORMATS["webp"]
    if head[4:8] == b"ftyp":
        # AVIF only by brand: HEIC shares the container (and often the 'mif1' major brand).
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return FORMATS["avif"]
    return None
