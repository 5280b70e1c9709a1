"""The image pipeline, and the only module that imports PIL: detect, verify, scrub, thumbnail."""

import errno
import io
import re
import struct
import warnings
import zlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import AvifImagePlugin, Image

from . import errors

# format name (as in ALLOWED_FORMATS) -> (stored file extension, served Content-Type)
FORMATS = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "gif": ("gif", "image/gif"),
    "webp": ("webp", "image/webp"),
    "avif": ("avif", "image/avif"),
}
THUMBNAIL_MAX_SIDE = 320

# Thumbnail settings, chosen for upload throughput (bench/pipeline.py measures them): libwebp's
# fastest method 0 costs ~2.5 ms for 320x240 against ~11 ms for the default 4, for files ~10%
# larger; quality 80 keeps a photo sharp at 10-20 KB. Bilinear (antialiased when shrinking, as
# all Pillow filters are) from an input at most ~2x the target costs ~60% of bicubic.
THUMBNAIL_QUALITY = 80
THUMBNAIL_METHOD = 0
THUMBNAIL_RESAMPLE = Image.Resampling.BILINEAR
_BAND_BYTES = 4 * 1024 * 1024  # full-size rows shrunk at a time (see _shrink)

# We enforce the configured pixel limit ourselves, from the header, before any pixel is decoded
# (and for every GIF frame). Pillow's own guard is process-wide and only *warns* between 1x and
# 2x its limit, so it is switched off rather than left to disagree with MAX_IMAGE_PIXELS.
Image.MAX_IMAGE_PIXELS = None
# One decoder thread: there is a worker process per CPU already, and libavif's default (every
# CPU, in each of them) oversubscribes the machine and adds per-thread frame buffers.
AvifImagePlugin.DEFAULT_MAX_THREADS = 1
# Pillow warns (UserWarning) about malformed metadata it skips, e.g. corrupt EXIF tags while
# reading a JPEG's DPI. The uploader controls those bytes: a stderr line each is noise.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

# The largest limits config.py accepts: `make_thumbnail` and `inspect` get no MAX_FRAMES, and
# `make_thumbnail` no MAX_IMAGE_PIXELS; the files they read were accepted under a limit already.
_CEILING_PIXELS = 1_000_000_000
_CEILING_FRAMES = 100_000

_PIL_NAME = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "avif": "AVIF"}
_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the image the way the camera meant it
# (the same table as PIL.ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # key of FORMATS
    ext: str
    content_type: str
    width: int  # after EXIF orientation is applied, in pixels
    height: int
    frames: int  # 1 for still images


@dataclass(frozen=True)
class Probe:
    """What `detect` learnt from the headers: format, stored size in pixels, frame count."""

    format: str
    width: int  # as stored, before orientation
    height: int
    frames: int


@dataclass
class Decoded:
    """What `verify` decoded: the first frame shrunk for the thumbnail, and its orientation."""

    frame: Image.Image  # longest side between 2x THUMBNAIL_MAX_SIDE and 4x, or smaller
    orientation: int  # EXIF orientation 1..8 as exif_transpose reads it (EXIF, else XMP)
    icc_profile: bytes | None


class _Corrupt(Exception):
    """Our own container parsers found the bytes broken (becomes corrupt_image)."""


def _corrupt() -> errors.ImageRejected:
    return errors.ImageRejected("The image is truncated or corrupt.", code="corrupt_image")


@contextmanager
def _translated() -> Iterator[None]:
    """Turn whatever Pillow or our parsers raise about bad bytes into our 415/422 errors.

    OS errors that carry an errno (disk, permissions) are not the upload's fault and pass through.
    """
    try:
        yield
    except errors.ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.ImageRejected(
            "The image has more pixels than this server accepts.", code="too_many_pixels"
        ) from exc
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _corrupt() from exc  # includes UnidentifiedImageError for bytes we sniffed as ours
    except (
        _Corrupt,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        IndexError,
        TypeError,
        KeyError,
        zlib.error,
        RuntimeError,
        ArithmeticError,  # e.g. Pillow 13.0.0 divides by an AVIF track's timescale, even if 0
    ) as exc:
        raise _corrupt() from exc


def _write(path: Path, pieces: Iterable[bytes | memoryview]) -> None:
    """Write `pieces` to `path`; a full disk becomes StorageFull (507), other OS errors pass."""
    try:
        with open(path, "wb") as out:
            for piece in pieces:
                out.write(piece)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.StorageFull() from exc
        raise


# --------------------------------------------------------------------------------------------
# detect


