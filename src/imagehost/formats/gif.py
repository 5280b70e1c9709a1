"""GIF: the block walk that counts frames, scrubs extensions and cuts the file at the trailer.

Blocks are walked byte by byte (no LZW decoding), so a frame costs only its size.
"""

import struct
from collections.abc import Iterator

from .base import Corrupt

# Kept: frames, their graphic control (delay, disposal, transparency), looping and ICC profile.
_KEEP = frozenset(("head", "image", "gce", "app:NETSCAPE2.0", "app:ANIMEXTS1.0", "app:ICCRGBG1012"))


def _sub_blocks_end(data: bytes, pos: int) -> int:
    """Offset after the chain of data sub-blocks starting at `pos` (ends with a 0 length)."""
    n = len(data)
    while True:
        if pos >= n:
            raise Corrupt("truncated GIF block")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _blocks(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end): "head", "image", "gce", "app:<id>", "other", then "trailer".

    A missing trailer is tolerated, as are unknown bytes after the last block: both end the
    image there (they are where appended non-GIF data would start).
    """
    if len(data) < 13:
        raise Corrupt("truncated GIF header")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    if pos > len(data):
        raise Corrupt("truncated GIF palette")
    yield "head", 0, pos
    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x2C:  # image descriptor [+ local palette], LZW code size, data
            if pos + 11 > len(data):
                raise Corrupt("truncated GIF frame")
            flags = data[pos + 9]
            start = pos + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            end = _sub_blocks_end(data, start)
            yield "image", pos, end
        elif introducer == 0x21:  # extension: label, sub-blocks
            if pos + 2 > len(data):
                raise Corrupt("truncated GIF extension")
            label = data[pos + 1]
            end = _sub_blocks_end(data, pos + 2)
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


def frame_canvases(data: bytes) -> Iterator[tuple[int, int]]:
    """The canvas (width, height) in pixels as each frame leaves it: Pillow grows the canvas to
    fit a frame reaching past it. Lazy, so the caller stops the walk at its frame limit.

    Raises Corrupt when a block is truncated or there is no frame at all.
    """
    frames = 0
    width, height = struct.unpack_from("<HH", data, 6)
    for kind, start, _ in _blocks(data):
        if kind != "image":
            continue
        frames += 1
        left, top, w, h = struct.unpack_from("<4H", data, start + 1)
        width, height = max(width, left + w), max(height, top + h)
        yield width, height
    if frames == 0:
        raise Corrupt("GIF without a frame")


def rewrite(data: bytes, strip: bool, orientation: int | None) -> Iterator[memoryview | bytes]:
    """The pieces of the stored file: header to trailer (added when missing), scrubbed if
    `strip` (comments, plain text and unknown application extensions go). GIF has no EXIF:
    `orientation` is ignored. Raises Corrupt when a block is truncated."""
    view = memoryview(data)
    for kind, start, end in _blocks(data):
        if kind == "trailer":
            yield b"\x3b"
        elif not strip or kind in _KEEP:
            yield view[start:end]
