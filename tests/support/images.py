"""Image bytes for the tests: small images made with Pillow (HEIC with pillow-heif), and
containers built by hand where Pillow would not write them (polyglots, dimension bombs, a
100,000-frame GIF)."""

import io
import os
import struct
import zlib

import pillow_heif
from PIL import ExifTags, Image

SCRIPT = b"<html><body><script>alert(document.domain)</script></body></html>"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), seed: int = 0, **save) -> bytes:
    """A small image in `fmt` whose colour depends on `seed` (another seed below 65,536 is
    another file), with a gradient along the top row so pixel checks mean something."""
    img = Image.new("RGB", size, (seed * 47 % 256, seed // 256 % 256, 160))
    for x in range(size[0]):
        img.putpixel((x, 0), (x * 4 % 256, 0, 255 - x * 4 % 256))
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress (random pixels): its size on disk is ~3 bytes a pixel."""
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=0)
    return out.getvalue()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    """Mode, size and RGBA pixels of an encoded image, for "the same picture" checks."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, im.size, im.convert("RGBA").tobytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width×height with a few bytes of pixel data (a decompression 'bomb')."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_polyglot() -> bytes:
    """A valid PNG carrying HTML/JS in a text chunk and again after IEND."""
    png = image_bytes("PNG", seed=1)
    iend = png.rindex(b"IEND") - 4
    text = png_chunk(b"tEXt", b"Comment\x00" + SCRIPT)
    return png[:iend] + text + png[iend:] + SCRIPT


def jpeg_polyglot() -> bytes:
    """A valid JPEG carrying HTML/JS in a COM segment and after EOI."""
    jpeg = image_bytes("JPEG", seed=2)
    com = b"\xff\xfe" + struct.pack(">H", len(SCRIPT) + 2) + SCRIPT
    return jpeg[:2] + com + jpeg[2:] + SCRIPT


def gif_polyglot() -> bytes:
    """A valid GIF carrying HTML/JS in a comment extension and after the trailer."""
    gif = image_bytes("GIF", seed=3)
    comment = b"\x21\xfe" + bytes([len(SCRIPT[:255])]) + SCRIPT[:255] + b"\x00"
    screen_end = 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    return gif[:screen_end] + comment + gif[screen_end:] + SCRIPT


def html_then_png() -> bytes:
    """HTML first, PNG after: a browser sniffing it would see HTML, so we must refuse it."""
    return SCRIPT + image_bytes("PNG", seed=4)


def gif_with_frames(frames: int) -> bytes:
    """A 1x1 GIF with `frames` frames, ~15 bytes each (100,000 frames ≈ 1.5 MB)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    # image descriptor 1x1, LZW minimum code size 2, one sub-block: clear, pixel 0, end.
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


def gif_screen(width: int, height: int) -> bytes:
    """A GIF whose logical screen and single frame declare width x height, with one pixel."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) declares width x height; the scan is one real tiny one."""
    jpeg = bytearray(image_bytes("JPEG", (8, 8), seed=5))
    sof = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, height, width)
    return bytes(jpeg)


def webp_canvas(width: int, height: int) -> bytes:
    """A WebP with an extended (VP8X) header declaring a width x height canvas."""
    img = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(img, "WEBP", lossless=True)
    inner = img.getvalue()[12:]  # the VP8L chunk
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_with_huge_exif(segments: int = 16) -> bytes:
    """A JPEG with an EXIF block (GPS included) padded to 64 KB, plus `segments` more 64 KB
    APP1 blocks: about (segments + 1) × 64 KB of metadata around a tiny picture."""
    img = Image.new("RGB", (32, 32), (10, 200, 10))
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription
    exif[0x0131] = "hostile-camera"  # Software
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    data = out.getvalue()
    filler = b"Exif\x00\x00" + b"MM\x00\x2a" + b"\x00" * (65533 - 2 - 10)
    extra = (b"\xff\xe1" + struct.pack(">H", len(filler) + 2) + filler) * segments
    return data[:2] + extra + data[2:]


def svg() -> bytes:
    """An SVG with an onload handler and a script: never to be accepted as an image."""
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
        b"<script>alert(document.cookie)</script></svg>"
    )


def pdf() -> bytes:
    """A minimal PDF."""
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def gps_exif(orientation: int | None = 6) -> Image.Exif:
    """EXIF as a phone writes it: Orientation (unless None), camera and a GPS position."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Apple"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    return exif


def heic_bytes(picture: Image.Image, **save) -> bytes:
    """`picture` as HEIC, e.g. heic_bytes(im, exif=gps_exif(6).tobytes(), xmp=b"…").

    pillow-heif does what an iPhone does with an EXIF orientation: writes it as the irot/imir
    properties (the pixels stay as given) and keeps the EXIF tag, the same turn twice over.
    """
    out = io.BytesIO()
    pillow_heif.from_pillow(picture).save(out, quality=save.pop("quality", 90), **save)
    return out.getvalue()


def heic_declaring(width: int, height: int) -> bytes:
    """A tiny HEIC (a few hundred bytes of HEVC) whose 'ispe' declares width x height."""
    data = bytearray(heic_bytes(Image.new("RGB", (64, 64), "gray"), quality=30))
    at = data.index(b"ispe") + 8  # box type, then the FullBox's version and flags
    struct.pack_into(">II", data, at, width, height)
    return bytes(data)
