"""The image pipeline, and the only module that imports PIL and pillow_heif: detect, verify,
scrub, thumbnail, and convert (HEIC to JPEG).

The byte-level container code (segment, chunk, block and box walks; the EXIF block we write) is
in the formats package, one module per format; this module decodes with Pillow (HEIC with
pillow-heif's libheif), applies the limits and dispatches to the registry.
"""

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

import pillow_heif
from PIL import AvifImagePlugin, Image

from . import errors, formats
from .formats.exif import read_orientation

THUMBNAIL_MAX_SIDE = 320

# Thumbnail encodings (formats.THUMBNAILS: JPEG for JPEG originals, WebP for the others, which
# may be transparent), measured 2026-12-03 with Pillow 13 (libjpeg-turbo, libwebp 1.6) on
# scikit-image's astronaut, coffee, chelsea and motorcycle photos scaled to 1280 px wide, made
# into 320 px thumbnails: SSIM against a Lanczos reference / bytes / encode ms (thread CPU):
# WebP q80 method 0 0.948 / 17.3 KB / 2.43; WebP q80 method 4 0.952 / 14.4 KB / 7.31; JPEG
# q75 0.932 / 16.1 KB / 0.21; q80 0.941 / 18.3 KB / 0.21; q85 0.950 / 21.3 KB / 0.22; q90
# 0.961 / 26.5 KB / 0.24; q85 with optimize 20.8 KB / 0.63; q85 4:4:4 0.962 / 26.7 KB / 0.34.
# JPEG q85 (4:2:0, not optimized) is as faithful as the WebP q80 method 0 we made before, for
# 1.23x the bytes and a tenth of the encoding time; WebP keeps libwebp's fastest method.
THUMBNAIL_JPEG_QUALITY = 85
THUMBNAIL_WEBP_QUALITY = 80
THUMBNAIL_WEBP_METHOD = 0
# Shrinking: box-reduce by the whole part of the scale, then bilinear for the rest (under 2x),
# i.e. Pillow's reducing_gap=1.0. Same photos, 1280 -> 320 px: SSIM 0.991 to Lanczos in 1.35
# ms, against 0.984 in 4.28 ms with the default reducing_gap 2.0 and 12.4 ms for Lanczos.
THUMBNAIL_RESAMPLE = Image.Resampling.BILINEAR
THUMBNAIL_REDUCING_GAP = 1.0
_BAND_BYTES = 4 * 1024 * 1024  # full-size rows shrunk at a time (see _shrink)

# HEIC is re-encoded to JPEG (the one format stored as another, see `convert`). Quality 88 with
# 4:2:0 chroma (HEIC's own) and no Huffman optimisation, measured 2026-12-03 with Pillow 13 and
# pillow-heif 1.8.1 (libheif 1.23.6), SSIM/PSNR against the decoded HEIC, i.e. the loss we add:
# - 12 MP (4032x2721, scikit-image's motorcycle photo upscaled, sensor-like noise), HEIC
#   1.41 MB: q80 0.92 MB (SSIM 0.966, 42.4 dB), q85 1.13 MB (0.969, 43.1), q88 1.32 MB (0.972,
#   43.5), q90 1.50 MB (0.973, 43.9), q92 1.67 MB (0.975, 44.2), q95 2.39 MB (0.980, 45.1);
#   the same at HEIC 0.20 MB: q88 1.06 MB (0.989, 46.2). Encoding takes ~30 ms beside ~170-340
#   ms of HEVC decoding; optimize=True saves 1-2% of the bytes for twice the encoding time.
# - scikit-image's astronaut/coffee/chelsea/motorcycle (0.1-0.4 MP), HEIC q50 (1.0 bit/px):
#   q80 1.42x the HEIC's bytes (SSIM 0.963), q88 1.87x (0.975), q92 2.22x (0.982), q95 2.79x.
# 88 is the knee: 85 -> 88 costs ~15% more bytes, 88 -> 92 ~25% for half the SSIM gain, and
# at 88 the JPEG is about as large as a typical phone HEIC of the same picture.
HEIC_JPEG_QUALITY = 88
HEIC_JPEG_SUBSAMPLING = 2  # 4:2:0

