"""The image pipeline on fixtures made here with Pillow: formats, limits, scrubbing, thumbnails."""

import functools
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps, ImageSequence, PngImagePlugin
from support.images import gif_with_frames, heic_bytes, heic_declaring, png_chunk

from imagehost import errors, formats, images

ALL_FORMATS = formats.NAMES
LIMITS = dict(allowed_formats=ALL_FORMATS, max_pixels=50_000_000, max_frames=1000)

# Personal data planted in the fixtures; none of it may reach the stored file.
SECRETS = (
    b"GPSSECRET",
    b"MAKERSECRET",
    b"CAMERASECRET",
    b"XMPSECRET",
    b"IPTCSECRET",
    b"COMMENTSECRET",
    b"TEXTSECRET",
    b"PRIVATESECRET",
)
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b"<dc:creator>XMPSECRET</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
)
POLYGLOT = b"<html><script>alert(document.cookie)</script></html>"

# The picture a viewer must see: four coloured quadrants, so any turn or flip shows.
QUADRANTS = {
    "top-left": "red",
    "top-right": "lime",
    "bottom-left": "blue",
    "bottom-right": "yellow",
}
# The inverse of what exif_transpose does for each orientation: raw pixels = inverse(displayed).
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def displayed(size=(480, 640), mode="RGB") -> Image.Image:
    w, h = size
    im = Image.new("RGB", size)
    for (row, col), colour in zip(
        [(0, 0), (0, 1), (1, 0), (1, 1)], QUADRANTS.values(), strict=True
    ):
        im.paste(colour, (col * w // 2, row * h // 2, (col + 1) * w // 2, (row + 1) * h // 2))
    return im.convert(mode)


def as_stored(picture: Image.Image, orientation: int) -> Image.Image:
    method = INVERSE[orientation]
    return picture if method is None else picture.transpose(method)


@functools.cache  # once: the profile header carries its creation time
def icc_srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def secret_exif(orientation: int | None = 6) -> Image.Exif:
    exif = Image.Exif()
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "CAMERASECRET"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[27] = b"ASCII\x00\x00\x00GPSSECRET"  # GPSProcessingMethod
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(tiny, "JPEG")
    # A maker note carrying a whole JPEG: its SOI/EOI must not end the outer file.
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"MAKERSECRET" + tiny.getvalue()
    return exif


def app13_iptc() -> bytes:
    """A Photoshop APP13 segment with an IPTC caption (Pillow cannot write one)."""
    iptc = b"\x1c\x02\x78" + struct.pack(">H", 10) + b"IPTCSECRET"
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def make_jpeg(path: Path, orientation: int = 6, size=(480, 640)) -> Path:
    buf = io.BytesIO()
    as_stored(displayed(size), orientation).save(
        buf,
        "JPEG",
        quality=90,
        exif=secret_exif(orientation),
        icc_profile=icc_srgb(),
        xmp=XMP,
        comment=b"COMMENTSECRET",
    )
    data = buf.getvalue()
    path.write_bytes(data[:2] + app13_iptc() + data[2:])
    return path


def make_png(path: Path, orientation: int = 6, mode="RGB") -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "TEXTSECRET")
    info.add_text("Author", "TEXTSECRET", zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 1, 12, 0, 0))
    info.add(b"prVt", b"PRIVATESECRET")  # an unknown ancillary chunk
    as_stored(displayed(), orientation).convert(mode).save(
        path,
        "PNG",
        pnginfo=info,
        exif=secret_exif(orientation),
        icc_profile=icc_srgb(),
        dpi=(144, 144),
    )
    return path