def _sniff(head: bytes) -> str | None:
    """The format the magic bytes announce, or None: the same signatures Pillow accepts."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        # AVIF only by brand: HEIC shares the container (and often the 'mif1' major brand).
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "avif"
    return None


def _webp_canvas(head: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP's first chunk, without libwebp (which allocates the canvas)."""
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return (
            int.from_bytes(head[24:27], "little") + 1,
            int.from_bytes(head[27:30], "little") + 1,
        )
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", head, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise _Corrupt("empty image")
    if width * height > max_pixels:
        raise errors.ImageRejected(
            f"The image is {width}x{height} pixels; this server accepts at most "
            f"{max_pixels} pixels.",
            code="too_many_pixels",
        )


def _too_many_frames(max_frames: int) -> errors.ImageRejected:
    return errors.ImageRejected(
        f"The animation has more than {max_frames} frames.", code="too_many_frames"
    )


def _bytes(source: Path | bytes) -> bytes:
    """The image's bytes: uploads arrive in memory; stored files are read (at most the limit)."""
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def detect(
    source: Path | bytes, *, allowed_formats: Collection[str], max_pixels: int, max_frames: int
) -> Probe:
    """Identify `source` from its bytes and apply the header limits; no pixel is decoded.

    Returns the format, the stored size in pixels (before orientation) and the frame count.
    Raises errors.UnsupportedImage (415) when the bytes are not one of `allowed_formats`
    (whatever the file is called), errors.ImageRejected (422) with code too_many_pixels when
    width x height (of the canvas, or of any GIF frame) exceeds `max_pixels`, too_many_frames
    when there are more than `max_frames` frames (GIFs are counted by walking their blocks and
    stop at max_frames + 1), corrupt_image when the headers are unreadable.
    """
    data = _bytes(source)
    head = data[:512]
    fmt = _sniff(head)
    if fmt is None:
        raise errors.UnsupportedImage()
    if fmt not in allowed_formats:
        raise errors.UnsupportedImage(f"{fmt.upper()} images are not accepted here.")
    with _translated():
        if fmt == "webp" and (canvas := _webp_canvas(head)):
            _check_pixels(*canvas, max_pixels)
        with Image.open(io.BytesIO(data), formats=[_PIL_NAME[fmt]]) as im:
            width, height = im.size
            _check_pixels(width, height, max_pixels)
            if fmt == "jpeg":
                frames = 1  # an MPO's extra pictures are not shown by browsers and not kept
            elif fmt == "gif":
                frames = _gif_frames(data, max_pixels, max_frames)
            else:
                frames = getattr(im, "n_frames", 1)  # from acTL / the WebP demuxer / libavif
    if frames > max_frames:
        raise _too_many_frames(max_frames)
    return Probe(fmt, width, height, frames)


# --------------------------------------------------------------------------------------------
# verify


