"""The upload bodies of the benchmark, generated deterministically with Pillow: seeded noise
tuned to realistic sizes (a 50 KB photo, a 1 MB screenshot, a 4 MB camera JPEG, a small
animated GIF), the same bytes on every run with one Pillow.

Each upload of a run is made distinct (Fixture.variant): the same bytes sent again would be
deduplicated into links by the server (issue 14), which real traffic mostly is not. Only a few
bytes near the start change — kept by the scrub, decoded at the same cost — so the load client
sends the unchanged rest as it is, without copying it.
"""

import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from imagehost.formats import FORMATS

SMALL_JPEG = "jpeg-50k"  # the upload of the delivery, listing, scaling and profile stages
LARGE_JPEG = "jpeg-4m"  # the memory burst's


@dataclass(frozen=True)
class Fixture:
    """One upload body: its name in the results, the file name and type it is sent with, and
    how upload number n rewrites its first `head` bytes (None: every upload is the same)."""

    name: str
    filename: str
    content_type: str
    data: bytes
    pixels: str
    vary: Callable[[bytes, int], bytes] | None = field(default=None, compare=False)

    @property
    def head(self) -> int:
        return len(self.vary(self.data, 0)) if self.vary else 0

    def variant(self, n: int) -> bytes:
        """data[:head] for upload number n (n < 65536 gives distinct bytes)."""
        return self.vary(self.data, n) if self.vary else b""


def _vary_quantization(data: bytes, n: int) -> bytes:
    """A JPEG's first quantization table, its 8 highest-frequency steps raised by 0-3 each (16
    bits of n): the tables are kept by the scrub, the decode costs the same."""
    at = data.index(b"\xff\xdb") + 5  # marker, length, precision/table id: then 64 steps
    table = bytearray(data[at : at + 64])
    for i in range(8):
        table[56 + i] = min(255, table[56 + i] + ((n >> (2 * i)) & 3))
    return data[:at] + bytes(table)


def _vary_density(data: bytes, n: int) -> bytes:
    """A PNG's pHYs chunk (kept by the scrub) with n in its horizontal density, CRC redone."""
    at = data.index(b"pHYs")
    chunk = bytearray(data[at : at + 13])  # type and 9 data bytes
    chunk[4:8] = struct.pack(">I", 2835 + n)
    return data[:at] + bytes(chunk) + struct.pack(">I", zlib.crc32(chunk))


def _vary_delay(data: bytes, n: int) -> bytes:
    """A GIF's first frame delay (timing is kept by the scrub) set from n."""
    at = data.index(b"\x21\xf9\x04") + 4  # extension, label, size, packed: then the delay
    return data[:at] + struct.pack("<H", n & 0xFFFF)


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _gradient(size: tuple[int, int]) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size)
    ring = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", (ramp, ring, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def _noise(size: tuple[int, int], seed: int, channels: int = 3) -> bytes:
    return random.Random(seed).randbytes(size[0] * size[1] * channels)


def _photo_jpeg(size: tuple[int, int], target: int, seed: int, quality: int) -> bytes:
    """A JPEG of photo dimensions whose seeded noise is tuned (bisection) to ~`target` bytes."""
    base = _gradient(size)
    noise = Image.frombytes("RGB", size, _noise(size, seed))
    low, high, best = 0.0, 1.0, b""
    for _ in range(14):
        alpha = (low + high) / 2
        data = _encode(Image.blend(base, noise, alpha), "JPEG", quality=quality)
        if not best or abs(len(data) - target) < abs(len(best) - target):
            best = data
        if abs(len(data) - target) < target * 0.02:
            break
        low, high = (low, alpha) if len(data) > target else (alpha, high)
    return best


def _screenshot_png(size: tuple[int, int], target: int, seed: int) -> bytes:
    """A PNG: a smooth gradient with a band of seeded noise rows sized to ~`target` bytes."""
    width, height = size
    base = _gradient(size)
    noise = Image.frombytes("RGB", size, _noise(size, seed))

    def make(rows: int) -> bytes:
        img = base.copy()
        img.paste(noise.crop((0, 0, width, rows)), (0, 0))
        return _encode(img, "PNG", dpi=(72, 72))  # dpi: a pHYs chunk for _vary_density

    rows = max(1, min(height, target // (width * 3)))
    data = make(rows)
    for _ in range(3):
        if abs(len(data) - target) < target * 0.02:
            break
        rows = max(1, min(height, round(rows * target / len(data))))
        data = make(rows)
    return data


def _animated_gif(size: tuple[int, int], frames: int, noise_rows: int, seed: int) -> bytes:
    width, height = size
    rng = random.Random(seed)
    palette = rng.randbytes(768)
    images = []
    for frame in range(frames):
        ramp = bytes((x + frame * 8) // 2 % 256 for x in range(width)) * (height - noise_rows)
        img = Image.frombytes("P", size, rng.randbytes(width * noise_rows) + ramp)
        img.putpalette(palette)
        images.append(img)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return out.getvalue()


def make_fixtures() -> dict[str, Fixture]:
    """The four upload bodies by name, in the order of the upload table."""
    fixtures = [
        Fixture(
            SMALL_JPEG,
            "photo.jpg",
            FORMATS["jpeg"].content_type,
            _photo_jpeg((640, 480), 50_000, 1, 85),
            "640x480",
            _vary_quantization,
        ),
        Fixture(
            "png-1m",
            "screen.png",
            FORMATS["png"].content_type,
            _screenshot_png((1280, 800), 1_000_000, 2),
            "1280x800",
            _vary_density,
        ),
        Fixture(
            LARGE_JPEG,
            "camera.jpg",
            FORMATS["jpeg"].content_type,
            _photo_jpeg((4000, 3000), 4_000_000, 3, 90),
            "4000x3000",
            _vary_quantization,
        ),
        Fixture(
            "gif-anim",
            "anim.gif",
            FORMATS["gif"].content_type,
            _animated_gif((240, 180), 12, 48, 4),
            "240x180x12",
            _vary_delay,
        ),
    ]
    return {f.name: f for f in fixtures}
