"""HEIC/HEIF (ISOBMFF, AVIF's container): every size the file declares, read from its boxes.

HEIC uploads are decoded by libheif (through pillow-heif, in images.py) and stored as JPEG, so
there is nothing to scrub or cut here. What this module gives images.py is what libheif would
allocate, before libheif sees the bytes: the 'ispe' (image spatial extent) of every image item
and the canvas of every grid/overlay item (from its payload, which libheif trusts as long as its
tiles cover it), the number of images shown (top-level items and sequence samples), and whether
the primary image carries its orientation as irot/imir properties.

libheif itself (1.23, bundled in pillow-heif's wheels) refuses a coded HEVC picture larger than
its item's ispe before allocating it, so the ispe bounds the coded size too
(tests/test_images.py checks it with an SPS that lies).
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .avif import boxes, boxes_end, extents
from .base import Corrupt

# Items that reference another with these types are not shown themselves: thumbnails and
# auxiliary images (alpha, depth, HDR gain maps) reference their master image.
_NOT_SHOWN_REFERENCES = frozenset((b"thmb", b"auxl"))
_METADATA_ITEMS = frozenset((b"Exif", b"mime", b"uri "))
_TRACK_CONTAINERS = frozenset((b"moov", b"trak", b"mdia", b"minf", b"stbl"))


@dataclass(frozen=True)
class Declared:
    """What the boxes of a HEIF file declare, before any decoder has read them."""

    images: int  # shown: top-level image items plus the samples of every track
    largest: tuple[int, int]  # width, height of the largest item or derived canvas, in pixels
    transformed: bool  # the primary image has irot or imir: its orientation is in the container


def _uint(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise Corrupt("box field past the end")
    return int.from_bytes(data[pos : pos + size], "big")


def _children(data: bytes, box: tuple[bytes, int, int, int], full: bool = False):
    """The boxes inside `box`, skipping a FullBox's version and flags when `full`."""
    _, _, payload, end = box
    return list(boxes(data, payload + (4 if full else 0), end))


def _items(data: bytes, iinf: tuple[bytes, int, int, int]) -> dict[int, tuple[bytes, bool]]:
    """item_ID -> (item type, hidden) from an 'iinf' box (infe version 2 and 3)."""
    _, _, payload, end = iinf
    first = payload + 4 + (2 if data[payload] == 0 else 4)  # FullBox, then entry_count
    items = {}
    for etype, _, entry, _ in boxes(data, first, end):
        version = data[entry]
        if etype != b"infe" or version < 2:
            continue
        hidden = bool(_uint(data, entry + 1, 3) & 1)
        id_size = 2 if version == 2 else 4
        item_id = _uint(data, entry + 4, id_size)
        items[item_id] = (data[entry + 6 + id_size : entry + 10 + id_size], hidden)
    return items


def _references(data: bytes, iref: tuple[bytes, int, int, int]) -> Iterator[tuple[bytes, int, int]]:
    """(reference type, from item, to item) for every reference in an 'iref' box."""
    _, _, payload, end = iref
    id_size = 2 if data[payload] == 0 else 4
    for rtype, _, pos, ref_end in boxes(data, payload + 4, end):
        source = _uint(data, pos, id_size)
        count = _uint(data, pos + id_size, 2)
        pos += id_size + 2
        if pos + count * id_size > ref_end:
            raise Corrupt("iref runs past its box")
        for i in range(count):
            yield rtype, source, _uint(data, pos + i * id_size, id_size)


def _associations(data: bytes, ipma: tuple[bytes, int, int, int]) -> dict[int, list[int]]:
    """item_ID -> the 1-based indexes into 'ipco' of its properties, from an 'ipma' box."""
    _, _, payload, end = ipma
    version, flags = data[payload], _uint(data, payload + 1, 3)
    count = _uint(data, payload + 4, 4)
    pos, id_size, index_size = payload + 8, (2 if version < 1 else 4), (2 if flags & 1 else 1)
    associations = {}
    for _ in range(count):
        item_id = _uint(data, pos, id_size)
        n = _uint(data, pos + id_size, 1)
        pos += id_size + 1
        if pos + n * index_size > end:
            raise Corrupt("ipma runs past its box")
        mask = 0x7FFF if index_size == 2 else 0x7F  # the top bit says "essential"
        associations[item_id] = [
            _uint(data, pos + i * index_size, index_size) & mask for i in range(n)
        ]
        pos += n * index_size
    return associations


