"""The formats package on its own: no Pillow inside, and each container walk on known bytes."""

import ast
import io
import re
import struct
import zlib
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from imagehost import formats
from imagehost.formats import Corrupt, avif, exif, gif, heic, jpeg, png, webp

PACKAGE = Path(formats.__file__).parent
TAIL = b"<html><script>alert(document.cookie)</script></html>"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (inside functions too), relative ones as
    written (".base")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def encoded(fmt: str, size=(40, 30), **params) -> bytes:
    buf = io.BytesIO()
    picture = Image.new("RGB", size, "teal")
    if fmt == "HEIF":  # pillow-heif directly: the tests register no Pillow plugin either
        pillow_heif.from_pillow(picture).save(buf, **params)
    else:
        picture.save(buf, fmt, **params)
    return buf.getvalue()


def joined(pieces) -> bytes:
    return b"".join(bytes(p) for p in pieces)


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload)
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_module_of_formats_imports_pil(module):
    """images.py is the only importer of Pillow and pillow-heif; the container code stays plain
    Python."""
    decoders = {m.split(".")[0] for m in imported_modules(module)} & {"PIL", "pillow_heif"}
    assert not decoders


def test_container_modules_import_only_the_stdlib_and_the_shared_modules():
    """base and exif import no sibling, the others only those two (heic also avif's box walk:
    the same ISOBMFF container): no cycle through __init__."""
    for module in PACKAGE.glob("*.py"):
        relative = {m for m in imported_modules(module) if m.startswith(".")}
        if module.stem in ("base", "exif"):
            assert relative == set(), module.name
        elif module.stem == "heic":
            assert relative <= {".base", ".exif", ".avif"}, module.name
        elif module.stem != "__init__":
            assert relative <= {".base", ".exif"}, module.name


def test_every_format_has_a_rewriter_and_sniffs_as_itself():
    samples = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "avif": "AVIF"}
    samples["heic"] = "HEIF"
    assert tuple(samples) == formats.NAMES
    for name, pil_name in samples.items():
        found = formats.sniff(encoded(pil_name)[:512])
        assert found is formats.FORMATS[name]
        assert found.pil_name == pil_name
        # A format stored as another is re-encoded, not rewritten.
        assert callable(found.rewrite) == (found.stored_as is None)


def test_heic_is_accepted_as_itself_but_stored_and_served_as_jpeg():
    """Every list derived from the registry: HEIC may be uploaded, never stored or served."""
    assert "heic" in formats.NAMES and "heic" not in formats.STORED
    assert formats.stored_format("heic") is formats.FORMATS["jpeg"]
    assert formats.stored_format("png") is formats.FORMATS["png"]
    assert formats.EXTENSIONS == ("jpg", "png", "gif", "webp", "avif")
    assert "image/heic" not in formats.STORED_TYPES and "image/jpeg" in formats.STORED_TYPES
    assert not re.fullmatch(formats.IMAGE_NAME_PATTERN, "AbCdEfGhIjKlMnOp.heic")
    assert re.fullmatch(formats.IMAGE_NAME_PATTERN, "AbCdEfGhIjKlMnOp.jpg")
    assert formats.upload_types(["heic"]) == ("image/heic", "image/heif")
    assert formats.upload_extensions(["heic", "jpeg"]) == (".heic", ".heif", ".jpg", ".jpeg")
    assert set(formats.upload_types()) == set(formats.STORED_TYPES) | {"image/heic", "image/heif"}


