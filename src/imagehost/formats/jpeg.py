"""JPEG: the marker-segment walk that scrubs metadata and cuts the file after EOI.

The segment lengths say where each segment ends, so an EXIF thumbnail's own SOI/EOI inside APP1
is skipped; entropy-coded data runs until a 0xFF that is not a stuffed 0xFF00, a fill byte or a
restart marker.
"""

import re
import struct
from collections.abc import Iterator

from .base import Corrupt
from .exif import minimal_tiff

_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def _keep(marker: int, payload: bytes | memoryview) -> bool:
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


def rewrite(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    """The pieces of the stored file: SOI to EOI (one is added when missing), scrubbed if `strip`.

    `orientation` other than None and 1 is written as a minimal EXIF APP1 after SOI / JFIF.
    Raises Corrupt when a segment runs past the end or SOI appears again.
    """
    view = memoryview(data)
    n = len(data)
    yield view[:2]  # SOI
    exif = None
    if strip and orientation not in (None, 1):
        tiff = b"Exif\x00\x00" + minimal_tiff(orientation)
        exif = b"\xff\xe1" + struct.pack(">H", len(tiff) + 2) + tiff
    pos, in_scan = 2, False
    while pos < n:
        if in_scan or data[pos] != 0xFF:
            match = _MARKER.search(data, pos)
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
            raise Corrupt("misplaced SOI or truncated segment")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end < pos + 4 or end > n:
            raise Corrupt("segment runs past the end")
        if not strip or _keep(marker, view[pos + 4 : end]):
            is_jfif = marker == 0xE0 and data.startswith(b"JFIF\x00", pos + 4)
            if exif is not None and not is_jfif:  # EXIF goes right after SOI / JFIF APP0
                yield exif
                exif = None
            yield view[pos:end]
        pos, in_scan = end, marker == 0xDA
    yield b"\xff\xd9"  # no EOI, yet it decoded: close the stream