def verify(source: Path | bytes, probe: Probe) -> Decoded:
    """Decode the first frame of `source` (as identified by `detect`) and check the container.

    JPEGs are decoded in draft mode at 1/2..1/8 scale (every byte of the scan is still entropy
    decoded, so truncation is caught) and other formats at full size, one frame at a time; the
    frame is then shrunk for the thumbnail and the full-size copy dropped. PNG chunk CRCs and
    WebP RIFF sizes are checked for the whole file (every frame), GIF blocks were walked by
    `detect`. Raises errors.ImageRejected code corrupt_image when anything does not decode.
    """
    data = _bytes(source)
    with _translated():
        if probe.format == "png":
            for _ in _png_chunks(data):
                pass
        elif probe.format == "webp":
            for _ in _riff_chunks(data):
                pass
        with Image.open(io.BytesIO(data), formats=[_PIL_NAME[probe.format]]) as im:
            if probe.format == "jpeg":
                # Ask for the thumbnail's own size (aspect kept): a square box would stop the
                # DCT scaling at the short side, e.g. 640x480 decoded whole instead of 320x240.
                im.draft(None, _fit(im.size, THUMBNAIL_MAX_SIDE))
            im.load()
            orientation = _orientation(im)
            icc_profile = im.info.get("icc_profile") or None
            frame = _shrink(im)
    return Decoded(frame, orientation, icc_profile)


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8 as ImageOps.exif_transpose reads it: IFD0's Orientation tag, else
    XMP's tiff:Orientation; 1 when absent or unreadable.

    Read here rather than with im.getexif(): that parses every IFD of attacker-made EXIF (with
    a warning per oddity) when one tag is needed.
    """
    exif = im.info.get("exif")
    raw_profile = im.info.get("Raw profile type exif")  # ImageMagick's PNG text chunk
    if exif is None and isinstance(raw_profile, str):
        try:
            exif = bytes.fromhex("".join(raw_profile.split("\n")[3:]))
        except ValueError:
            exif = None
    value = _exif_orientation(exif) if isinstance(exif, bytes) else None
    if value is None:
        xmp = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        match = re.search(rb'tiff:Orientation(="|>)([0-9])', xmp) if xmp else None
        value = int(match[2]) if match else None
    return value if value is not None and 1 <= value <= 8 else 1


def _exif_orientation(exif: bytes) -> int | None:
    """The Orientation (0x0112) value in IFD0 of an EXIF/TIFF block, or None."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(exif[:4])
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", exif, entry)
            if tag == _ORIENTATION_TAG:
                # SHORT as the standard says; some writers use LONG.
                return struct.unpack_from(order + ("I" if kind == 4 else "H"), exif, entry + 8)[0]
    except struct.error:
        return None
    return None


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled down (never up) so its longest side is at most `side` pixels."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _shrink(im: Image.Image) -> Image.Image:
    """A new image at most ~4x the thumbnail size, so the full-size frame can be let go.

    Box-reduced in horizontal bands: Image.reduce on RGBA premultiplies into a full-size copy
    first (another 200 MB for a 50 MP frame); band by band the extra is ~2x _BAND_BYTES, and
    the result is byte-identical because bands are cut on multiples of the factor.
    """
    factor = max(im.size) // (2 * THUMBNAIL_MAX_SIDE)
    if factor < 2:
        return im  # already small; the decoded data outlives the closed file
    width, height = im.size
    if im.mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        # Palette / bilevel / 16-bit frames: averaging palette indices would be noise.
        size = (max(1, width // factor), max(1, height // factor))
        return im.resize(size, Image.Resampling.NEAREST)
    out = Image.new(im.mode, (-(-width // factor), -(-height // factor)))
    out.info = im.info.copy()
    rows = max(1, _BAND_BYTES // (width * len(im.getbands()) * factor)) * factor
    for top in range(0, height, rows):
        band = im.crop((0, top, width, min(height, top + rows)))
        out.paste(band.reduce(factor), (0, top // factor))
    return out


# --------------------------------------------------------------------------------------------
# thumbnail


def write_thumbnail(decoded: Decoded, thumbnail: Path) -> None:
    """Write the WebP thumbnail of `decoded` (from `verify`) to `thumbnail`.

    Longest side <= THUMBNAIL_MAX_SIDE px (never enlarged), orientation applied, RGB or RGBA,
    the ICC profile kept when it is an RGB one. Consumes `decoded.frame`. Raises
    errors.StorageFull when the disk is full.
    """
    with _translated():
        im = _display_mode(decoded.frame)
        im.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), THUMBNAIL_RESAMPLE)
        if decoded.orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[decoded.orientation])
        icc = decoded.icc_profile
        # A CMYK or grey profile would be wrong on the RGB thumbnail (ICC header: colour space).
        keep_icc = icc is not None and icc[16:20] == b"RGB "
        encoded = io.BytesIO()
        im.save(
            encoded,
            "WEBP",
            quality=THUMBNAIL_QUALITY,
            method=THUMBNAIL_METHOD,
            icc_profile=icc if keep_icc else None,
        )
    _write(thumbnail, [encoded.getbuffer()])


def _display_mode(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the frame has transparency, from whatever mode the decoder gave."""
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode.startswith("I"):  # 16-bit grey: scale to 8 bits (convert() would clip)
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode == "1":
        im = im.convert("L")
    return im.convert("RGBA" if im.has_transparency_data else "RGB")


def make_thumbnail(source: Path, thumbnail: Path) -> None:
    """Write the WebP thumbnail (longest side <= 320 px, orientation applied, first frame).

    For a stored file (`imagehost check`); any of the five formats. Raises like `process`
    (415 / 422) when `source` is not a readable image, errors.StorageFull on a full disk.
    """
    data = _bytes(source)
    probe = detect(
        data, allowed_formats=FORMATS, max_pixels=_CEILING_PIXELS, max_frames=_CEILING_FRAMES
    )
    write_thumbnail(verify(data, probe), thumbnail)


# --------------------------------------------------------------------------------------------
# scrub


def scrub(source: Path | bytes, stored: Path, fmt: str, orientation: int, *, strip: bool) -> None:
    """Write the image in `source` (format `fmt`, as detected) to `stored`, without re-encoding.

    Always: only the image's own bytes are written; anything after its end (after JPEG EOI, PNG
    IEND, the GIF trailer, the RIFF or last ISOBMFF box, e.g. an appended HTML polyglot) is
    dropped, and a missing end marker is added. With `strip`: EXIF (GPS, maker notes, embedded
    thumbnail), XMP, IPTC, comments and text chunks are removed; ICC profiles and everything
    that affects decoding stay; `orientation` (1..8) other than 1 is written back as a minimal
    EXIF block holding only that tag. Raises errors.ImageRejected corrupt_image when the
    container is broken, errors.StorageFull on a full disk.
    """
    data = _bytes(source)
    with _translated():
        keep = orientation if strip else None
        pieces = list(_REWRITERS[fmt](data, strip, keep))
    _write(stored, pieces)


def _minimal_tiff(orientation: int | None) -> bytes:
    """A big-endian TIFF/EXIF block whose IFD0 holds only Orientation (or nothing)."""
    if orientation is None or orientation == 1:
        return b"MM\x00\x2a" + struct.pack(">IHI", 8, 0, 0)
    entry = struct.pack(">HHIHH", _ORIENTATION_TAG, 3, 1, orientation, 0)  # SHORT, count 1
    return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


# JPEG: walk the marker segments (lengths say where each ends, so an EXIF thumbnail's own
# SOI/EOI inside APP1 is skipped); entropy-coded data runs until a 0xFF that is not a stuffed
# 0xFF00, a fill byte or a restart marker.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def _jpeg_keep(marker: int, payload: bytes | memoryview) -> bool:
    """Which segments survive scrubbing: decoding tables, frame/scan headers, JFIF, ICC, Adobe."""
    head = bytes(payload[:12])
    if marker == 0xE0:
        return head.startswith(b"JFIF\x00")  # JFXX (a thumbnail) and others go
    if marker == 0xE2:
        return head.startswith(b"ICC_PROFILE\x00")  # MPF and FlashPix go
    if marker == 0xEE:
        return head.startswith(b"Adobe")  # its transform flag decides how CMYK/YCCK decode
    # APP1 EXIF/XMP, APP13 IPTC, other APPn, COM
    return not (0xE0 <= marker <= 0xEF or marker == 0xFE)


def _jpeg_pieces(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    view = memoryview(data)
    n = len(data)
    yield view[:2]  # SOI
    exif = None
    if strip and orientation not in (None, 1):
        tiff = b"Exif\x00\x00" + _minimal_tiff(orientation)
        exif = b"\xff\xe1" + struct.pack(">H", len(tiff) + 2) + tiff
    pos, in_scan = 2, False
    while pos < n:
        if in_scan or data[pos] != 0xFF:
            match = _JPEG_MARKER.search(data, pos)
            end = match.start() if match else n
            if in_scan or not strip:  # entropy-coded data; or junk, kept only when copying
                yield view[pos:end]
            pos, in_scan = end, False
            continue
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            if not strip:
                yield view[pos : pos + 1]
            pos += 1
            continue
        if marker == 0xD9:  # EOI: the end of the primary image; what follows is dropped
            yield view[pos : pos + 2]
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            yield view[pos : pos + 2]
            pos += 2
            continue
        if marker == 0xD8 or pos + 4 > n:
            raise _Corrupt("misplaced SOI or truncated segment")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end < pos + 4 or end > n:
            raise _Corrupt("segment runs past the end")
        if not strip or _jpeg_keep(marker, view[pos + 4 : end]):
            is_jfif = marker == 0xE0 and data.startswith(b"JFIF\x00", pos + 4)
            if exif is not None and not is_jfif:  # EXIF goes right after SOI / JFIF APP0
                yield exif
                exif = None
            yield view[pos:end]
        pos, in_scan = end, marker == 0xDA
    yield b"\xff\xd9"  # no EOI, yet it decoded: close the stream


# PNG: critical chunks, colour information, transparency, physical size and APNG animation stay.
_PNG_KEEP = frozenset(
    b"IHDR PLTE IDAT IEND tRNS cHRM gAMA iCCP sBIT sRGB cICP mDCV cLLI bKGD hIST pHYs "
    b"acTL fcTL fdAT".split()
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(ctype))
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int, bool]]:
    """(type, start, end, crc_ok) for each chunk up to IEND; raises _Corrupt when broken.

    Like libpng, a bad CRC is fatal in a critical chunk and only marks an ancillary one.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise _Corrupt("not a PNG")
    view = memoryview(data)
    pos, n = 8, len(data)
    while pos < n:
        if pos + 12 > n:
            raise _Corrupt("truncated chunk")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _Corrupt("truncated chunk")
        crc_ok = zlib.crc32(view[pos + 4 : end - 4]) == int.from_bytes(data[end - 4 : end], "big")
        if not crc_ok and ctype[:1].isupper():
            raise _Corrupt(f"bad CRC in {ctype!r}")
        yield ctype, pos, end, crc_ok
        pos = end
        if ctype == b"IEND":
            return


def _png_pieces(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    view = memoryview(data)
    yield view[:8]
    last = None
    for ctype, start, end, crc_ok in _png_chunks(data):
        last = ctype
        if not strip or (ctype in _PNG_KEEP and crc_ok):
            yield view[start:end]
        if strip and ctype == b"IHDR" and orientation not in (None, 1):
            # eXIf right after IHDR: before IDAT, where every reader looks for it.
            yield _png_chunk(b"eXIf", _minimal_tiff(orientation))
    if last != b"IEND":
        yield _png_chunk(b"IEND", b"")


# GIF: blocks are walked byte by byte (no LZW decoding), so a frame costs only its size.
# Kept: frames, their graphic control (delay, disposal, transparency), looping and ICC profile.
_GIF_KEEP = frozenset(
    ("head", "image", "gce", "app:NETSCAPE2.0", "app:ANIMEXTS1.0", "app:ICCRGBG1012")
)


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Offset after the chain of data sub-blocks starting at `pos` (ends with a 0 length)."""
    n = len(data)
    while True:
        if pos >= n:
            raise _Corrupt("truncated GIF block")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _gif_blocks(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end): "head", "image", "gce", "app:<id>", "other", then "trailer".

    A missing trailer is tolerated, as are unknown bytes after the last block: both end the
    image there (they are where appended non-GIF data would start).
    """
    if len(data) < 13:
        raise _Corrupt("truncated GIF header")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    if pos > len(data):
        raise _Corrupt("truncated GIF palette")
    yield "head", 0, pos
    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x2C:  # image descriptor [+ local palette], LZW code size, data
            if pos + 11 > len(data):
                raise _Corrupt("truncated GIF frame")
            flags = data[pos + 9]
            start = pos + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            end = _gif_sub_blocks_end(data, start)
            yield "image", pos, end
        elif introducer == 0x21:  # extension: label, sub-blocks
            if pos + 2 > len(data):
                raise _Corrupt("truncated GIF extension")
            label = data[pos + 1]
            end = _gif_sub_blocks_end(data, pos + 2)
            if label == 0xF9 and end - pos == 8:  # its fixed size: 4 bytes of timing/flags
                kind = "gce"
            elif label == 0xFF and data[pos + 2] == 11:
                kind = "app:" + data[pos + 3 : pos + 14].decode("latin-1")
            else:
                kind = "other"  # comment (0xFE), plain text (0x01), unknown
            yield kind, pos, end
        else:
            break
        pos = end
    yield "trailer", pos, pos


def _gif_frames(data: bytes, max_pixels: int, max_frames: int) -> int:
    """Frame count, stopping at max_frames + 1; also refuses any frame reaching past the
    max_pixels canvas (Pillow grows the canvas to fit such a frame)."""
    frames = 0
    width, height = struct.unpack_from("<HH", data, 6)
    for kind, start, _ in _gif_blocks(data):
        if kind != "image":
            continue
        frames += 1
        if frames > max_frames:
            raise _too_many_frames(max_frames)
        left, top, w, h = struct.unpack_from("<4H", data, start + 1)
        width, height = max(width, left + w), max(height, top + h)
        _check_pixels(width, height, max_pixels)
    if frames == 0:
        raise _Corrupt("GIF without a frame")
    return frames


def _gif_pieces(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    view = memoryview(data)
    for kind, start, end in _gif_blocks(data):
        if kind == "trailer":
            yield b"\x3b"
        elif not strip or kind in _GIF_KEEP:
            yield view[start:end]


# WebP: RIFF chunks. VP8X flags say which optional chunks exist, so they are rewritten too.
_WEBP_KEEP = frozenset((b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"))
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, start, end incl. padding) for each top-level WebP chunk; _Corrupt if broken."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _Corrupt("not a WebP")
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise _Corrupt("truncated RIFF")
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise _Corrupt("truncated chunk header")
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > riff_end:
            raise _Corrupt("chunk runs past the RIFF end")
        end = min(pos + 8 + size + (size & 1), riff_end)
        yield data[pos : pos + 4], pos, end
        pos = end


def _webp_pieces(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    view = memoryview(data)
    chunks = list(_riff_chunks(data))
    if not strip:
        yield view[: 8 + int.from_bytes(data[4:8], "little")]
        return
    body: list[memoryview | bytes] = []
    vp8x = None
    for fourcc, start, end in chunks:
        if fourcc == b"VP8X":
            vp8x = bytearray(view[start:end])
            body.append(vp8x)
        elif fourcc in _WEBP_KEEP:
            body.append(view[start:end])
    if vp8x is not None:
        vp8x[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        if orientation not in (None, 1):  # EXIF is only allowed in the extended format
            tiff = _minimal_tiff(orientation)
            body.append(b"EXIF" + struct.pack("<I", len(tiff)) + tiff + b"\x00" * (len(tiff) & 1))
            vp8x[8] |= _VP8X_EXIF
    yield b"RIFF" + struct.pack("<I", 4 + sum(len(p) for p in body)) + b"WEBP"
    yield from body


# AVIF (ISOBMFF/HEIF): EXIF and XMP are items whose bytes the 'iloc' box locates (usually in
# 'mdat'). Removing items would mean rewriting iinf/iloc/iref and every offset, so instead the
# items' bytes are overwritten in place: EXIF with a minimal valid payload (libavif refuses an
# invalid one), XMP and other 'mime' items with spaces. Nothing moves and no pixel is touched;
# orientation lives in the irot/imir properties, which stay. udta/uuid boxes are blanked too.
_ISOBMFF_CONTAINERS = frozenset((b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"))


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) for the boxes in data[start:end]."""
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise _Corrupt("truncated box header")
        size = int.from_bytes(data[pos : pos + 4], "big")
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _Corrupt("truncated box header")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _Corrupt("box runs past its parent")
        yield bytes(data[pos + 4 : pos + 8]), pos, pos + header, pos + size
        pos += size


def _avif_end(data: bytes) -> int:
    """End of the last complete top-level box: bytes after it are not part of the file."""
    pos = 0
    try:
        for _, _, _, end in _boxes(data, 0, len(data)):
            pos = end
    except _Corrupt:
        pass
    return pos


def _uint(data: bytes | bytearray, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "big") if size else 0


def _avif_metadata_items(data: bytearray, meta_start: int, meta_end: int) -> dict[int, bytes]:
    """item_ID -> item type, for the 'Exif' and 'mime' (XMP) items of a 'meta' box."""
    items: dict[int, bytes] = {}
    for btype, _, payload, end in _boxes(data, meta_start, meta_end):
        if btype != b"iinf":
            continue
        first = payload + 4 + (2 if data[payload] == 0 else 4)  # FullBox, entry_count
        for etype, _, entry, _ in _boxes(data, first, end):
            version = data[entry]
            if etype != b"infe" or version < 2:
                continue
            id_size = 2 if version == 2 else 4
            item_id = _uint(data, entry + 4, id_size)
            item_type = bytes(data[entry + 6 + id_size : entry + 10 + id_size])
            if item_type in (b"Exif", b"mime"):
                items[item_id] = item_type
    return items


def _avif_extents(data: bytearray, meta_start: int, meta_end: int) -> dict[int, list[range]]:
    """item_ID -> absolute byte ranges of its data, from the 'iloc' box (and 'idat')."""
    idat = next((p for t, _, p, _ in _boxes(data, meta_start, meta_end) if t == b"idat"), None)
    iloc = next((b for b in _boxes(data, meta_start, meta_end) if b[0] == b"iloc"), None)
    if iloc is None:
        return {}
    _, _, pos, iloc_end = iloc
    version = data[pos]
    offset_size, length_size = data[pos + 4] >> 4, data[pos + 4] & 15
    base_size = data[pos + 5] >> 4
    index_size = data[pos + 5] & 15 if version in (1, 2) else 0
    pos += 6
    count_size = 2 if version < 2 else 4
    count = _uint(data, pos, count_size)
    pos += count_size
    extents: dict[int, list[range]] = {}
    for _ in range(count):
        if pos + count_size > iloc_end:
            raise _Corrupt("iloc runs past its box")
        item_id = _uint(data, pos, count_size)
        pos += count_size
        method = 0
        if version in (1, 2):
            method = _uint(data, pos, 2) & 15
            pos += 2
        pos += 2  # data_reference_index
        base = _uint(data, pos, base_size)
        pos += base_size
        extent_count = _uint(data, pos, 2)
        pos += 2
        extent_size = index_size + offset_size + length_size
        if pos + extent_count * extent_size > iloc_end or (extent_size == 0 and extent_count > 1):
            raise _Corrupt("iloc runs past its box")  # also bounds the loops by the box size
        ranges = []
        for _ in range(extent_count):
            pos += index_size
            offset = base + _uint(data, pos, offset_size)
            length = _uint(data, pos + offset_size, length_size)
            pos += offset_size + length_size
            if method == 1 and idat is not None:
                offset += idat
            elif method != 0:
                offset = -1  # item-offset construction: not used for metadata by any encoder
            ranges.append(range(offset, offset + length if length else len(data)))
        extents[item_id] = ranges
    return extents


def _blank(data: bytearray, ranges: list[range], replacement: bytes, filler: bytes) -> None:
    """Overwrite the bytes of `ranges` (in order) with `replacement`, padded with `filler`."""
    total = sum(len(r) for r in ranges)
    payload = replacement + filler * (total - len(replacement))
    done = 0
    for r in ranges:
        if r.start < 0 or r.stop > len(data):
            raise _Corrupt("metadata item outside the file")
        data[r.start : r.stop] = payload[done : done + len(r)]
        done += len(r)


def _avif_pieces(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    boxes_end = _avif_end(data)
    meta = next((b for b in _boxes(data, 0, boxes_end) if b[0] == b"meta"), None)
    extents = _avif_extents(data, meta[2] + 4, meta[3]) if meta else {}
    # libavif reads items wherever iloc points, even past the last well-formed box: keep those
    # bytes, or an image that decoded would not decode once stored.
    item_ends = [r.stop for ranges in extents.values() for r in ranges if r.start >= 0]
    end = min(len(data), max([boxes_end, *item_ends]))
    if end < len(data) and not _avif_still_reads(data[:end], data):
        end = len(data)  # the tail held track samples (found through stco/stsc): keep it
    out = bytearray(memoryview(data)[:end])
    if strip:
        top = list(_boxes(out, 0, boxes_end))
        # Item data lives in mdat (or idat); blanking must not touch any track sample.
        holders = [range(payload, end) for btype, _, payload, end in top if btype == b"mdat"]
        samples = [r for b in top if b[0] == b"moov" for r in _track_samples(out, b[2], b[3])]
        for btype, box, payload, end in top:
            if btype == b"meta":
                _avif_blank_items(out, payload + 4, end, orientation, holders, samples)
            elif btype in _ISOBMFF_CONTAINERS:
                _avif_blank_boxes(out, payload, end)
            elif btype in (b"udta", b"uuid"):
                _blank_box(out, box, payload, end)
    yield out


def _avif_still_reads(trimmed: bytes, original: bytes) -> bool:
    """Whether libavif parses `trimmed` to as many frames as `original` and decodes frame 0.

    Run only when a tail was cut (appended data, rare): cheaper than following every sample
    table to prove the tail unused.
    """
    try:
        with Image.open(io.BytesIO(original), formats=["AVIF"]) as im:
            frames = im.n_frames
        with Image.open(io.BytesIO(trimmed), formats=["AVIF"]) as im:
            im.load()
            return im.n_frames == frames
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError, ArithmeticError):
        return False


def _avif_blank_items(
    data: bytearray,
    start: int,
    end: int,
    orientation: int | None,
    holders: list[range],
    samples: list[range],
) -> None:
    """Overwrite the EXIF and XMP items of the 'meta' box data[start:end] in place.

    Raises _Corrupt rather than overwrite anything else: a metadata extent outside mdat/idat,
    or sharing bytes with another item or a track sample, only happens in a malformed file.
    """
    extents = _avif_extents(data, start, end)
    metadata = _avif_metadata_items(data, start, end)
    idat = [range(p, e) for t, _, p, e in _boxes(data, start, end) if t == b"idat"]
    others = [r for item, ranges in extents.items() if item not in metadata for r in ranges]
    others += samples
    for item_id, item_type in metadata.items():
        ranges = extents.get(item_id, [])
        for r in ranges:
            inside = any(h.start <= r.start and r.stop <= h.stop for h in holders + idat)
            if not inside or any(r.start < o.stop and o.start < r.stop for o in others):
                raise _Corrupt("metadata item overlaps other data")
        if item_type == b"Exif":
            # exif_tiff_header_offset (0: the TIFF header follows), then the TIFF block.
            minimal = struct.pack(">I", 0) + _minimal_tiff(orientation)
            if sum(len(r) for r in ranges) < len(minimal):
                minimal = b""
            _blank(data, ranges, minimal, b"\x00")
        else:
            _blank(data, ranges, b"", b" ")


def _track_samples(data: bytearray, start: int, end: int) -> list[range]:
    """Byte ranges of every sample of every track in the moov box data[start:end]."""
    samples = []
    for btype, _, payload, box_end in _boxes(data, start, end):
        if btype == b"stbl":
            samples += _stbl_samples(data, payload, box_end)
        elif btype in _ISOBMFF_CONTAINERS:
            samples += _track_samples(data, payload, box_end)
    return samples


def _stbl_samples(data: bytearray, start: int, end: int) -> list[range]:
    """Samples laid out as stsz (sizes), stco/co64 (chunk offsets) and stsc (runs) say."""
    tables = {
        btype: (payload + 4, box_end) for btype, _, payload, box_end in _boxes(data, start, end)
    }

    def entries(name: bytes, width: int, skip: int = 0, fields: int = 1) -> list[int]:
        """The table's values (`fields` of `width` bytes per entry), after its entry count."""
        if name not in tables:
            return []
        pos, box_end = tables[name]
        count = _uint(data, pos + skip, 4) * fields
        first = pos + skip + 4
        if first + count * width > box_end:
            raise _Corrupt(f"{name!r} runs past its box")
        return [_uint(data, first + i * width, width) for i in range(count)]

    if b"stsz" not in tables:
        return []
    constant = _uint(data, tables[b"stsz"][0], 4)
    if constant:
        count = _uint(data, tables[b"stsz"][0] + 4, 4)
        if count > _CEILING_FRAMES:
            raise _Corrupt("too many samples")
        sizes = [constant] * count
    else:
        sizes = entries(b"stsz", 4, skip=4)
    chunks = entries(b"stco", 4) or entries(b"co64", 8)
    runs = entries(b"stsc", 4, fields=3)  # first_chunk, samples_per_chunk, description
    runs_by_chunk = sorted((runs[i], runs[i + 1]) for i in range(0, len(runs) - 2, 3))
    samples, sample, per_chunk, run = [], 0, 0, 0
    for number, offset in enumerate(chunks, start=1):
        while run < len(runs_by_chunk) and runs_by_chunk[run][0] <= number:
            per_chunk = runs_by_chunk[run][1]
            run += 1
        for _ in range(min(per_chunk, len(sizes) - sample)):
            samples.append(range(offset, offset + sizes[sample]))
            offset += sizes[sample]
            sample += 1
    return samples


def _avif_blank_boxes(data: bytearray, start: int, end: int) -> None:
    """Inside moov/trak/...: user data and vendor boxes become 'free' (ignored) with zeros."""
    for btype, box, payload, box_end in _boxes(data, start, end):
        if btype in (b"udta", b"uuid"):
            _blank_box(data, box, payload, box_end)
        elif btype in _ISOBMFF_CONTAINERS:
            _avif_blank_boxes(data, payload, box_end)


def _blank_box(data: bytearray, box: int, payload: int, end: int) -> None:
    data[box + 4 : box + 8] = b"free"
    data[payload:end] = bytes(end - payload)


_REWRITERS = {
    "jpeg": _jpeg_pieces,
    "png": _png_pieces,
    "gif": _gif_pieces,
    "webp": _webp_pieces,
    "avif": _avif_pieces,
}


# --------------------------------------------------------------------------------------------
# the whole pipeline


def _info(probe: Probe, orientation: int) -> ImageInfo:
    width, height = probe.width, probe.height
    if orientation >= 5:  # 5..8 turn the picture by 90 degrees
        width, height = height, width
    ext, content_type = FORMATS[probe.format]
    return ImageInfo(probe.format, ext, content_type, width, height, probe.frames)


def process(
    source: Path | bytes,
    stored: Path,
    thumbnail: Path,
    *,
    allowed_formats: tuple[str, ...],
    max_pixels: int,
    max_frames: int,
    strip_metadata: bool,
) -> ImageInfo:
    """Run the whole pipeline on the uploaded bytes in `source` (bytes, or a file's path).

    Writes the file to store at `stored` (scrubbed of metadata when `strip_metadata`, else a
    copy) and a WebP thumbnail at `thumbnail`; neither is fsynced (the store does that).
    Raises errors.UnsupportedImage (415) when the bytes are not an allowed format, and
    errors.ImageRejected (422, codes too_many_pixels / too_many_frames / corrupt_image) when
    the image cannot be accepted. On error it may leave partial files at `stored`/`thumbnail`;
    the caller removes them. The copy, too, ends where the image ends (see `scrub`).
    Steps: detect (headers, limits) -> verify (decode the first frame, reduced) -> thumbnail
    (from that frame, so it is decoded once) -> scrub (byte-level, no re-encoding).
    """
    data = _bytes(source)  # read once; every step works on these bytes
    probe = detect(
        data, allowed_formats=allowed_formats, max_pixels=max_pixels, max_frames=max_frames
    )
    decoded = verify(data, probe)
    orientation = decoded.orientation
    write_thumbnail(decoded, thumbnail)
    del decoded  # the frame is no longer needed while the original is rewritten
    scrub(data, stored, probe.format, orientation, strip=strip_metadata)
    return _info(probe, orientation)


def inspect(source: Path, *, max_pixels: int) -> ImageInfo:
    """Detect and verify a stored file (for reindex/check); raises like `process`.

    Any of the five formats; width/height after orientation, in pixels.
    """
    data = _bytes(source)
    probe = detect(data, allowed_formats=FORMATS, max_pixels=max_pixels, max_frames=_CEILING_FRAMES)
    return _info(probe, verify(data, probe).orientation)