def _canvas(payload: bytes, item_type: bytes) -> tuple[int, int] | None:
    """The output size a 'grid' or 'iovl' derived item's payload declares (ISO 23008-12 6.6.2)."""
    if len(payload) < 2:
        raise Corrupt("derived image item without its payload")
    wide = payload[1] & 1  # flags: 32-bit fields instead of 16-bit
    fmt = ">II" if wide else ">HH"
    offset = {b"grid": 4, b"iovl": 2 + 8}[item_type]  # grid: rows, columns; iovl: fill colour
    if len(payload) < offset + struct.calcsize(fmt):
        raise Corrupt("derived image item payload cut short")
    return struct.unpack_from(fmt, payload, offset)


def _track_samples(data: bytes, start: int, end: int) -> int:
    """The number of samples of every track under data[start:end] (from each 'stsz')."""
    samples = 0
    for btype, _, payload, box_end in boxes(data, start, end):
        if btype == b"stsz":
            samples += _uint(data, payload + 8, 4)  # FullBox, sample_size, sample_count
        elif btype == b"stz2":
            samples += _uint(data, payload + 8, 4)  # FullBox, reserved + field_size, count
        elif btype in _TRACK_CONTAINERS:
            samples += _track_samples(data, payload, box_end)
    return samples


def declared(data: bytes) -> Declared:
    """Read what the file declares: shown images, the largest size, the primary's transforms.

    Raises Corrupt when the 'meta' box, its primary item or that item's 'ispe' is missing or
    any of the boxes read runs past its parent.
    """
    top = list(boxes(data, 0, boxes_end(data)))
    meta = next((b for b in top if b[0] == b"meta"), None)
    if meta is None:
        raise Corrupt("no meta box")
    inside = {b[0]: b for b in _children(data, meta, full=True)}
    if b"pitm" not in inside or b"iinf" not in inside or b"iprp" not in inside:
        raise Corrupt("no primary image")
    pitm = inside[b"pitm"]
    primary = _uint(data, pitm[2] + 4, 2 if data[pitm[2]] == 0 else 4)
    items = _items(data, inside[b"iinf"])
    iprp = {b[0]: b for b in _children(data, inside[b"iprp"])}
    if b"ipco" not in iprp or b"ipma" not in iprp:
        raise Corrupt("no item properties")
    properties = _children(data, iprp[b"ipco"])
    associations = _associations(data, iprp[b"ipma"])

    sizes = []
    for ptype, _, payload, _ in properties:
        if ptype == b"ispe":
            sizes.append((_uint(data, payload + 4, 4), _uint(data, payload + 8, 4)))
    derived = [i for i, (itype, _) in items.items() if itype in (b"grid", b"iovl")]
    if derived:
        meta_start, meta_end = meta[2] + 4, meta[3]
        located = extents(data, meta_start, meta_end)
        for item_id in derived:
            payload = b"".join(data[r.start : r.stop] for r in located.get(item_id, []))
            sizes.append(_canvas(payload, items[item_id][0]))

    not_shown = set()
    if b"iref" in inside:
        for rtype, source, target in _references(data, inside[b"iref"]):
            if rtype in _NOT_SHOWN_REFERENCES:
                not_shown.add(source)
            elif rtype == b"dimg":
                not_shown.add(target)  # the tiles or inputs of a derived image
    shown = [
        i
        for i, (itype, hidden) in items.items()
        if itype not in _METADATA_ITEMS and not hidden and i not in not_shown
    ]
    samples = sum(_track_samples(data, b[2], b[3]) for b in top if b[0] == b"moov")

    primary_properties = [
        properties[i - 1][0] for i in associations.get(primary, []) if 0 < i <= len(properties)
    ]
    if primary not in items or b"ispe" not in primary_properties:
        raise Corrupt("the primary image has no size")
    largest = max(sizes, key=lambda size: size[0] * size[1])
    transformed = bool({b"irot", b"imir"} & set(primary_properties))
    return Declared(max(1, len(shown)) + samples, largest, transformed)