@pytest.mark.parametrize(
    "brand, expected",
    [
        (b"heic", "heic"),
        (b"heix", "heic"),
        (b"hevc", "heic"),
        (b"heim", "heic"),
        (b"heis", "heic"),
        (b"hevm", "heic"),
        (b"hevs", "heic"),
        (b"mif1", "heic"),
        (b"avif", "avif"),
        (b"avis", "avif"),
        (b"isom", None),  # an MP4 video
        (b"qt  ", None),
    ],
)
def test_heif_brands_sniff_as_heic_and_avif_stays_avif(brand, expected):
    for ftyp in (brand + b"\0\0\0\0mif1", b"mif1\0\0\0\0" + brand):  # major or compatible
        head = struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp
        if brand in (b"isom", b"qt  "):
            head = struct.pack(">I", 16) + b"ftyp" + brand + b"\0\0\0\0"
        found = formats.sniff(head + b"\0" * 32)
        assert (found.name if found else None) == expected, ftyp
    # An AVIF that also lists 'mif1' and 'miaf' (as libavif writes) is AVIF.
    assert formats.sniff(encoded("AVIF")[:512]) is formats.FORMATS["avif"]


def _patch_ispe(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    at = out.index(b"ispe") + 8  # box type, FullBox version and flags
    struct.pack_into(">II", out, at, width, height)
    return bytes(out)


def test_heic_declared_reads_the_primary_size_and_orientation_boxes():
    plain = heic.declared(encoded("HEIF", (128, 96)))
    assert plain == heic.Declared(images=1, largest=(128, 96), transformed=False)
    # Below 64 px libheif codes 64 and crops ('clap'): the ispe is an upper bound, as needed.
    assert heic.declared(encoded("HEIF", (40, 30))).largest == (64, 64)
    exif_6 = Image.Exif()
    exif_6[exif.ORIENTATION_TAG] = 6  # pillow-heif turns it into irot (and keeps the tag)
    turned = heic.declared(encoded("HEIF", (128, 96), exif=exif_6.tobytes()))
    assert turned.transformed and turned.largest == (128, 96)  # ispe: as coded, before irot
    bomb = _patch_ispe(encoded("HEIF", (128, 96)), 60000, 60000)
    assert heic.declared(bomb).largest == (60000, 60000)


def test_heic_declared_reads_a_grid_canvas_and_counts_no_tile_as_an_image():
    grid = bytearray(encoded("HEIF", (256, 128), tile_size=64))
    assert heic.declared(bytes(grid)) == heic.Declared(1, (256, 128), False)
    payload = grid.index(b"idat") + 4  # the grid item's payload: version, flags, rows, columns
    struct.pack_into(">HH", grid, payload + 4, 30000, 30000)  # a canvas its tiles do not cover
    assert heic.declared(bytes(grid)).largest == (30000, 30000)


def test_heic_declared_counts_every_top_level_image():
    heif = pillow_heif.from_pillow(Image.new("RGB", (16, 16), "red"))
    for colour in ("lime", "blue"):
        heif.add_from_pillow(Image.new("RGB", (16, 16), colour))
    out = io.BytesIO()
    heif.save(out)
    assert heic.declared(out.getvalue()).images == 3


@pytest.mark.parametrize("cut", [0, 40, 200], ids=["empty", "ftyp-only", "meta-cut"])
def test_heic_declared_is_corrupt_without_a_whole_meta_box(cut):
    with pytest.raises(Corrupt):
        heic.declared(encoded("HEIF")[:cut])


@pytest.mark.parametrize(
    "module, pil_name",
    [(jpeg, "JPEG"), (png, "PNG"), (gif, "GIF"), (webp, "WEBP")],
    ids=["jpeg", "png", "gif", "webp"],
)
@pytest.mark.parametrize("strip", [False, True], ids=["copy", "strip"])
def test_rewrite_drops_bytes_after_the_end_marker(module, pil_name, strip):
    data = encoded(pil_name)
    assert joined(module.rewrite(data + TAIL, strip, None)) == joined(
        module.rewrite(data, strip, None)
    )
    if not strip:  # a copy of a clean file is the file itself
        assert joined(module.rewrite(data + TAIL, strip, None)) == data


def test_avif_image_end_is_where_the_boxes_end_and_rewrite_cuts_nothing():
    data = encoded("AVIF")
    assert avif.image_end(data + TAIL) == len(data)
    assert joined(avif.rewrite(data + TAIL, False, None)) == data + TAIL


@pytest.mark.parametrize(
    "module, pil_name, marker",
    [(jpeg, "JPEG", b"\xff\xd9"), (png, "PNG", png_chunk(b"IEND", b"")), (gif, "GIF", b"\x3b")],
    ids=["jpeg EOI", "png IEND", "gif trailer"],
)
def test_a_missing_end_marker_is_added(module, pil_name, marker):
    data = encoded(pil_name)
    assert data.endswith(marker)
    assert joined(module.rewrite(data[: -len(marker)], True, None)) == data


@pytest.mark.parametrize("orientation", range(2, 9))
def test_minimal_exif_holds_the_orientation_only(orientation):
    block = exif.minimal_tiff(orientation)
    assert exif.read_orientation(block) == orientation
    assert exif.read_orientation(b"Exif\x00\x00" + block) == orientation
    assert len(block) == 26  # header, one IFD0 entry, no next IFD


def test_minimal_exif_without_orientation_is_an_empty_ifd():
    assert exif.minimal_tiff(None) == exif.minimal_tiff(1)
    assert exif.read_orientation(exif.minimal_tiff(None)) is None


def test_orientation_reader_takes_little_endian_and_long_values():
    entry = struct.pack("<HHII", exif.ORIENTATION_TAG, 4, 1, 8)  # LONG, as some writers do
    block = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    assert exif.read_orientation(block) == 8
    assert exif.read_orientation(block[:14]) is None  # IFD cut short
    assert exif.read_orientation(b"not a tiff at all") is None


def test_jpeg_strip_drops_the_comment_and_writes_the_orientation_after_jfif():
    data = encoded("JPEG", comment=b"SECRET")
    assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00" and b"SECRET" in data
    stored = joined(jpeg.rewrite(data, True, 6))
    app1 = 4 + int.from_bytes(data[4:6], "big")  # right after the JFIF APP0 segment
    assert stored[:app1] == data[:app1] and stored[app1 : app1 + 2] == b"\xff\xe1"
    assert stored[app1 + 4 : app1 + 10] == b"Exif\x00\x00"
    assert b"SECRET" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert im.getexif()[exif.ORIENTATION_TAG] == 6
        assert im.size == (40, 30)


def test_jpeg_segment_running_past_the_end_is_corrupt():
    data = bytearray(encoded("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 2 : sof + 4] = struct.pack(">H", 0xFFFF)
    with pytest.raises(Corrupt):
        list(jpeg.rewrite(bytes(data), True, None))


def test_png_check_is_fatal_only_for_a_critical_chunk_crc():
    data = encoded("PNG")
    ihdr_end = 8 + 25
    text = bytearray(png_chunk(b"tEXt", b"Comment\x00SECRET"))
    text[-1] ^= 0xFF  # ancillary chunk, bad CRC: tolerated, and dropped when scrubbing
    with_text = data[:ihdr_end] + bytes(text) + data[ihdr_end:]
    png.check(with_text)
    assert joined(png.rewrite(with_text, True, None)) == data
    broken_ihdr = bytearray(data)
    broken_ihdr[ihdr_end - 1] ^= 0xFF
    with pytest.raises(Corrupt, match="IHDR"):
        png.check(bytes(broken_ihdr))


def test_png_strip_writes_exif_after_ihdr():
    data = encoded("PNG")
    stored = joined(png.rewrite(data, True, 3))
    assert stored[8 + 25 + 4 : 8 + 25 + 8] == b"eXIf"
    with Image.open(io.BytesIO(stored)) as im:
        assert im.getexif()[exif.ORIENTATION_TAG] == 3


GIF_HEAD = b"GIF89a" + struct.pack("<HHBBB", 2, 2, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"


def gif_frame(left: int, top: int, width: int, height: int) -> bytes:
    return b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0) + b"\x02\x02\x44\x01\x00"


def test_gif_frame_canvases_grow_with_frames_past_the_screen():
    data = GIF_HEAD + gif_frame(0, 0, 1, 1) + gif_frame(3, 1, 4, 2) + gif_frame(0, 0, 1, 1) + b";"
    assert list(gif.frame_canvases(data)) == [(2, 2), (7, 3), (7, 3)]


def test_gif_frame_walk_is_lazy_and_refuses_a_gif_without_frames():
    truncated = GIF_HEAD + gif_frame(0, 0, 1, 1) + gif_frame(0, 0, 1, 1)[:-3]
    walk = gif.frame_canvases(truncated)
    assert next(walk) == (2, 2)  # the first frame is seen before the broken second one
    with pytest.raises(Corrupt):
        next(walk)
    with pytest.raises(Corrupt, match="without a frame"):
        list(gif.frame_canvases(GIF_HEAD + b";"))


def test_gif_strip_drops_comments_keeps_frames():
    comment = b"\x21\xfe\x06SECRET\x00"
    data = GIF_HEAD + comment + gif_frame(0, 0, 1, 1) + b";"
    assert joined(gif.rewrite(data, True, None)) == GIF_HEAD + gif_frame(0, 0, 1, 1) + b";"
    assert joined(gif.rewrite(data, False, None)) == data


@pytest.mark.parametrize(
    "params", [{"lossless": True}, {"lossless": False}, {"exif": b"Exif\x00\x00MM\x00*"}]
)
def test_webp_header_canvas_agrees_with_pillow(params):
    data = encoded("WEBP", size=(123, 45), **params)
    assert webp.header_canvas(data[:512]) == (123, 45)


def test_webp_strip_clears_the_exif_flag_and_writes_the_orientation():
    data = encoded("WEBP", exif=Image.Exif().tobytes())  # an EXIF chunk needs VP8X
    assert data[12:16] == b"VP8X" and data[20] & 0x08
    stored = joined(webp.rewrite(data, True, None))
    assert b"EXIF" not in stored and not stored[20] & 0x08
    assert int.from_bytes(stored[4:8], "little") == len(stored) - 8
    with_orientation = joined(webp.rewrite(data, True, 5))
    assert with_orientation[20] & 0x08
    with Image.open(io.BytesIO(with_orientation)) as im:
        assert im.getexif()[exif.ORIENTATION_TAG] == 5


def test_webp_riff_size_past_the_end_is_corrupt():
    data = bytearray(encoded("WEBP"))
    data[4:8] = struct.pack("<I", len(data))  # 8 bytes more than there are
    with pytest.raises(Corrupt, match="truncated RIFF"):
        webp.check(bytes(data))


def test_avif_strip_blanks_the_exif_item_in_place():
    secret = Image.Exif()
    secret[0x010E] = "SECRET DESCRIPTION"  # ImageDescription
    data = encoded("AVIF", exif=secret.tobytes())
    assert b"SECRET DESCRIPTION" in data
    stored = joined(avif.rewrite(data, True, None))
    assert len(stored) == len(data) and b"SECRET DESCRIPTION" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        im.load()
        assert im.size == (40, 30)


_FMT = r"(?:jpe?g|png|gif|webp|avif)"
# The shapes a hand-kept copy of the registry takes: a regex alternation of extensions, a quoted
# list of format names, a content type spelled out.
COPY = re.compile(
    rf"\b{_FMT}\|{_FMT}\b|[\"']{_FMT}[\"']\s*,\s*[\"']{_FMT}[\"']|\bimage/{_FMT}\b", re.I
)


def test_no_second_list_of_formats():
    """Outside formats/, no code line of the package, its nginx template or the benchmark
    spells the formats again (tests may: they assert the defaults on purpose)."""
    root = Path(__file__).resolve().parent.parent
    package = root / "src" / "imagehost"
    sources = [*package.rglob("*.py"), package / "nginx.conf.template"]
    sources += list((root / "bench").glob("*.py"))
    copies = []
    for path in sources:
        if "formats" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if COPY.search(line) and not line.lstrip().startswith("#"):
                copies.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert copies == []
    assert COPY.search('IMAGE = re.compile(r"x\\.(jpg|png|gif)")')  # it would see one