# We enforce the configured pixel limit ourselves, from the header, before any pixel is decoded
# (and for every GIF frame). Pillow's own guard is process-wide and only *warns* between 1x and
# 2x its limit, so it is switched off rather than left to disagree with MAX_IMAGE_PIXELS.
Image.MAX_IMAGE_PIXELS = None
# One decoder thread: there is a worker process per CPU already, and libavif's default (every
# CPU, in each of them) oversubscribes the machine and adds per-thread frame buffers.
AvifImagePlugin.DEFAULT_MAX_THREADS = 1
# The same for libheif; and only the images we decode: an iPhone HEIC also carries a thumbnail,
# a depth map and HDR gain maps, which pillow-heif would otherwise read into `info` on open.
pillow_heif.options.DECODE_THREADS = 1
pillow_heif.options.THUMBNAILS = False
pillow_heif.options.DEPTH_IMAGES = False
pillow_heif.options.AUX_IMAGES = False
# Pillow warns (UserWarning) about malformed metadata it skips, e.g. corrupt EXIF tags while
# reading a JPEG's DPI. The uploader controls those bytes: a stderr line each is noise.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

# `make_thumbnail` and `inspect` (check, reindex) read stored files under formats.CEILING_*:
# they get no MAX_FRAMES (and `make_thumbnail` no MAX_IMAGE_PIXELS); the files were accepted
# under a limit already.

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
    format: str  # key of formats.FORMATS
    ext: str
    content_type: str
    width: int  # after EXIF orientation is applied, in pixels
    height: int
    frames: int  # 1 for still images


@dataclass(frozen=True)
class Processed:
    """What `process` made beside the stored file: its ImageInfo and its encoded thumbnail,
    which the store writes where it belongs; None when the stored file is its own thumbnail
    (a still JPEG or WebP already within THUMBNAIL_MAX_SIDE, see _is_own_thumbnail)."""

    info: ImageInfo
    thumbnail: bytes | None


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


