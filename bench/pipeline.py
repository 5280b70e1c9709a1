"""Cost of each image pipeline step (detect, verify, scrub, thumbnail) as ms and share of upload.

    python -m bench.pipeline [--repeats N] [--no-rss]

Inputs are generated deterministically with Pillow (seeded noise, so file sizes are realistic):
a 12 MP JPEG with EXIF (GPS, orientation), a ~4 MB PNG and a 100-frame GIF. Each step is timed
separately through the functions `images.process` itself calls, then the whole `process()` call;
a step's share is its median over the median of the whole call, measured in the same run.
Peak RSS is measured once per input in a fresh process (VmHWM; see _RSS_CHILD).
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import ExifTags, Image

from imagehost import formats, images

STEPS = ("detect", "verify", "scrub", "thumbnail")
LIMITS = dict(allowed_formats=formats.NAMES, max_pixels=50_000_000, max_frames=1000)


def _noise(rng: random.Random, mode: str, size: tuple[int, int]) -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))


def _textured(seed: int, size: tuple[int, int], grain: float, blocks: int) -> Image.Image:
    """Smooth colour blotches plus fine grey grain: compresses like a photo, not like noise."""
    rng = random.Random(seed)
    w, h = size
    coarse = _noise(rng, "RGB", (max(1, w // blocks), max(1, h // blocks)))
    coarse = coarse.resize(size, Image.Resampling.BICUBIC)
    fine = _noise(rng, "L", size).convert("RGB")
    return Image.blend(coarse, fine, grain)


def make_inputs(folder: Path) -> dict[str, Path]:
    """Write the three benchmark inputs into `folder`; same bytes on every run."""
    jpeg = folder / "photo-12mp.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Bench"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 36.0)
    _textured(2026, (4000, 3000), 0.12, 16).save(jpeg, "JPEG", quality=85, exif=exif)

    png = folder / "screenshot-4mb.png"
    _textured(5, (1600, 1000), 0.25, 8).save(png, "PNG")

    gif = folder / "animation-100.gif"
    rng = random.Random(100)
    palette = list(rng.randbytes(768))
    frames = []
    for _ in range(100):
        frame = _noise(rng, "L", (50, 38)).resize((400, 300), Image.Resampling.NEAREST)
        frame = frame.convert("P")
        frame.putpalette(palette)
        frames.append(frame)
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return {"jpeg-12mp": jpeg, "png-4mb": png, "gif-100-frames": gif}


def _timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def measure(source: Path, repeats: int, scratch: Path) -> dict:
    """Median ms of each step and of the whole process() call, for one input file."""
    stored = scratch / "stored"
    samples: dict[str, list[float]] = {step: [] for step in (*STEPS, "process")}
    for _ in range(repeats):
        ms, probe = _timed(lambda: images.detect(source, **LIMITS))
        samples["detect"].append(ms)
        ms, decoded = _timed(lambda: images.verify(source, probe))  # noqa: B023 (called now)
        samples["verify"].append(ms)
        orientation = decoded.orientation
        kind = formats.FORMATS[probe.format].thumbnail_kind
        ms, _ = _timed(lambda: images.encode_thumbnail(decoded, kind))  # noqa: B023
        samples["thumbnail"].append(ms)
        ms, _ = _timed(
            lambda: images.scrub(source, stored, probe.format, orientation, strip=True)  # noqa: B023
        )
        samples["scrub"].append(ms)
        ms, processed = _timed(
            lambda: images.process(source, stored, **LIMITS, strip_metadata=True)
        )
        samples["process"].append(ms)
    medians = {step: round(statistics.median(values), 2) for step, values in samples.items()}
    whole = medians["process"]
    info = processed.info
    return {
        "bytes": source.stat().st_size,
        "pixels": info.width * info.height,
        "frames": info.frames,
        "stored_bytes": stored.stat().st_size,
        # the stored file's own when it is its own thumbnail
        "thumbnail_bytes": len(processed.thumbnail or b"") or stored.stat().st_size,
        "ms": medians,
        "share": {step: round(medians[step] / whole, 3) if whole else 0.0 for step in STEPS},
    }


_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from PIL import Image
from imagehost import formats, images

def rss_kib(field):
    # /proc/self/status is per address space. ru_maxrss is not: exec keeps the parent's peak,
    # and the parent here holds a decoded 12 MP image. getrusage is the fallback off Linux.
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

source, scratch = Path(sys.argv[1]), Path(sys.argv[2])
with Image.open(source) as im:  # load the plugins and codecs before the baseline
    pass
before = rss_kib("VmRSS")
images.process(source, scratch / "rss-stored",
               allowed_formats=formats.NAMES, max_pixels=50_000_000, max_frames=1000,
               strip_metadata=True)
print(json.dumps({"baseline_kib": before, "peak_kib": rss_kib("VmHWM")}))
"""


def peak_rss(source: Path, scratch: Path) -> dict:
    """Peak RSS (MiB) of a fresh process running process() once on `source`, and its baseline
    (the interpreter with Pillow and imagehost imported)."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(source), str(scratch)],
        capture_output=True,
        text=True,
        check=True,
    )
    kib = json.loads(out.stdout)
    return {
        "baseline_mib": round(kib["baseline_kib"] / 1024, 1),
        "peak_mib": round(kib["peak_kib"] / 1024, 1),
        "added_mib": round((kib["peak_kib"] - kib["baseline_kib"]) / 1024, 1),
    }


def run(repeats: int = 5, rss: bool = True) -> dict:
    """Generate the inputs, time every step `repeats` times; returns the results as a dict.

    {"repeats", "inputs": {name: {"bytes", "pixels", "frames", "stored_bytes",
    "thumbnail_bytes", "ms": {step: median ms, "process": median ms}, "share": {step: 0..1},
    "peak_rss": {"baseline_mib", "peak_mib", "added_mib"}}}}
    """
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder)
        results = {}
        for name, source in inputs.items():
            results[name] = measure(source, repeats, folder)
            if rss:
                results[name]["peak_rss"] = peak_rss(source, folder)
    return {"repeats": repeats, "inputs": results}


def table(report: dict) -> str:
    """The results as a fixed-width text table."""
    head = f"{'input':<16}{'size':>9}" + "".join(f"{s:>17}" for s in STEPS)
    head += f"{'process':>10}{'peak RSS':>10}"
    lines = [head, "-" * len(head)]
    for name, r in report["inputs"].items():
        cells = "".join(f"{r['ms'][s]:>9.1f} ms {r['share'][s]:>4.0%}".rjust(17) for s in STEPS)
        rss = f"{r['peak_rss']['peak_mib']:.0f} MiB" if "peak_rss" in r else "-"
        size = f"{r['bytes'] / 1e6:.1f} MB"
        lines.append(f"{name:<16}{size:>9}{cells}{r['ms']['process']:>7.1f} ms{rss:>10}")
    lines.append(f"median of {report['repeats']} runs; share = step / whole process() call")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    args = parser.parse_args(argv)
    report = run(args.repeats, rss=not args.no_rss)
    print(table(report))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
