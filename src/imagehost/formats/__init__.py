"""The formats registry: every fact about an accepted image format, written once.

Each entry names the format as ALLOWED_FORMATS spells it, its file extension and Content-Type
(those a stored file gets and is served with), the name Pillow knows it by, what else an
uploader's browser may call it, and carries the byte-level functions of its container. One
format is accepted but not stored as itself: HEIC (`stored_as="jpeg"`), which browsers other
than Safari cannot show, is re-encoded to JPEG by images.py. Everything else that lists the
formats is derived from FORMATS: the settings' choices (NAMES), what the upload page accepts
(upload_types, upload_extensions), and from STORED — the formats a stored file can be — the
route and store name patterns, OpenAPI's served types, the nginx template's image location and
`types` block, tests and the benchmark. No module of this package imports Pillow or pillow-heif
(tests/test_formats.py checks): images.py decodes, these modules only walk containers.

base     Corrupt (what every walk raises on broken bytes) and the pixel and frame ceilings
exif     the minimal EXIF block written back, the IFD0 orientation reader
jpeg     marker segments: scrub, cut after EOI
png      chunks: CRC check, scrub, cut after IEND
gif      blocks: frame walk, scrub, cut at the trailer
webp     RIFF chunks: canvas from the header, size check, scrub, cut at the RIFF end
avif     ISOBMFF boxes: where the image ends, metadata items blanked in place
heic     the same boxes: every size and image count declared, read before libheif parses them
"""

from collections.abc import Callable, Collection, Iterator
from dataclasses import KW_ONLY, dataclass

from . import avif, gif, heic, jpeg, png, webp
from .base import CEILING_FRAMES as CEILING_FRAMES  # re-exported for config and images
from .base import CEILING_PIXELS as CEILING_PIXELS
from .base import Corrupt as Corrupt

# A stored image id: what store.new_image_id makes (16 characters), with room for ids made by
# earlier versions or by hand (reindex keeps a valid name as it is).
ID_PATTERN = r"[A-Za-z0-9_-]{10,64}"
# ftyp brands of HEIF still images and sequences (ISO 23008-12 Annex B; 'mif1' the generic one).
# Checked after AVIF's: AVIF files carry 'mif1' too.
_HEIF_BRANDS = frozenset((b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1"))


@dataclass(frozen=True)
class Thumbnail:
    """A kind of thumbnail file: its extension, Content-Type and Pillow's name to encode it."""

    ext: str
    content_type: str
    pil_name: str


# JPEG for the thumbnails of JPEG originals (never transparent): ~10x cheaper to encode than
# WebP for the same fidelity (images.py, THUMBNAIL_JPEG_QUALITY); WebP for every other format,
# which may have transparency.
THUMBNAILS = {
    t.ext: t
    for t in (Thumbnail("jpg", "image/jpeg", "JPEG"), Thumbnail("webp", "image/webp", "WEBP"))
}


@dataclass(frozen=True)
class Format:
    name: str  # as in ALLOWED_FORMATS
    ext: str  # of the stored file (of the upload, for a format stored_as another)
    content_type: str  # served with (declared by uploaders, for a format stored_as another)
    pil_name: str  # Pillow's format name (images.py is the only user)
    _: KW_ONLY
    # The format uploads of this one are re-encoded to, stored and served as; None: as itself.
    stored_as: str | None = None
    # What else a browser may call a file of this format (besides ext and content_type), for
    # the upload page's file picker and its check before sending.
    other_exts: tuple[str, ...] = ()
    other_types: tuple[str, ...] = ()
    # The ext of its thumbnails, a key of THUMBNAILS (for a stored format).
    thumbnail: str = "webp"
    # The container's functions; each raises Corrupt on bytes it cannot walk. Used by images.py.
    # (data, strip, orientation) -> the pieces of the stored file: the image's own bytes only,
    # scrubbed of metadata when `strip`, `orientation` (None: leave EXIF alone) written back.
    # None for a format stored_as another: the re-encoded file holds no byte of the upload.
    rewrite: Callable[[bytes, bool, int | None], Iterator[memoryview | bytes]] | None = None
    # Walks the whole container (all frames) where the decoder of the first frame would not.
    check: Callable[[bytes], None] | None = None
    # Canvas (width, height) from the first 512 bytes, for a decoder that allocates it on open.
    header_canvas: Callable[[bytes], tuple[int, int] | None] | None = None
    # The canvas after each frame, lazily: frames counted by a walk instead of by the decoder.
    frame_canvases: Callable[[bytes], Iterator[tuple[int, int]]] | None = None
    # Where the image ends when only a decoder can confirm a cut there (see avif.image_end);
    # images.scrub then hands rewrite a memoryview of data[:end] rather than a copy.
    image_end: Callable[[bytes], int] | None = None
    # Every size and the image count the whole container declares, for a decoder (libheif)
    # that parses all of it on open and allocates what it says when decoding.
    declared: Callable[[bytes], heic.Declared] | None = None

    @property
    def thumbnail_kind(self) -> Thumbnail:
        """How thumbnails of this format's stored files are encoded."""
        return THUMBNAILS[self.thumbnail]


# Order: the default of ALLOWED_FORMATS and of every list derived from it.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "jpeg",
            "jpg",
            "image/jpeg",
            "JPEG",
            other_exts=("jpeg",),
            thumbnail="jpg",
            rewrite=jpeg.rewrite,
        ),
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
        Format(
            "heic",
            "heic",
            "image/heic",
            "HEIF",  # as pillow-heif registers it; images.py calls pillow-heif directly
            stored_as="jpeg",
            other_exts=("heif",),
            other_types=("image/heif",),
            declared=heic.declared,
        ),
    )
}
NAMES = tuple(FORMATS)
# The formats a stored file can be: what is served, named and typed by nginx, listed by OpenAPI.
STORED = {name: f for name, f in FORMATS.items() if f.stored_as is None}
STORED_TYPES = tuple(f.content_type for f in STORED.values())
BY_EXT = {f.ext: f for f in STORED.values()}
EXTENSIONS = tuple(BY_EXT)


def stored_format(name: str) -> Format:
    """The format an upload detected as `name` is stored and served as (itself, or JPEG)."""
    found = FORMATS[name]
    return FORMATS[found.stored_as] if found.stored_as else found


def thumbnail_of(ext: str) -> Thumbnail:
    """The kind of thumbnail a stored original with extension `ext` has."""
    return BY_EXT[ext].thumbnail_kind


def upload_types(names: Collection[str] = NAMES) -> tuple[str, ...]:
    """The Content-Types a browser may give files of the formats `names`, for the upload page."""
    found = [FORMATS[n] for n in names]
    return tuple(dict.fromkeys(t for f in found for t in (f.content_type, *f.other_types)))


def upload_extensions(names: Collection[str] = NAMES) -> tuple[str, ...]:
    """The file name extensions (".jpg", ".jpeg", …) of the formats `names`, for the same."""
    found = [FORMATS[n] for n in names]
    return tuple(dict.fromkeys(f".{e}" for f in found for e in (f.ext, *f.other_exts)))


# Unanchored, without capturing groups: each user anchors (\Z in Python, ^…$ elsewhere).
IMAGE_NAME_PATTERN = rf"{ID_PATTERN}\.(?:{'|'.join(EXTENSIONS)})"
THUMB_NAME_PATTERN = rf"{ID_PATTERN}\.(?:{'|'.join(THUMBNAILS)})"
THUMBNAIL_TYPES = tuple(t.content_type for t in THUMBNAILS.values())


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
        if brands & _HEIF_BRANDS:
            return FORMATS["heic"]
    return None