@contextmanager
def _translated() -> Iterator[None]:
    """Turn whatever Pillow or the formats package raise about bad bytes into our 415/422 errors.

    OS errors that carry an errno (disk, permissions) are not the upload's fault and pass through.
    """
    try:
        yield
    except errors.ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.TooManyPixels() from exc
    except OSError as exc:
        if exc.errno is not None:
            raise
        # Includes UnidentifiedImageError, for bytes we sniffed as ours.
        raise errors.CorruptImage() from exc
    except (
        formats.Corrupt,
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
        raise errors.CorruptImage() from exc


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


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise formats.Corrupt("empty image")
    if width * height > max_pixels:
        raise errors.TooManyPixels(
            f"The image is {width}x{height} pixels; this server accepts at most "
            f"{max_pixels} pixels."
        )


def _too_many_frames(max_frames: int) -> errors.TooManyFrames:
    return errors.TooManyFrames(f"The animation has more than {max_frames} frames.")


def _count_frames(canvases: Iterator[tuple[int, int]], max_pixels: int, max_frames: int) -> int:
    """Frame count from a container's frame walk, stopping at max_frames + 1; also refuses any
    frame reaching past the max_pixels canvas (Pillow grows the canvas to fit such a frame)."""
    frames = 0
    for width, height in canvases:
        frames += 1
        if frames > max_frames:
            raise _too_many_frames(max_frames)
        _check_pixels(width, height, max_pixels)
    return frames


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
    probe, opened = _detect(_bytes(source), allowed_formats, max_pixels, max_frames)
    if opened is not None:
        opened.close()
    return probe


def _detect(
    data: bytes, allowed_formats: Collection[str], max_pixels: int, max_frames: int
) -> tuple[Probe, Image.Image | None]:
    """`detect`, and the image Pillow opened to read the headers (None for HEIC), still open
    and undecoded: `process` hands it to `verify`, so a file's headers are parsed once."""
    head = data[:512]
    found = formats.sniff(head)
    if found is None:
        raise errors.UnsupportedImage()
    fmt = found.name
    if fmt not in allowed_formats:
        raise errors.UnsupportedImage(f"{fmt.upper()} images are not accepted here.")
    with _translated():
        if found.declared:
            return _detect_heif(data, found, max_pixels, max_frames), None
        if found.header_canvas and (canvas := found.header_canvas(head)):
            _check_pixels(*canvas, max_pixels)
        im = Image.open(io.BytesIO(data), formats=[found.pil_name])
        try:
            width, height = im.size
            _check_pixels(width, height, max_pixels)
            if fmt == "jpeg":
                frames = 1  # an MPO's extra pictures are not shown by browsers and not kept
            elif found.frame_canvases:
                frames = _count_frames(found.frame_canvases(data), max_pixels, max_frames)
            else:
                frames = getattr(im, "n_frames", 1)  # from acTL / the WebP demuxer / libavif
            if frames > max_frames:
                raise _too_many_frames(max_frames)
        except BaseException:
            im.close()
            raise
    return Probe(fmt, width, height, frames), im


def _detect_heif(data: bytes, found: formats.Format, max_pixels: int, max_frames: int) -> Probe:
    """`detect` for HEIC: the sizes and image count the boxes declare, checked before libheif
    parses the file (it allocates what they say once asked to decode), then what libheif
    reports on open, still without decoding. Size after irot/imir, which libheif applies."""
    declared = found.declared(data)
    _check_pixels(*declared.largest, max_pixels)
    if declared.images > max_frames:
        raise _too_many_frames(max_frames)
    heif = pillow_heif.open_heif(data)
    width, height = heif.size
    _check_pixels(width, height, max_pixels)
    if len(heif) > max_frames:
        raise _too_many_frames(max_frames)
    return Probe(found.name, width, height, 1)  # the primary image only is kept


# --------------------------------------------------------------------------------------------
# verify


def verify(source: Path | bytes, probe: Probe, opened: Image.Image | None = None) -> Decoded:
    """Decode the first frame of `source` (as identified by `detect`) and check the container.

    JPEGs are decoded in draft mode at 1/2..1/8 scale (every byte of the scan is still entropy
    decoded, so truncation is caught) and other formats at full size, one frame at a time; the
    frame is then shrunk for the thumbnail and the full-size copy dropped. PNG chunk CRCs and
    WebP RIFF sizes are checked for the whole file (every frame), GIF blocks were walked by
    `detect`. HEIC is decoded whole by libheif and comes back turned the right way up
    (orientation 1). `opened`: the image `_detect` left open (closed here), else the bytes
    are opened again. Raises errors.ImageRejected code corrupt_image when anything does not
    decode.
    """
    data = _bytes(source)
    found = formats.FORMATS[probe.format]
    if found.stored_as:
        full, icc_profile = _decode_heif(data)
        return Decoded(_shrink(full), 1, icc_profile)
    if opened is None:
        with _translated():
            opened = Image.open(io.BytesIO(data), formats=[found.pil_name])
    with _translated(), opened as im:
        if found.check:
            found.check(data)
        if probe.format == "jpeg":
            # Ask for the thumbnail's own size (aspect kept): a square box would stop the DCT
            # scaling at the short side, e.g. 640x480 decoded whole instead of 320x240.
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
    value = read_orientation(exif) if isinstance(exif, bytes) else None
    if value is None:
        xmp = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        match = re.search(rb'tiff:Orientation(="|>)([0-9])', xmp) if xmp else None
        value = int(match[2]) if match else None
    return value if value is not None and 1 <= value <= 8 else 1


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


def write_thumbnail(decoded: Decoded, thumbnail: Path, kind: formats.Thumbnail) -> None:
    """Write the thumbnail of `decoded` to `thumbnail` (see encode_thumbnail). Raises
    errors.StorageFull when the disk is full."""
    _write(thumbnail, [encode_thumbnail(decoded, kind)])


def encode_thumbnail(decoded: Decoded, kind: formats.Thumbnail) -> bytes:
    """The thumbnail of `decoded` (from `verify`), encoded as `kind`.

    Longest side <= THUMBNAIL_MAX_SIDE px (never enlarged), orientation applied, RGB or RGBA
    (RGB for a JPEG: its originals are never transparent), the ICC profile kept when it is an
    RGB one. Consumes `decoded.frame`.
    """
    with _translated():
        im = _display_mode(decoded.frame)
        side = (THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        im.thumbnail(side, THUMBNAIL_RESAMPLE, reducing_gap=THUMBNAIL_REDUCING_GAP)
        if decoded.orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[decoded.orientation])
        icc = decoded.icc_profile
        # A CMYK or grey profile would be wrong on the RGB thumbnail (ICC header: colour space).
        keep_icc = icc is not None and icc[16:20] == b"RGB "
        encoded = io.BytesIO()
        if kind.pil_name == "JPEG":
            options = {"quality": THUMBNAIL_JPEG_QUALITY, "subsampling": 2}
            if im.mode == "RGBA":
                im = im.convert("RGB")
        else:
            options = {"quality": THUMBNAIL_WEBP_QUALITY, "method": THUMBNAIL_WEBP_METHOD}
        im.save(encoded, kind.pil_name, icc_profile=icc if keep_icc else None, **options)
    return encoded.getvalue()


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
    """Write the thumbnail (longest side <= 320 px, orientation applied, first frame), in the
    kind formats.THUMBNAILS has for the file's format.

    For a stored file (`imagehost check`, a thumbnail's first request); any of the
    formats.STORED. Raises like `process` (415 / 422) when `source` is not a readable image,
    errors.StorageFull on a full disk.
    """
    data = _bytes(source)
    probe = detect(
        data,
        allowed_formats=formats.STORED,
        max_pixels=formats.CEILING_PIXELS,
        max_frames=formats.CEILING_FRAMES,
    )
    write_thumbnail(verify(data, probe), thumbnail, formats.FORMATS[probe.format].thumbnail_kind)


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
    found = formats.FORMATS[fmt]
    if found.rewrite is None:
        raise ValueError(f"{fmt} is stored as {found.stored_as}: see convert")
    with _translated():
        keep = orientation if strip else None
        image = data
        if found.image_end:
            # A view, not a copy: the caller still holds `data`, and rewrite copies what it keeps.
            image = memoryview(data)[: _image_end(data, found)]
        pieces = list(found.rewrite(image, strip, keep))
    _write(stored, pieces)


def _image_end(data: bytes, found: formats.Format) -> int:
    """Where `found.image_end` says the image ends, if Pillow still reads it cut there; else
    the end of `data`.

    Only AVIF has an image_end: its tail may hold track samples (found through stco/stsc) that
    no box points at, and a file cut before them would no longer decode once stored.
    """
    end = found.image_end(data)
    if end < len(data) and not _still_reads(data[:end], data, found.pil_name):
        end = len(data)
    return end


def _still_reads(trimmed: bytes, original: bytes, pil_name: str) -> bool:
    """Whether Pillow parses `trimmed` to as many frames as `original` and decodes frame 0.

    Run only when a tail was cut (appended data, rare): cheaper than following every sample
    table to prove the tail unused.
    """
    try:
        with Image.open(io.BytesIO(original), formats=[pil_name]) as im:
            frames = im.n_frames
        with Image.open(io.BytesIO(trimmed), formats=[pil_name]) as im:
            im.load()
            return im.n_frames == frames
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError, ArithmeticError):
        return False


