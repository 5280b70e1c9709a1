"""The upload bodies of the benchmark, generated deterministically with Pillow: seeded noise
tuned to realistic sizes (a 50 KB photo, a 1 MB screenshot, a 4 MB camera JPEG, a small
animated GIF), the same bytes on every run with one Pillow.

Beside them, the same sizes made from real photographs (issue 15: the pipeline's cost on noise
is not its cost on photos): scikit-image's bundled sample photos, PNG files inside its wheel
(skimage/data/, the `bench` extra), read with Pillow without importing scikit-image:
- photo-jpeg-50k: coffee (600x400, a cup of coffee) cropped to 4:3 and scaled to 640x480, at
  the JPEG quality closest to 50 KB;
- photo-png-1m: astronaut (512x512, Eileen Collins) scaled until its PNG is ~1 MB, its sRGB
  profile kept as a photo's is;
- photo-jpeg-4m: chelsea (451x300, a cat) cropped to 4:3 and upscaled to 4000x3000 with seeded
  Gaussian grain (luma only) whose strength is searched for ~4 MB at quality 95, as a camera's
  noisy sensor compresses.

Each upload of a run is made distinct (Fixture.variant): the same bytes sent again would be
deduplicated into links by the server (issue 14), which real traffic mostly is not. Only a few
bytes near the start change — kept by the scrub, decoded at the same cost — so the load client
sends the unchanged rest as it is, without copying it.
"""

import importlib.util
import io
import random
import statistics
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageOps

from imagehost.formats import FORMATS

SMALL_JPEG = "jpeg-50k"  # the upload of the delivery, listing, scaling and profile stages
LARGE_JPEG = "jpeg-4m"  # the memory burst's
SCREEN_PNG, ANIMATED_GIF = "png-1m", "gif-anim"  # issue 15's "2 x" targets (report.py)
PHOTOS = ("coffee", "astronaut", "chelsea")  # scikit-image's, in skimage/data/
INSTALL_PHOTOS = ".venv/bin/pip install -e '.[bench]' (make bench does)"


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
    return _sized(
        lambda alpha: _encode(Image.blend(base, noise, alpha), "JPEG", quality=quality),
        target,
        high=1.0,
        rounds=14,
    )


def _sized(make: Callable[[float], bytes], target: int, high: float, rounds: int) -> bytes:
    """`make(x)` for the x in [0, high] (bisected; the size grows with x) whose bytes come
    closest to `target`, stopping within 2%."""
    low, best = 0.0, b""
    for _ in range(rounds):
        x = (low + high) / 2
        data = make(x)
        if not best or abs(len(data) - target) < abs(len(best) - target):
            best = data
        if abs(len(data) - target) < target * 0.02:
            break
        low, high = (low, x) if len(data) > target else (x, high)
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


def sample_photos() -> Path | None:
    """scikit-image's folder of sample photos, found without importing it (numpy, scipy);
    None when the `bench` extra is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "data"
    return folder if all((folder / f"{name}.png").is_file() for name in PHOTOS) else None


def _sample_photo(name: str) -> Image.Image:
    folder = sample_photos()
    if folder is None:
        raise RuntimeError(f"no scikit-image sample photos: {INSTALL_PHOTOS}")
    with Image.open(folder / f"{name}.png") as im:
        return im.convert("RGB")


def _jpeg_near(img: Image.Image, target: int) -> bytes:
    """`img` as a JPEG at the quality (1-95, bisection: size grows with it) closest to
    `target` bytes."""
    low, high, best = 1, 95, b""
    while low <= high:
        quality = (low + high) // 2
        data = _encode(img, "JPEG", quality=quality)
        if not best or abs(len(data) - target) < abs(len(best) - target):
            best = data
        low, high = (low, quality - 1) if len(data) > target else (quality + 1, high)
    return best


def _png_near(photo: Image.Image, target: int) -> tuple[bytes, tuple[int, int]]:
    """`photo` scaled (aspect kept) until its PNG is ~`target` bytes: the bytes and the size.
    The file grows about with the pixels, so each try rescales by sqrt(target / size)."""
    size = photo.size
    for _ in range(5):
        made = size
        data = _encode(photo.resize(made, Image.Resampling.LANCZOS), "PNG", dpi=(72, 72))
        if abs(len(data) - target) < target * 0.02:
            break
        scale = (target / len(data)) ** 0.5
        size = (round(size[0] * scale), round(size[1] * scale))
    return data, made


def _grained_jpeg(
    photo: Image.Image, size: tuple[int, int], target: int, seed: int, quality: int
) -> bytes:
    """`photo` upscaled to `size` plus seeded zero-mean Gaussian grain, the same on the three
    channels, its sigma tuned (bisection) so the JPEG is ~`target` bytes."""
    base = ImageOps.fit(photo, size, Image.Resampling.BICUBIC)
    uniform = Image.frombytes("L", size, _noise(size, seed, channels=1))
    normal = statistics.NormalDist()

    def grained(sigma: float) -> Image.Image:
        # each uniform byte through the normal's inverse CDF: grain centred on 128 ...
        levels = [
            min(255, max(0, round(128 + sigma * normal.inv_cdf((v + 0.5) / 256))))
            for v in range(256)
        ]
        # ... added to the photo less 128: zero mean, no loss of contrast
        return ImageChops.add(base, uniform.point(levels).convert("RGB"), 1.0, -128)

    return _sized(lambda sigma: _encode(grained(sigma), "JPEG", quality=quality), target, 16.0, 12)


def make_fixtures() -> dict[str, Fixture]:
    """Every upload body by name, in the order of the upload table: each synthetic one
    followed by its real-photo counterpart, then the GIF."""
    small_photo = ImageOps.fit(_sample_photo("coffee"), (640, 480), Image.Resampling.LANCZOS)
    png_photo, png_size = _png_near(_sample_photo("astronaut"), 1_000_000)
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
            "photo-jpeg-50k",
            "coffee.jpg",
            FORMATS["jpeg"].content_type,
            _jpeg_near(small_photo, 50_000),
            "640x480",
            _vary_quantization,
        ),
        Fixture(
            SCREEN_PNG,
            "screen.png",
            FORMATS["png"].content_type,
            _screenshot_png((1280, 800), 1_000_000, 2),
            "1280x800",
            _vary_density,
        ),
        Fixture(
            "photo-png-1m",
            "astronaut.png",
            FORMATS["png"].content_type,
            png_photo,
            f"{png_size[0]}x{png_size[1]}",
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
            "photo-jpeg-4m",
            "chelsea.jpg",
            FORMATS["jpeg"].content_type,
            _grained_jpeg(_sample_photo("chelsea"), (4000, 3000), 4_000_000, 5, 95),
            "4000x3000",
            _vary_quantization,
        ),
        Fixture(
            ANIMATED_GIF,
            "anim.gif",
            FORMATS["gif"].content_type,
            _animated_gif((240, 180), 12, 48, 4),
            "240x180x12",
            _vary_delay,
        ),
    ]
    return {f.name: f for f in fixtures}
