"""WebP: the RIFF chunk walk that checks sizes, scrubs metadata and cuts the file at the RIFF end.

VP8X flags say which optional chunks exist, so they are rewritten too.
"""

import struct
from collections.abc import Iterator

from .base import Corrupt
from .exif import minimal_tiff

_KEEP = frozenset((b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"))
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def header_canvas(head: bytes) -> tuple[int, int] | None:
    """Canvas size in pixels from a WebP's first chunk, or None when it does not say.

    Read without libwebp, which allocates the canvas before anyone could check its size.
    """
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


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, start, end incl. padding) for each top-level WebP chunk; Corrupt if broken."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Corrupt("not a WebP")
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise Corrupt("truncated RIFF")
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise Corrupt("truncated chunk header")
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > riff_end:
            raise Corrupt("chunk runs past the RIFF end")
        end = min(pos + 8 + size + (size & 1), riff_end)
        yield data[pos : pos + 4], pos, end
        pos = end


def check(data: bytes) -> None:
    """Walk every top-level chunk (every frame; verify decodes only the first): raises Corrupt
    when the RIFF or a chunk runs past the end."""
    for _ in _chunks(data):
        pass


def rewrite(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    """The pieces of the stored file: the RIFF and nothing after it, scrubbed if `strip`.

    Scrubbing keeps the chunks that decode (and the ICC profile), clears the VP8X EXIF/XMP flags
    and writes `orientation` other than None and 1 as an EXIF chunk (extended format only).
    Raises Corrupt like `check`.
    """
    view = memoryview(data)
    chunks = list(_chunks(data))
    if not strip:
        yield view[: 8 + int.from_bytes(data[4:8], "little")]
        return
    body: list[memoryview | bytes] = []
    vp8x = None
    for fourcc, start, end in chunks:
        if fourcc == b"VP8X":
            vp8x = bytearray(view[start:end])
            body.append(vp8x)
        elif fourcc in _KEEP:
            body.append(view[start:end])
    if vp8x is not None:
        vp8x[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        if orientation not in (None, 1):  # EXIF is only allowed in the extended format
            tiff = minimal_tiff(orientation)
            body.append(b"EXIF" + struct.pack("<I", len(tiff)) + tiff + b"\x00" * (len(tiff) & 1))
            vp8x[8] |= _VP8X_EXIF
    yield b"RIFF" + struct.pack("<I", 4 + sum(len(p) for p in body)) + b"WEBP"
    yield from body