# --------------------------------------------------------------------------------------------
# convert: HEIC to JPEG, the one upload that is re-encoded


def _decode_heif(data: bytes) -> tuple[Image.Image, bytes | None]:
    """Decode the primary image of a HEIC (checked by `detect`) at full size, the right way up,
    8 bits a channel; and its ICC profile when it has an RGB one.

    libheif applies the irot/imir properties while decoding; those are the container's
    orientation, and iPhones write the same turn again as EXIF Orientation, which HEIF readers
    ignore (ISO 23008-12) — applied too it would turn the picture twice. Only a file without
    irot/imir has its EXIF (else XMP) orientation applied here. pillow-heif reads every
    image's metadata on open; none of it reaches the result.
    """
    with _translated():
        transformed = formats.FORMATS["heic"].declared(data).transformed
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        primary = heif[heif.primary_index]
        exif, xmp = primary.info.get("exif"), primary.info.get("xmp")
        icc = primary.info.get("icc_profile") or None
        im = primary.to_pillow()
        del heif, primary  # libheif's decoded copy: Pillow has its own
        orientation = 1
        if not transformed:
            orientation = read_orientation(exif) if isinstance(exif, bytes) else None
            if orientation is None and isinstance(xmp, bytes):
                match = re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)
                orientation = int(match[2]) if match else None
        if orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[orientation])
        if im.mode != "RGB":
            im = _display_mode(im)
        if im.mode == "RGBA":  # JPEG has no alpha: what was transparent shows white
            opaque = Image.new("RGB", im.size, "white")
            opaque.paste(im, mask=im.getchannel("A"))
            im = opaque
        im.info = {}  # nothing of the upload's metadata may be written out with it
    keep_icc = icc is not None and icc[16:20] == b"RGB "
    return im, icc if keep_icc else None


