"""EXIF (a TIFF block): the minimal one we write back and the IFD0 orientation we read.

Shared by JPEG (APP1), PNG (eXIf), WebP (EXIF chunk) and AVIF (the Exif item): scrubbing keeps
the orientation of a photo, and nothing else of its EXIF, in a block only this module writes.
"""

import struct

ORIENTATION_TAG = 0x0112


def minimal_tiff(orientation: int | None) -> bytes:
    """A big-endian TIFF/EXIF block whose IFD0 holds only Orientation (or nothing)."""
    if orientation is None or orientation == 1:
        return b"MM\x00\x2a" + struct.pack(">IHI", 8, 0, 0)
    entry = struct.pack(">HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)  # SHORT, count 1
    return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def read_orientation(exif: bytes) -> int | None:
    """The Orientation (0x0112) value in IFD0 of an EXIF/TIFF block, or None."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(exif[:4])
    if order is None:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", exif, entry)
            if tag == ORIENTATION_TAG:
                # SHORT as the standard says; some writers use LONG.
                return struct.unpack_from(order + ("I" if kind == 4 else "H"), exif, entry + 8)[0]
    except struct.error:
        return None
    return None
