"""PNG: the chunk walk that checks CRCs, scrubs metadata and cuts the file after IEND."""

import struct
import zlib
from collections.abc import Iterator

from .base import Corrupt
from .exif import minimal_tiff

# Critical chunks, colour information, transparency, physical size and APNG animation stay.
_KEEP = frozenset(
    b"IHDR PLTE IDAT IEND tRNS cHRM gAMA iCCP sBIT sRGB cICP mDCV cLLI bKGD hIST pHYs "
    b"acTL fcTL fdAT".split()
)
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(ctype))
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int, bool]]:
    """(type, start, end, crc_ok) for each chunk up to IEND; raises Corrupt when broken.

    Like libpng, a bad CRC is fatal in a critical chunk and only marks an ancillary one.
    """
    if not data.startswith(_SIGNATURE):
        raise Corrupt("not a PNG")
    view = memoryview(data)
    pos, n = 8, len(data)
    while pos < n:
        if pos + 12 > n:
            raise Corrupt("truncated chunk")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise Corrupt("truncated chunk")
        crc_ok = zlib.crc32(view[pos + 4 : end - 4]) == int.from_bytes(data[end - 4 : end], "big")
        if not crc_ok and ctype[:1].isupper():
            raise Corrupt(f"bad CRC in {ctype!r}")
        yield ctype, pos, end, crc_ok
        pos = end
        if ctype == b"IEND":
            return


def check(data: bytes) -> None:
    """Walk the whole file (every frame; verify decodes only the first): raises Corrupt on a
    truncated chunk or a bad CRC in a critical chunk."""
    for _ in _chunks(data):
        pass


def rewrite(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    """The pieces of the stored file: signature to IEND (added when missing), scrubbed if `strip`.

    Scrubbing also drops ancillary chunks with a bad CRC; `orientation` other than None and 1 is
    written as an eXIf chunk. Raises Corrupt like `check`.
    """
    view = memoryview(data)
    yield view[:8]
    last = None
    for ctype, start, end, crc_ok in _chunks(data):
        last = ctype
        if not strip or (ctype in _KEEP and crc_ok):
            yield view[start:end]
        if strip and ctype == b"IHDR" and orientation not in (None, 1):
            # eXIf right after IHDR: before IDAT, where every reader looks for it.
            yield _chunk(b"eXIf", minimal_tiff(orientation))
    if last != b"IEND":
        yield _chunk(b"IEND", b"")