def convert(source: Path | bytes, stored: Path) -> tuple[tuple[int, int], bytes]:
    """Write a HEIC upload (as identified by `detect`) to `stored` as a JPEG; its thumbnail.

    The one place the service re-encodes an upload, since browsers other than Safari cannot
    show HEIC: the primary image only (extra images, depth and HDR gain maps are dropped),
    turned the right way up (no Orientation tag is written), HEIC_JPEG_QUALITY, the ICC
    profile kept when it is an RGB one, and no other metadata: no EXIF (so no GPS), no XMP,
    whatever STRIP_METADATA says. The thumbnail is made from the same decode. Returns the
    JPEG's (width, height) in pixels and the encoded thumbnail. Raises errors.ImageRejected
    corrupt_image when it does not decode, errors.StorageFull on a full disk.
    """
    im, icc = _decode_heif(_bytes(source))
    encoded = io.BytesIO()
    with _translated():
        im.save(
            encoded,
            "JPEG",
            quality=HEIC_JPEG_QUALITY,
            subsampling=HEIC_JPEG_SUBSAMPLING,
            icc_profile=icc,
        )
    _write(stored, [encoded.getbuffer()])
    del encoded
    size = im.size
    kind = formats.stored_format("heic").thumbnail_kind
    return size, encode_thumbnail(Decoded(_shrink(im), 1, icc), kind)


# --------------------------------------------------------------------------------------------
# the whole pipeline


def _info(probe: Probe, orientation: int) -> ImageInfo:
    width, height = probe.width, probe.height
    if orientation >= 5:  # 5..8 turn the picture by 90 degrees
        width, height = height, width
    found = formats.FORMATS[probe.format]
    return ImageInfo(probe.format, found.ext, found.content_type, width, height, probe.frames)


def _is_own_thumbnail(probe: Probe, decoded: Decoded) -> bool:
    """Whether the stored file can serve as its own thumbnail, with nothing encoded: one frame
    already within the thumbnail size, a format whose thumbnails are that format (JPEG, WebP),
    pixels a browser shows as the thumbnail would: not CMYK, and not turned by an EXIF
    orientation (which browsers do not apply to every format alike)."""
    found = formats.FORMATS[probe.format]
    return (
        probe.frames == 1
        and max(probe.width, probe.height) <= THUMBNAIL_MAX_SIDE
        and found.thumbnail == found.ext
        and decoded.orientation == 1
        and decoded.frame.mode in ("L", "RGB", "RGBA")
    )


def process(
    source: Path | bytes,
    stored: Path,
    *,
    allowed_formats: tuple[str, ...],
    max_pixels: int,
    max_frames: int,
    strip_metadata: bool,
) -> Processed:
    """Run the whole pipeline on the uploaded bytes in `source` (bytes, or a file's path).

    Writes the file to store at `stored` (scrubbed of metadata when `strip_metadata`, else a
    copy; not fsynced: the store does that) and returns its thumbnail encoded, in memory —
    None when the stored file is its own thumbnail (see _is_own_thumbnail).
    Raises errors.UnsupportedImage (415) when the bytes are not an allowed format, and
    errors.ImageRejected (422, codes too_many_pixels / too_many_frames / corrupt_image) when
    the image cannot be accepted. On error it may leave a partial file at `stored`; the caller
    removes it. The copy, too, ends where the image ends (see `scrub`).
    Steps: detect (headers, limits) -> verify (decode the first frame, reduced) -> thumbnail
    (from that frame, so it is decoded once) -> scrub (byte-level, no re-encoding). The one
    exception is HEIC, stored as JPEG: detect -> convert (decode once, encode the JPEG, the
    thumbnail from the same pixels), metadata always dropped; the ImageInfo is the JPEG's.
    """
    data = _bytes(source)  # read once; every step works on these bytes
    probe, opened = _detect(data, allowed_formats, max_pixels, max_frames)
    target = formats.stored_format(probe.format)
    if target.name != probe.format:
        (width, height), thumbnail = convert(data, stored)
        info = ImageInfo(target.name, target.ext, target.content_type, width, height, 1)
        return Processed(info, thumbnail)
    decoded = verify(data, probe, opened)
    orientation = decoded.orientation
    thumbnail = None
    if not _is_own_thumbnail(probe, decoded):
        thumbnail = encode_thumbnail(decoded, formats.FORMATS[probe.format].thumbnail_kind)
    del decoded  # the frame is no longer needed while the original is rewritten
    scrub(data, stored, probe.format, orientation, strip=strip_metadata)
    return Processed(_info(probe, orientation), thumbnail)


def inspect(source: Path, *, max_pixels: int) -> ImageInfo:
    """Detect and verify a stored file (for reindex/check); raises like `process`.

    Any of the formats.STORED (a HEIC file is no stored file: 415); width/height after
    orientation, in pixels.
    """
    data = _bytes(source)
    probe = detect(
        data,
        allowed_formats=formats.STORED,
        max_pixels=max_pixels,
        max_frames=formats.CEILING_FRAMES,
    )
    return _info(probe, verify(data, probe).orientation)