def frames_of(colours: list[str], orientation: int = 1, size=(120, 90)) -> list[Image.Image]:
    """Animation frames: the quadrants with a centre square of a different colour each."""
    w, h = size
    out = []
    for colour in colours:
        frame = displayed(size)
        frame.paste(colour, (w * 3 // 8, h * 3 // 8, w * 5 // 8, h * 5 // 8))
        out.append(as_stored(frame, orientation))
    return out


def make_gif(path: Path) -> Path:
    first, *rest = frames_of(["white", "black", "gray", "purple"])
    buf = io.BytesIO()
    first.save(
        buf, "GIF", save_all=True, append_images=rest, duration=80, loop=0, comment="COMMENTSECRET"
    )
    data = buf.getvalue()
    # An XMP application extension before the first frame (Pillow cannot write one).
    xmp_ext = b"\x21\xff\x0bXMP DataXMP" + bytes([9]) + b"XMPSECRET" + b"\x00"
    at = data.index(b"\x21\xf9")  # first graphic control extension
    path.write_bytes(data[:at] + xmp_ext + data[at:])
    return path


def make_webp(path: Path, animated: bool = True) -> Path:
    first, *rest = frames_of(["white", "black", "gray"], orientation=6)
    first.save(
        path,
        "WEBP",
        save_all=animated,
        append_images=rest if animated else [],
        duration=100,
        loop=0,
        lossless=True,
        exif=secret_exif(6),
        xmp=XMP,
        icc_profile=icc_srgb(),
    )
    return path


def make_avif(path: Path, animated: bool = False) -> Path:
    first, *rest = frames_of(["white", "black", "gray"], orientation=1 if animated else 6)
    first.save(
        path,
        "AVIF",
        save_all=animated,
        append_images=rest if animated else [],
        quality=90,
        speed=10,
        # Pillow 13.0.0 segfaults encoding an animated AVIF with an EXIF orientation.
        exif=secret_exif(None if animated else 6),
        xmp=XMP,
        icc_profile=icc_srgb(),
    )
    return path


def make_heic(path: Path, orientation: int = 6, mode: str = "RGB") -> Path:
    """A phone-like HEIC: the quadrants stored turned, EXIF (GPS, camera) with `orientation`,
    XMP and an ICC profile. pillow-heif writes the orientation as irot/imir and keeps the tag."""
    picture = as_stored(displayed(), orientation).convert(mode)
    exif = secret_exif(orientation if orientation != 1 else None)
    path.write_bytes(
        heic_bytes(picture, exif=exif.tobytes(), xmp=XMP, icc_profile=icc_srgb(), quality=80)
    )
    return path


def heic_exif_orientation_only(path: Path, orientation: int) -> Path:
    """A HEIC whose EXIF says `orientation` (3, 6 or 8: a turn) but which has no irot, as some
    writers make them: the association of the irot pillow-heif writes is removed from 'ipma'."""
    picture = as_stored(displayed(), orientation)
    data = bytearray(heic_bytes(picture, exif=secret_exif(orientation).tobytes(), quality=80))
    boxes = formats.avif.boxes
    meta = next(b for b in boxes(data, 0, len(data)) if b[0] == b"meta")
    iprp = next(b for b in boxes(data, meta[2] + 4, meta[3]) if b[0] == b"iprp")
    ipco, ipma = (
        next(b for b in boxes(data, iprp[2], iprp[3]) if b[0] == t) for t in (b"ipco", b"ipma")
    )
    properties = [b[0] for b in boxes(data, ipco[2], ipco[3])]
    irot, ispe = properties.index(b"irot") + 1, properties.index(b"ispe") + 1
    assert data[ipma[2]] == 0 and data[ipma[2] + 3] & 1 == 0  # 16-bit item ids, 7-bit indexes
    pos = ipma[2] + 8
    for _ in range(int.from_bytes(data[ipma[2] + 4 : ipma[2] + 8], "big")):
        count = data[pos + 2]
        for at in range(pos + 3, pos + 3 + count):
            if data[at] & 0x7F == irot:
                data[at] = ispe  # associated twice: harmless
        pos += 3 + count
    assert not formats.heic.declared(bytes(data)).transformed
    path.write_bytes(bytes(data))
    return path


MAKERS = {
    "jpeg": make_jpeg,
    "png": make_png,
    "gif": make_gif,
    "webp-animated": make_webp,
    "webp-still": lambda p: make_webp(p, animated=False),
    "avif": make_avif,
    "avif-animated": lambda p: make_avif(p, animated=True),
}


@dataclass
class Run:
    source: Path
    stored: Path
    thumbnail: Path
    info: images.ImageInfo


def run(tmp_path: Path, source: Path, **overrides) -> Run:
    stored, thumbnail = tmp_path / "stored", tmp_path / "thumb"
    limits = {**LIMITS, "strip_metadata": True, **overrides}
    processed = images.process(source, stored, **limits)
    if processed.thumbnail is None:  # nothing encoded: the stored file is the thumbnail
        thumbnail = stored
    else:
        thumbnail.write_bytes(processed.thumbnail)
    return Run(source, stored, thumbnail, processed.info)


def decoded_frames(path: Path) -> list[bytes]:
    with Image.open(path) as im:
        return [frame.convert("RGBA").tobytes() for frame in ImageSequence.Iterator(im)]


def upright(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def assert_right_way_up(im: Image.Image) -> None:
    """The quadrant colours sit where the viewer saw them (tolerant of lossy encoding)."""
    w, h = im.size
    spots = {
        "top-left": (w // 4, h // 4),
        "top-right": (3 * w // 4, h // 4),
        "bottom-left": (w // 4, 3 * h // 4),
        "bottom-right": (3 * w // 4, 3 * h // 4),
    }
    for where, xy in spots.items():
        want = Image.new("RGB", (1, 1), QUADRANTS[where]).getpixel((0, 0))
        got = im.convert("RGB").getpixel(xy)
        assert all(abs(a - b) < 40 for a, b in zip(got, want, strict=True)), (where, got, want)


def thumbnail_format(info: images.ImageInfo) -> str:
    """What the thumbnail of an upload stored as `info` is encoded as (JPEG for JPEGs)."""
    return formats.THUMBNAILS[formats.FORMATS[info.format].thumbnail].pil_name


def assert_thumbnail(path: Path, expected_size: tuple[int, int], fmt: str) -> Image.Image:
    with Image.open(path) as thumb:
        assert thumb.format == fmt
        assert max(thumb.size) <= images.THUMBNAIL_MAX_SIDE
        w, h = expected_size
        scale = min(1, images.THUMBNAIL_MAX_SIDE / max(w, h))
        assert abs(thumb.width - w * scale) <= 1 and abs(thumb.height - h * scale) <= 1
        thumb.load()
        return thumb.copy()


def test_pillow_truncated_images_stay_refused():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ---------------------------------------------------------------------------------------------
# scrubbing, per format


@pytest.mark.parametrize("kind", list(MAKERS))
def test_stored_file_has_no_personal_metadata(tmp_path, kind):
    source = MAKERS[kind](tmp_path / "upload")
    original = source.read_bytes()
    assert any(secret in original for secret in SECRETS), "the fixture plants secrets"
    stored = run(tmp_path, source).stored.read_bytes()
    leaked = [secret for secret in SECRETS if secret in stored]
    assert leaked == []
    with Image.open(run(tmp_path, source).stored) as im:
        assert not im.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert not im.getexif().get_ifd(ExifTags.IFD.Exif)
        assert "xmp" not in im.info or not im.info["xmp"].strip(b" \x00")
        assert "comment" not in im.info


@pytest.mark.parametrize("kind", list(MAKERS))
def test_pixels_frames_orientation_and_icc_are_kept(tmp_path, kind):
    source = MAKERS[kind](tmp_path / "upload")
    result = run(tmp_path, source)
    # Every format is rewritten losslessly: each decoded frame is identical.
    assert decoded_frames(result.stored) == decoded_frames(source)
    with Image.open(source) as before, Image.open(result.stored) as after:
        assert getattr(after, "n_frames", 1) == getattr(before, "n_frames", 1)
        assert result.info.frames == getattr(before, "n_frames", 1)
        assert after.info.get("icc_profile") == before.info.get("icc_profile")
        assert after.info.get("loop") == before.info.get("loop")
        assert after.getexif().get(ExifTags.Base.Orientation) == before.getexif().get(
            ExifTags.Base.Orientation
        )
    shown_before, shown_after = upright(source), upright(result.stored)
    assert shown_after.size == shown_before.size
    assert shown_after.tobytes() == shown_before.tobytes()
    assert (result.info.width, result.info.height) == shown_before.size


def test_jpeg_keeps_only_orientation_in_exif(tmp_path):
    result = run(tmp_path, make_jpeg(tmp_path / "upload.jpg", orientation=6))
    with Image.open(result.stored) as im:
        assert dict(im.getexif()) == {ExifTags.Base.Orientation: 6}
        assert im.info["icc_profile"] == icc_srgb()
        assert im.info["jfif"]  # the JFIF header stays
    assert result.info.format == "jpeg" and result.info.content_type == "image/jpeg"
    assert (result.info.width, result.info.height) == (480, 640)


def test_png_keeps_colour_and_density_chunks(tmp_path):
    result = run(tmp_path, make_png(tmp_path / "upload.png"))
    data = result.stored.read_bytes()
    for kept in (b"iCCP", b"pHYs", b"eXIf", b"IDAT", b"IEND"):
        assert kept in data
    for dropped in (b"tEXt", b"zTXt", b"iTXt", b"tIME", b"prVt"):
        assert dropped not in data
    with Image.open(result.stored) as im:
        assert dict(im.getexif()) == {ExifTags.Base.Orientation: 6}
        assert round(im.info["dpi"][0]) == 144


def test_webp_rewrites_the_vp8x_flags(tmp_path):
    result = run(tmp_path, make_webp(tmp_path / "upload.webp"))
    data = result.stored.read_bytes()
    assert data[12:16] == b"VP8X"
    flags = data[20]
    assert flags & 0x20 and flags & 0x02  # ICC and animation stay
    assert flags & 0x08 and not flags & 0x04  # minimal EXIF (orientation) kept, XMP gone
    assert b"XMP " not in data
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8


def test_gif_keeps_looping_drops_comments(tmp_path):
    result = run(tmp_path, make_gif(tmp_path / "upload.gif"))
    data = result.stored.read_bytes()
    assert b"NETSCAPE2.0" in data and b"XMP DataXMP" not in data
    assert b"\x21\xfe" not in data  # no comment extension
    assert data.endswith(b"\x3b")


@pytest.mark.parametrize("kind", ["jpeg", "png", "gif", "webp-animated", "avif"])
def test_without_strip_the_stored_file_is_a_copy(tmp_path, kind):
    source = MAKERS[kind](tmp_path / "upload")
    result = run(tmp_path, source, strip_metadata=False)
    assert result.stored.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("strip", [True, False], ids=["stripped", "copied"])
@pytest.mark.parametrize("kind", ["jpeg", "png", "gif", "webp-animated", "avif"])
def test_polyglot_tail_is_cut_off(tmp_path, kind, strip):
    """An HTML/JS tail after the image is accepted as an image, but never stored."""
    source = MAKERS[kind](tmp_path / "upload")
    clean = source.read_bytes()
    source.write_bytes(clean + POLYGLOT)
    result = run(tmp_path, source, strip_metadata=strip)
    stored = result.stored.read_bytes()
    assert b"<script" not in stored and b"<html" not in stored
    if not strip:
        assert stored == clean
    assert decoded_frames(result.stored)[0] == decoded_frames(source)[0]


def test_avif_item_data_past_the_last_box_is_kept(tmp_path):
    """libavif follows iloc even past a too-short mdat box; cutting there would break it."""
    source = make_avif(tmp_path / "upload.avif")
    data = bytearray(source.read_bytes())
    mdat = data.index(b"mdat") - 4
    size = struct.unpack(">I", data[mdat : mdat + 4])[0]
    data[mdat : mdat + 4] = struct.pack(">I", size - 10)
    source.write_bytes(bytes(data) + POLYGLOT)
    result = run(tmp_path, source)
    assert decoded_frames(result.stored) == decoded_frames(source)
    assert images.inspect(result.stored, max_pixels=LIMITS["max_pixels"]) == result.info
    assert b"<script" not in result.stored.read_bytes()


def test_avif_xmp_item_pointing_at_pixels_is_refused_not_blanked(tmp_path):
    """Blanking a malformed file's XMP extent would overwrite the picture: refuse instead."""
    source = make_avif(tmp_path / "upload.avif")
    data = bytearray(source.read_bytes())
    iloc = data.index(b"iloc") + 4
    assert data[iloc : iloc + 8] == bytes.fromhex("00000000 4400 0003")  # v0, 4-byte fields
    entries = {}
    for at in range(iloc + 8, iloc + 8 + 3 * 14, 14):  # id, dref, count=1, offset, length
        item_id, _, _, offset, length = struct.unpack(">HHHII", data[at : at + 14])
        entries[item_id] = at
    primary = struct.unpack(">I", data[entries[1] + 6 : entries[1] + 10])[0]
    data[entries[3] + 6 : entries[3] + 10] = struct.pack(">I", primary)  # item 3 is the XMP
    source.write_bytes(bytes(data))
    run(tmp_path, source, strip_metadata=False)  # libavif reads it: only blanking is refused
    with pytest.raises(errors.ImageRejected) as caught:
        run(tmp_path, source)
    assert caught.value.code == "corrupt_image"


# ---------------------------------------------------------------------------------------------
# thumbnails


@pytest.mark.parametrize("orientation", range(1, 9), ids=lambda o: f"orientation-{o}")
def test_jpeg_thumbnail_is_right_way_up(tmp_path, orientation):
    result = run(tmp_path, make_jpeg(tmp_path / "upload.jpg", orientation=orientation))
    thumb = assert_thumbnail(result.thumbnail, (480, 640), "JPEG")
    assert thumb.size == (240, 320)
    assert_right_way_up(thumb)
    assert (result.info.width, result.info.height) == (480, 640)
    assert upright(result.stored).tobytes() == upright(result.source).tobytes()


@pytest.mark.parametrize("kind", list(MAKERS))
def test_thumbnail_of_each_format(tmp_path, kind):
    source = MAKERS[kind](tmp_path / "upload")
    result = run(tmp_path, source)
    size = (result.info.width, result.info.height)
    thumb = assert_thumbnail(result.thumbnail, size, thumbnail_format(result.info))
    assert_right_way_up(thumb)  # the first frame, orientation applied
    with Image.open(result.thumbnail) as im:
        assert getattr(im, "n_frames", 1) == 1
        assert not im.getexif()


def test_big_photo_thumbnail_is_320_on_the_long_side(tmp_path):
    source = tmp_path / "big.jpg"
    as_stored(displayed((3000, 4000)), 6).save(source, "JPEG", exif=secret_exif(6))
    result = run(tmp_path, source)
    thumb = assert_thumbnail(result.thumbnail, (3000, 4000), "JPEG")
    assert thumb.size == (240, 320)
    assert_right_way_up(thumb)


def _mode_fixture(path: Path, mode: str) -> Path:
    picture = displayed((900, 600))
    if mode == "P+transparency":
        im = picture.convert("P")
        im.info["transparency"] = 0
        im.save(path, "PNG", transparency=0)
    elif mode == "I;16":
        picture.convert("L").convert("I").point(lambda v: v * 256).convert("I;16").save(path, "PNG")
    elif mode == "CMYK":
        picture.convert("CMYK").save(path, "JPEG")
    elif mode in ("L-jpeg",):
        picture.convert("L").save(path, "JPEG")
    else:
        picture.convert(mode).save(path, "PNG")
    return path


@pytest.mark.parametrize("mode", ["P+transparency", "I;16", "CMYK", "L-jpeg", "LA", "1", "RGBA"])
def test_thumbnail_mode_conversions(tmp_path, mode):
    result = run(tmp_path, _mode_fixture(tmp_path / "upload", mode))
    thumb = assert_thumbnail(result.thumbnail, (900, 600), thumbnail_format(result.info))
    assert thumb.mode in ("RGB", "RGBA")
    if mode == "I;16":  # scaled to 8 bits, not clipped to white
        assert thumb.convert("L").getpixel((10, 10)) < 200


def test_big_transparent_png_is_shrunk_in_bands(tmp_path):
    """A frame far over the band size (3000x2000 RGBA = 24 MB) still gives a true thumbnail."""
    source = tmp_path / "big.png"
    picture = displayed((3000, 2000), "RGBA")
    picture.putalpha(Image.new("L", picture.size, 200))
    picture.save(source, "PNG")
    result = run(tmp_path, source)
    thumb = assert_thumbnail(result.thumbnail, (3000, 2000), "WEBP")
    assert thumb.mode == "RGBA" and thumb.getpixel((5, 5))[3] == 200
    assert_right_way_up(thumb)


def test_orientation_only_in_xmp_is_kept_as_exif(tmp_path):
    """exif_transpose honours XMP's tiff:Orientation; XMP goes, so it is written as EXIF."""
    source = tmp_path / "upload.jpg"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description tiff:Orientation="8"'
    xmp += b' dc:creator="XMPSECRET"/></rdf:RDF></x:xmpmeta>'
    as_stored(displayed(), 8).save(source, "JPEG", xmp=xmp)
    result = run(tmp_path, source)
    assert b"XMPSECRET" not in result.stored.read_bytes()
    with Image.open(result.stored) as im:
        assert dict(im.getexif()) == {ExifTags.Base.Orientation: 8}
    assert upright(result.stored).tobytes() == upright(source).tobytes()
    assert_right_way_up(assert_thumbnail(result.thumbnail, (480, 640), "JPEG"))


def test_make_thumbnail_from_a_stored_file(tmp_path):
    result = run(tmp_path, make_jpeg(tmp_path / "upload.jpg", orientation=8))
    again = tmp_path / "again.jpg"
    images.make_thumbnail(result.stored, again)
    assert_right_way_up(assert_thumbnail(again, (480, 640), "JPEG"))


@pytest.mark.parametrize(
    ("kind", "own"),
    [
        ("jpeg", True),
        ("webp-still", True),
        ("cmyk-jpeg", False),
        ("webp-animated", False),
        ("png", False),
        ("big-jpeg", False),
    ],
)
def test_a_small_still_jpeg_or_webp_is_its_own_thumbnail(tmp_path, kind, own):
    """Within the thumbnail size and of a format whose thumbnails are that format, the stored
    file itself is the thumbnail: nothing is encoded."""
    source = tmp_path / "upload"
    small = displayed((240, 180))
    if kind in ("jpeg", "big-jpeg", "cmyk-jpeg", "turned-jpeg"):
        picture = displayed((640, 480)) if kind == "big-jpeg" else small
        picture = picture.convert("CMYK" if kind == "cmyk-jpeg" else "RGB")
        picture.save(source, "JPEG", exif=secret_exif(6) if kind == "turned-jpeg" else b"")
    elif kind == "png":
        small.save(source, "PNG")
    else:
        frames = [small, small.transpose(Image.Transpose.ROTATE_180)]
        extra = {"save_all": True, "append_images": frames[1:]} if kind == "webp-animated" else {}
        small.save(source, "WEBP", **extra)
    result = run(tmp_path, source)
    assert (result.thumbnail == result.stored) is own


def test_inspect_reports_like_process(tmp_path):
    result = run(tmp_path, make_jpeg(tmp_path / "upload.jpg", orientation=6))
    assert images.inspect(result.stored, max_pixels=50_000_000) == result.info
    gif = run(tmp_path, make_gif(tmp_path / "upload.gif"))
    assert images.inspect(gif.stored, max_pixels=50_000_000).frames == 4


# ---------------------------------------------------------------------------------------------
# refusals


def craft_png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


GIF_HEAD = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
GIF_FRAME = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"


def gif_with_huge_frame() -> bytes:
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 60000, 60000, 0) + b"\x02\x02\x44\x01\x00"
    return GIF_HEAD + frame + b"\x3b"


def webp_canvas(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def jpeg_claiming(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def apng_declaring(frames: int) -> bytes:
    buf = io.BytesIO()
    first, *rest = frames_of(["white", "black"])
    first.save(buf, "PNG", save_all=True, append_images=rest)
    data = bytearray(buf.getvalue())
    at = data.index(b"acTL") - 4
    data[at : at + 20] = png_chunk(b"acTL", struct.pack(">II", frames, 0))
    return bytes(data)


def pillow_bytes(fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    displayed((40, 30)).save(buf, fmt, **params)
    return buf.getvalue()


def truncated(maker: Callable[[Path], Path]) -> Callable[[Path], bytes]:
    def make(path: Path) -> bytes:
        data = maker(path).read_bytes()
        return data[: len(data) * 6 // 10]

    return make


def bad_idat_crc(path: Path) -> bytes:
    data = bytearray(make_png(path).read_bytes())
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at : at + 4])[0]
    data[at + 8 + length] ^= 0xFF  # first CRC byte
    return bytes(data)


def avif_timescale_zero(path: Path) -> bytes:
    """An animated AVIF whose media header says 0 ticks per second (Pillow divides by it)."""
    data = bytearray(make_avif(path, animated=True).read_bytes())
    at = data.index(b"mdhd") + 4
    timescale = at + 4 + (16 if data[at] == 1 else 8)  # after version/flags and two dates
    data[timescale : timescale + 4] = bytes(4)
    return bytes(data)


def bytes_of(data: bytes) -> Callable[[Path], bytes]:
    return lambda path: data


def heic_grid_canvas(width: int, height: int) -> Callable[[Path], bytes]:
    """A tiled HEIC whose grid payload declares width x height (its ispe and tiles are small)."""

    def make(path: Path) -> bytes:
        data = bytearray(heic_bytes(displayed((256, 128)), tile_size=64))
        payload = data.index(b"idat") + 4  # version, flags, rows - 1, columns - 1, size
        struct.pack_into(">HH", data, payload + 4, width, height)
        return bytes(data)

    return make


def heic_coded_larger(path: Path) -> bytes:
    """A HEIC whose HEVC picture is 1024x1024 but whose ispe says 64x64: libheif refuses it
    before allocating the picture (the ispe is what we check)."""
    data = bytearray(heic_bytes(Image.new("RGB", (1024, 1024), "gray"), quality=10))
    struct.pack_into(">II", data, data.index(b"ispe") + 8, 64, 64)
    return bytes(data)


def heic_with_images(count: int) -> Callable[[Path], bytes]:
    def make(path: Path) -> bytes:
        heif = pillow_heif.from_pillow(displayed((64, 64)))
        for _ in range(count - 1):
            heif.add_from_pillow(displayed((64, 64)))
        out = io.BytesIO()
        heif.save(out, quality=50)
        return out.getvalue()

    return make


REFUSALS = [
    # description, bytes maker, extra settings, expected class, expected code
    ("svg", bytes_of(b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>'),
     {}, errors.UnsupportedImage, "unsupported_type"),
    ("html", bytes_of(b"<!DOCTYPE html><html><body>hi</body></html>"),
     {}, errors.UnsupportedImage, "unsupported_type"),
    ("pdf named .jpg", bytes_of(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
     {}, errors.UnsupportedImage, "unsupported_type"),
    ("plain text", bytes_of(b"just some words\n"), {}, errors.UnsupportedImage, "unsupported_type"),
    ("empty file", bytes_of(b""), {}, errors.UnsupportedImage, "unsupported_type"),
    ("bmp", lambda p: pillow_bytes("BMP"), {}, errors.UnsupportedImage, "unsupported_type"),
    ("tiff", lambda p: pillow_bytes("TIFF"), {}, errors.UnsupportedImage, "unsupported_type"),
    ("heic brand only", bytes_of(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
     {}, errors.ImageRejected, "corrupt_image"),
    ("heic when not allowed", lambda p: make_heic(p).read_bytes(),
     {"allowed_formats": formats.STORED}, errors.UnsupportedImage, "unsupported_type"),
    ("truncated heic", truncated(make_heic), {}, errors.ImageRejected, "corrupt_image"),
    ("heic 60000x60000", bytes_of(heic_declaring(60000, 60000)),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("heic 8000x8000 over the default limit", bytes_of(heic_declaring(8000, 8000)),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("heic grid canvas 30000x30000", heic_grid_canvas(30000, 30000),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("heic coded larger than its ispe", heic_coded_larger,
     {}, errors.ImageRejected, "corrupt_image"),
    ("small heic over a small limit", lambda p: make_heic(p).read_bytes(),
     {"max_pixels": 100}, errors.ImageRejected, "too_many_pixels"),
    ("heic with 3 images over max_frames", heic_with_images(3),
     {"max_frames": 2}, errors.ImageRejected, "too_many_frames"),
    ("png when only jpeg allowed", lambda p: pillow_bytes("PNG"),
     {"allowed_formats": ("jpeg",)}, errors.UnsupportedImage, "unsupported_type"),
    ("truncated jpeg", truncated(make_jpeg), {}, errors.ImageRejected, "corrupt_image"),
    ("truncated png", truncated(make_png), {}, errors.ImageRejected, "corrupt_image"),
    ("truncated gif", truncated(make_gif), {}, errors.ImageRejected, "corrupt_image"),
    ("truncated webp", truncated(make_webp), {}, errors.ImageRejected, "corrupt_image"),
    ("truncated avif", truncated(make_avif), {}, errors.ImageRejected, "corrupt_image"),
    ("png with bad IDAT CRC", bad_idat_crc, {}, errors.ImageRejected, "corrupt_image"),
    ("avif with timescale 0", avif_timescale_zero, {}, errors.ImageRejected, "corrupt_image"),
    ("png header only", bytes_of(b"\x89PNG\r\n\x1a\n"), {}, errors.ImageRejected, "corrupt_image"),
    ("jpeg header only", bytes_of(b"\xff\xd8\xff\xe0\x00\x10JFIF"),
     {}, errors.ImageRejected, "corrupt_image"),
    ("png 50000x50000", bytes_of(craft_png_header(50000, 50000)),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("jpeg 30000x30000", bytes_of(jpeg_claiming(30000, 30000)),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("gif screen 60000x60000", bytes_of(GIF_HEAD[:6] + struct.pack("<HH", 60000, 60000)
                                        + GIF_HEAD[10:] + GIF_FRAME + b"\x3b"),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("gif frame 60000x60000", bytes_of(gif_with_huge_frame()),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("webp canvas 16384x16384", bytes_of(webp_canvas(16384, 16384)),
     {}, errors.ImageRejected, "too_many_pixels"),
    ("small png over a small limit", lambda p: pillow_bytes("PNG"),
     {"max_pixels": 100}, errors.ImageRejected, "too_many_pixels"),
    ("gif with 100,000 frames", bytes_of(gif_with_frames(100_000)),
     {}, errors.ImageRejected, "too_many_frames"),
    ("apng declaring 5000 frames", bytes_of(apng_declaring(5000)),
     {}, errors.ImageRejected, "too_many_frames"),
    ("webp over max_frames", lambda p: make_webp(p).read_bytes(),
     {"max_frames": 2}, errors.ImageRejected, "too_many_frames"),
    ("avif over max_frames", lambda p: make_avif(p, animated=True).read_bytes(),
     {"max_frames": 2}, errors.ImageRejected, "too_many_frames"),
]  # fmt: skip


@pytest.mark.parametrize(
    "maker, settings, error, code", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(tmp_path, maker, settings, error, code):
    source = tmp_path / "upload.jpg"  # the name never matters
    source.write_bytes(maker(tmp_path / "fixture"))
    with pytest.raises(error) as caught:
        run(tmp_path, source, **settings)
    assert caught.value.code == code
    assert str(tmp_path) not in caught.value.detail  # never a server path
    assert isinstance(caught.value, errors.ApiError)


def test_inspect_and_make_thumbnail_refuse_like_process(tmp_path):
    source = tmp_path / "page.png"
    source.write_bytes(b"<html></html>")
    with pytest.raises(errors.UnsupportedImage):
        images.inspect(source, max_pixels=50_000_000)
    with pytest.raises(errors.UnsupportedImage):
        images.make_thumbnail(source, tmp_path / "t.webp")
    source.write_bytes(craft_png_header(50000, 50000))
    with pytest.raises(errors.ImageRejected) as caught:
        images.inspect(source, max_pixels=50_000_000)
    assert caught.value.code == "too_many_pixels"


def test_a_gif_at_the_frame_limit_is_accepted(tmp_path):
    source = tmp_path / "upload.gif"
    source.write_bytes(gif_with_frames(1000))
    assert run(tmp_path, source).info.frames == 1000
    source.write_bytes(gif_with_frames(1001))
    with pytest.raises(errors.ImageRejected):
        run(tmp_path, source)


@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    return {kind: maker(folder / kind).read_bytes() for kind, maker in MAKERS.items()}


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow's notes on the broken EXIF
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(list(MAKERS)),
    cut=st.floats(0, 1),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
)
def test_damaged_files_are_stored_or_refused_never_crash(tmp_path, fuzz_bases, kind, cut, edits):
    """Any damage to a valid file ends in a stored image or one of our errors, nothing else."""
    data = bytearray(fuzz_bases[kind])
    for where, value in edits:
        data[int(where * len(data))] = value
    source = tmp_path / "upload"
    source.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    try:
        result = run(tmp_path, source)
    except errors.ApiError as refused:
        assert refused.code in REFUSAL_CODES
        return
    # What was accepted reads back as the same kind of image.
    again = images.inspect(result.stored, max_pixels=LIMITS["max_pixels"])
    assert (again.format, again.frames) == (result.info.format, result.info.frames)


REFUSAL_CODES = ("unsupported_type", "corrupt_image", "too_many_pixels", "too_many_frames")


# ---------------------------------------------------------------------------------------------
# HEIC: stored as JPEG


def test_heic_is_stored_as_a_right_way_up_jpeg_without_metadata(tmp_path):
    """The iPhone case: irot and EXIF Orientation 6 both, GPS, XMP; turned once, not twice."""
    source = make_heic(tmp_path / "upload.heic", orientation=6)
    assert any(secret in source.read_bytes() for secret in SECRETS)
    result = run(tmp_path, source)
    info = result.info
    assert (info.format, info.ext, info.content_type, info.frames) == (
        "jpeg",
        "jpg",
        "image/jpeg",
        1,
    )
    assert (info.width, info.height) == (480, 640)
    stored = result.stored.read_bytes()
    assert [secret for secret in SECRETS if secret in stored] == []
    with Image.open(result.stored) as im:
        assert im.format == "JPEG" and im.size == (480, 640)
        assert not im.getexif() and "xmp" not in im.info and "exif" not in im.info
        assert im.info.get("icc_profile") == icc_srgb()  # colours: kept, like every format
        assert_right_way_up(im)
    assert_right_way_up(assert_thumbnail(result.thumbnail, (480, 640), "JPEG"))
    # It reads back as what it is now: a stored JPEG.
    assert images.inspect(result.stored, max_pixels=50_000_000) == info


@pytest.mark.parametrize("orientation", [1, 3, 6, 8], ids=lambda o: f"irot-for-{o}")
def test_heic_orientation_from_irot_is_applied(tmp_path, orientation):
    result = run(tmp_path, make_heic(tmp_path / "upload.heic", orientation=orientation))
    with Image.open(result.stored) as im:
        assert not im.getexif() and im.size == (480, 640)
        assert_right_way_up(im)


@pytest.mark.parametrize("orientation", [3, 6, 8], ids=lambda o: f"exif-{o}")
def test_heic_exif_orientation_without_irot_is_applied(tmp_path, orientation):
    source = heic_exif_orientation_only(tmp_path / "upload.heic", orientation)
    assert not formats.heic.declared(source.read_bytes()).transformed
    result = run(tmp_path, source)
    assert (result.info.width, result.info.height) == (480, 640)
    with Image.open(result.stored) as im:
        assert not im.getexif()
        assert_right_way_up(im)
    assert_right_way_up(assert_thumbnail(result.thumbnail, (480, 640), "JPEG"))


def test_heic_with_alpha_becomes_an_opaque_jpeg_on_white(tmp_path):
    picture = displayed((128, 128), "RGBA")
    picture.paste((0, 0, 0, 0), (0, 0, 64, 64))  # the top-left quadrant transparent
    source = tmp_path / "upload.heic"
    source.write_bytes(heic_bytes(picture))
    with Image.open(run(tmp_path, source).stored) as im:
        assert im.mode == "RGB"
        assert all(v > 220 for v in im.getpixel((16, 16)))  # white where it was transparent
        assert im.getpixel((100, 100))[2] < 60  # yellow stays yellow


def test_heic_bomb_is_refused_before_libheif_reads_it(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("libheif was handed a file the boxes already refuse")

    monkeypatch.setattr(pillow_heif, "open_heif", never)
    source = tmp_path / "bomb.heic"
    source.write_bytes(heic_declaring(60000, 60000))
    assert len(source.read_bytes()) < 2000
    with pytest.raises(errors.ImageRejected) as caught:
        run(tmp_path, source)
    assert caught.value.code == "too_many_pixels"
    assert not (tmp_path / "stored").exists() and not (tmp_path / "thumb").exists()


def test_heic_in_the_store_is_not_a_stored_image(tmp_path):
    """check/reindex read stored files: a HEIC dropped in by hand is no image of ours."""
    source = make_heic(tmp_path / "dropped.jpg")
    with pytest.raises(errors.UnsupportedImage):
        images.inspect(source, max_pixels=50_000_000)
    with pytest.raises(errors.UnsupportedImage):
        images.make_thumbnail(source, tmp_path / "t.webp")


def test_heic_jpeg_quality_is_the_measured_one(tmp_path):
    """The quality written beside the constant is the one used (Pillow's estimate from the
    quantisation tables of a q88 JPEG)."""
    result = run(tmp_path, make_heic(tmp_path / "upload.heic"))
    with Image.open(result.stored) as im:
        reference = io.BytesIO()
        im.convert("RGB").save(reference, "JPEG", quality=images.HEIC_JPEG_QUALITY)
        with Image.open(reference) as expected:
            assert im.quantization == expected.quantization
        assert im.layer[0][1:3] == (2, 2)  # 4:2:0: luma sampled twice each way


@pytest.fixture(scope="module")
def heic_base(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz-heic")
    return make_heic(folder / "base.heic").read_bytes()


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cut=st.floats(0, 1),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
)
def test_damaged_heic_is_stored_or_refused_never_crashes(tmp_path, heic_base, cut, edits):
    """Damage anywhere (the boxes we walk ourselves included) ends in a JPEG or our error."""
    data = bytearray(heic_base)
    for where, value in edits:
        data[int(where * len(data))] = value
    source = tmp_path / "upload"
    source.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    try:
        result = run(tmp_path, source)
    except errors.ApiError as refused:
        assert refused.code in REFUSAL_CODES
        return
    assert result.info.format == "jpeg"
    assert images.inspect(result.stored, max_pixels=LIMITS["max_pixels"]) == result.info
