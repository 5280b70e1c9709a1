"""AVIF (ISOBMFF/HEIF): the box walk that finds where the image ends and blanks its metadata.

EXIF and XMP are items whose bytes the 'iloc' box locates (usually in 'mdat'). Removing items
would mean rewriting iinf/iloc/iref and every offset, so instead the items' bytes are overwritten
in place: EXIF with a minimal valid payload (libavif refuses an invalid one), XMP and other
'mime' items with spaces. Nothing moves and no pixel is touched; orientation lives in the
irot/imir properties, which stay. udta/uuid boxes are blanked too.
"""

import struct
from collections.abc import Iterator

from .base import CEILING_FRAMES, Corrupt
from .exif import minimal_tiff

_CONTAINERS = frozenset((b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"))


def boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) for the boxes in data[start:end]."""
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise Corrupt("truncated box header")
        size = int.from_bytes(data[pos : pos + 4], "big")
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise Corrupt("truncated box header")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Corrupt("box runs past its parent")
        yield bytes(data[pos + 4 : pos + 8]), pos, pos + header, pos + size
        pos += size


def boxes_end(data: bytes | bytearray) -> int:
    """End of the last complete top-level box: bytes after it are not part of the file."""
    pos = 0
    try:
        for _, _, _, end in boxes(data, 0, len(data)):
            pos = end
    except Corrupt:
        pass
    return pos


def _uint(data: bytes | bytearray, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "big") if size else 0


def _metadata_items(data: bytearray, meta_start: int, meta_end: int) -> dict[int, bytes]:
    """item_ID -> item type, for the 'Exif' and 'mime' (XMP) items of a 'meta' box."""
    items: dict[int, bytes] = {}
    for btype, _, payload, end in boxes(data, meta_start, meta_end):
        if btype != b"iinf":
            continue
        first = payload + 4 + (2 if data[payload] == 0 else 4)  # FullBox, entry_count
        for etype, _, entry, _ in boxes(data, first, end):
            version = data[entry]
            if etype != b"infe" or version < 2:
                continue
            id_size = 2 if version == 2 else 4
            item_id = _uint(data, entry + 4, id_size)
            item_type = bytes(data[entry + 6 + id_size : entry + 10 + id_size])
            if item_type in (b"Exif", b"mime"):
                items[item_id] = item_type
    return items


def extents(data: bytes | bytearray, meta_start: int, meta_end: int) -> dict[int, list[range]]:
    """item_ID -> absolute byte ranges of its data, from the 'iloc' box (and 'idat')."""
    idat = next((p for t, _, p, _ in boxes(data, meta_start, meta_end) if t == b"idat"), None)
    iloc = next((b for b in boxes(data, meta_start, meta_end) if b[0] == b"iloc"), None)
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
    located: dict[int, list[range]] = {}
    for _ in range(count):
        if pos + count_size > iloc_end:
            raise Corrupt("iloc runs past its box")
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
            raise Corrupt("iloc runs past its box")  # also bounds the loops by the box size
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
        located[item_id] = ranges
    return located


def _blank(data: bytearray, ranges: list[range], replacement: bytes, filler: bytes) -> None:
    """Overwrite the bytes of `ranges` (in order) with `replacement`, padded with `filler`."""
    total = sum(len(r) for r in ranges)
    payload = replacement + filler * (total - len(replacement))
    done = 0
    for r in ranges:
        if r.start < 0 or r.stop > len(data):
            raise Corrupt("metadata item outside the file")
        data[r.start : r.stop] = payload[done : done + len(r)]
        done += len(r)


def image_end(data: bytes) -> int:
    """Where the image's own bytes end, as far as the boxes tell: after the last complete
    top-level box, or after the last item data 'iloc' points at when that is later.

    libavif reads items wherever iloc points, even past the last well-formed box: those bytes
    are kept, or an image that decoded would not decode once stored. Track samples (found
    through stco/stsc) may lie past this end too, so a cut here has to be confirmed by decoding
    the cut copy, which this package cannot do (images.scrub does it). Raises Corrupt when the
    'meta' box's iloc runs past its box.
    """
    last_box_end = boxes_end(data)
    meta = next((b for b in boxes(data, 0, last_box_end) if b[0] == b"meta"), None)
    located = extents(data, meta[2] + 4, meta[3]) if meta else {}
    item_ends = [r.stop for ranges in located.values() for r in ranges if r.start >= 0]
    return min(len(data), max([last_box_end, *item_ends]))


def rewrite(
    data: bytes | memoryview, strip: bool, orientation: int | None
) -> Iterator[memoryview | bytes]:
    """The stored file: every byte of `data` (a view cut at `image_end`), blanked if `strip`.

    Unlike the other formats nothing is cut here: whether the tail after `image_end` is needed
    takes a decoder to tell. Blanking writes `orientation` into the EXIF item (when the item has
    room for the minimal block) and raises Corrupt rather than overwrite anything but metadata.
    """
    out = bytearray(data)
    if strip:
        top = list(boxes(out, 0, boxes_end(out)))
        # Item data lives in mdat (or idat); blanking must not touch any track sample.
        holders = [range(payload, end) for btype, _, payload, end in top if btype == b"mdat"]
        samples = [r for b in top if b[0] == b"moov" for r in _track_samples(out, b[2], b[3])]
        for btype, box, payload, end in top:
            if btype == b"meta":
                _blank_items(out, payload + 4, end, orientation, holders, samples)
            elif btype in _CONTAINERS:
                _blank_boxes(out, payload, end)
            elif btype in (b"udta", b"uuid"):
                _blank_box(out, box, payload, end)
    yield out


def _blank_items(
    data: bytearray,
    start: int,
    end: int,
    orientation: int | None,
    holders: list[range],
    samples: list[range],
) -> None:
    """Overwrite the EXIF and XMP items of the 'meta' box data[start:end] in place.

    Raises Corrupt rather than overwrite anything else: a metadata extent outside mdat/idat,
    or sharing bytes with another item or a track sample, only happens in a malformed file.
    """
    located = extents(data, start, end)
    metadata = _metadata_items(data, start, end)
    idat = [range(p, e) for t, _, p, e in boxes(data, start, end) if t == b"idat"]
    others = [r for item, ranges in located.items() if item not in metadata for r in ranges]
    others += samples
    for item_id, item_type in metadata.items():
        ranges = located.get(item_id, [])
        for r in ranges:
            inside = any(h.start <= r.start and r.stop <= h.stop for h in holders + idat)
            if not inside or any(r.start < o.stop and o.start < r.stop for o in others):
                raise Corrupt("metadata item overlaps other data")
        if item_type == b"Exif":
            # exif_tiff_header_offset (0: the TIFF header follows), then the TIFF block.
            minimal = struct.pack(">I", 0) + minimal_tiff(orientation)
            if sum(len(r) for r in ranges) < len(minimal):
                minimal = b""
            _blank(data, ranges, minimal, b"\x00")
        else:
            _blank(data, ranges, b"", b" ")


def _track_samples(data: bytearray, start: int, end: int) -> list[range]:
    """Byte ranges of every sample of every track in the moov box data[start:end]."""
    samples = []
    for btype, _, payload, box_end in boxes(data, start, end):
        if btype == b"stbl":
            samples += _stbl_samples(data, payload, box_end)
        elif btype in _CONTAINERS:
            samples += _track_samples(data, payload, box_end)
    return samples


def _stbl_samples(data: bytearray, start: int, end: int) -> list[range]:
    """Samples laid out as stsz (sizes), stco/co64 (chunk offsets) and stsc (runs) say."""
    tables = {
        btype: (payload + 4, box_end) for btype, _, payload, box_end in boxes(data, start, end)
    }

    def entries(name: bytes, width: int, skip: int = 0, fields: int = 1) -> list[int]:
        """The table's values (`fields` of `width` bytes per entry), after its entry count."""
        if name not in tables:
            return []
        pos, box_end = tables[name]
        count = _uint(data, pos + skip, 4) * fields
        first = pos + skip + 4
        if first + count * width > box_end:
            raise Corrupt(f"{name!r} runs past its box")
        return [_uint(data, first + i * width, width) for i in range(count)]

    if b"stsz" not in tables:
        return []
    constant = _uint(data, tables[b"stsz"][0], 4)
    if constant:
        count = _uint(data, tables[b"stsz"][0] + 4, 4)
        if count > CEILING_FRAMES:
            raise Corrupt("too many samples")
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


def _blank_boxes(data: bytearray, start: int, end: int) -> None:
    """Inside moov/trak/...: user data and vendor boxes become 'free' (ignored) with zeros."""
    for btype, box, payload, box_end in boxes(data, start, end):
        if btype in (b"udta", b"uuid"):
            _blank_box(data, box, payload, box_end)
        elif btype in _CONTAINERS:
            _blank_boxes(data, payload, box_end)


def _blank_box(data: bytearray, box: int, payload: int, end: int) -> None:
    data[box + 4 : box + 8] = b"free"
    data[payload:end] = bytes(end - payload)
