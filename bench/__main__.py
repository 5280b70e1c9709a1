"""The benchmark, one command: `python -m bench [--quick] [--runs N]` (also `make bench`).

Starts everything itself on 127.0.0.1 (`up` with nginx and its workers, `serve`, a bare nginx
from the same binary), measures issue 6's seven items, prints a table with each target's
PASS/MISS and writes the same numbers, with the machine they came from, to
bench/results/<timestamp>.json. Every measurement is repeated `--runs` times and the median
reported; each one is bounded by a duration or a count, and the whole run by a time budget.
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from PIL import Image

from . import load, stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
UPLOAD_PATH = "/api/upload/"
CONCURRENCY = (1, 8, 32)
CATALOG_SIZES = (100, 1_000, 10_000, 100_000)
SEED_CHUNK_ROWS = 10_000
MB = 1e6  # MB means 10^6 bytes everywhere in this output


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs; --quick shrinks them to fit in a minute."""

    upload_s: float  # one upload cell (image x clients x target)
    ceiling_s: float  # one cell against the discarding nginx
    get_s: float  # one wrk run (listing, delivery)
    delivery_rounds: int
    burst_uploads: int  # 4 MB uploads in the memory burst (32 at a time)
    pipeline_repeats: int
    budget_s: float  # stages that would start after this are skipped, with a note

    @classmethod
    def for_mode(cls, quick: bool, runs: int) -> "Plan":
        if quick:
            return cls(0.5, 0.3, 1, 1, 32, 1, 55)
        return cls(2.0, 1.0, 3, max(3, runs), 64, runs, 570)


# --- the upload bodies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    name: str
    filename: str
    content_type: str
    data: bytes
    pixels: str


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
        return _encode(img, "PNG")

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


def make_fixtures() -> list[Fixture]:
    """The four upload bodies, generated deterministically (the same bytes for one Pillow)."""
    return [
        Fixture(
            "jpeg-50k",
            "photo.jpg",
            "image/jpeg",
            _photo_jpeg((640, 480), 50_000, 1, 85),
            "640x480",
        ),
        Fixture(
            "png-1m",
            "screen.png",
            "image/png",
            _screenshot_png((1280, 800), 1_000_000, 2),
            "1280x800",
        ),
        Fixture(
            "jpeg-4m",
            "camera.jpg",
            "image/jpeg",
            _photo_jpeg((4000, 3000), 4_000_000, 3, 90),
            "4000x3000",
        ),
        Fixture(
            "gif-anim",
            "anim.gif",
            "image/gif",
            _animated_gif((240, 180), 12, 48, 4),
            "240x180x12",
        ),
    ]


# --- helpers ---------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def upload_load(
    port: int, fixture: Fixture, clients: int, path: str = UPLOAD_PATH, **bounds
) -> load.Result:
    request = load.multipart_upload(
        "127.0.0.1", port, path, fixture.data, fixture.filename, fixture.content_type
    )
    expect = 204 if path == "/discard" else 201
    return load.run(
        "127.0.0.1",
        port,
        request,
        payload_bytes=len(fixture.data),
        concurrency=clients,
        expect=expect,
        **bounds,
    )


def summarize_runs(summaries: list[dict]) -> dict:
    """Medians of the rates and latencies; errors summed over the runs."""
    out = {
        key: median([s.get(key) for s in summaries])
        for key in (
            "requests_per_s",
            "mb_per_s",
            "p50_ms",
            "p99_ms",
            "client_cpu_share",
            "server_cpu_ms",
            "server_cores",
        )
    }
    for key in ("ok", "bad_status", "dropped"):
        out[key] = sum(s[key] for s in summaries)
    out["runs"] = summaries
    return out


def upload_one(url: str, fixture: Fixture) -> dict:
    resp = requests.post(
        f"{url}{UPLOAD_PATH}",
        files={"file": (fixture.filename, fixture.data, fixture.content_type)},
        timeout=60,
    )
    if resp.status_code != 201:
        raise RuntimeError(f"upload failed: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = "not installed"
    if stack.have_wrk():
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = (done.stdout + done.stderr).splitlines()[0].strip()
    commit = subprocess.run(
        ["git", "-C", str(stack.ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    # Others may be editing the checkout: what was measured is the working tree, so say how
    # it differs from the commit.
    changed = subprocess.run(
        ["git", "-C", str(stack.ROOT), "status", "--porcelain", "--untracked-files=no", "src"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.split("\n")
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "nginx": stack.nginx_version(),
        "wrk": wrk_version,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "git_commit": commit,
        "uncommitted_in_src": [line[3:] for line in changed if line.strip()],
    }


class Bench:
    """One benchmark run: its plan, folders, started processes and collected results."""

    def __init__(self, plan: Plan, runs: int, work: Path, cleanup: contextlib.ExitStack):
        self.plan = plan
        self.runs = runs
        self.work = work
        self.cleanup = cleanup
        self.started = time.monotonic()
        self.results: dict = {}
        self.notes: list[str] = []
        self.workers = len(os.sched_getaffinity(0))
        self._main: tuple[stack.Running, stack.BareNginx] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stage(self, key: str, title: str, fn: Callable[[], dict]) -> None:
        if self.elapsed() > self.plan.budget_s:
            self.notes.append(f"{title}: skipped, the time budget was used up")
            return
        t0 = time.monotonic()
        print(f"[{self.elapsed():5.0f}s] {title} …", file=sys.stderr, flush=True)
        try:
            self.results[key] = fn()
        except Exception as exc:  # one broken stage must not lose the others' numbers
            self.notes.append(f"{title}: failed: {type(exc).__name__}: {exc}")
            print(f"  failed: {exc}", file=sys.stderr, flush=True)
            return
        self.results[key]["stage_seconds"] = round(time.monotonic() - t0, 1)

    def up(self, name: str, workers: int) -> stack.Running:
        running = stack.start_up(self.work / name, workers)
        self.cleanup.callback(running.stop)
        return running

    # --- 1 and 4: uploads against up, serve and the discarding nginx ---------------------------

    def main_stack(self) -> tuple[stack.Running, stack.BareNginx]:
        """The `up` measured for uploads and delivery, and the bare nginx over its images."""
        if self._main is None:
            up = self.up("up", self.workers)
            bare = stack.start_bare_nginx(self.work / "bare", up.images_dir)
            self.cleanup.callback(bare.stop)
            self._main = up, bare
        return self._main

    def uploads(self, fixtures: list[Fixture]) -> dict:
        up, bare = self.main_stack()
        serve = stack.start_serve(self.work / "serve")
        self.cleanup.callback(serve.stop)
        targets = {
            "up": (up.proc.pid, stack.port_of(up), UPLOAD_PATH, self.plan.upload_s),
            "serve": (serve.proc.pid, stack.port_of(serve), UPLOAD_PATH, self.plan.upload_s),
            "discard": (bare.proc.pid, bare.port, "/discard", self.plan.ceiling_s),
        }
        for _, port, path, _ in targets.values():  # warm-up: imports, connections, caches
            upload_load(port, fixtures[0], 8, path, duration_s=0.3)
        trees = {target: stack.process_tree(pid) for target, (pid, *_) in targets.items()}
        raw: dict[tuple, list[dict]] = {}
        for _ in range(self.runs):
            for fixture in fixtures:
                for clients in CONCURRENCY:
                    for target, (_, port, path, seconds) in targets.items():
                        cpu0 = stack.tree_cpu_seconds(trees[target])
                        result = upload_load(port, fixture, clients, path, duration_s=seconds)
                        summary = result.summary()
                        # everything the server side burnt (nginx, workers), per answered request
                        cpu = stack.tree_cpu_seconds(trees[target]) - cpu0
                        answered = result.ok + result.bad_status
                        summary["server_cpu_ms"] = cpu * 1000 / answered if answered else None
                        raw.setdefault((fixture.name, clients, target), []).append(summary)
                        stack.clear_stored(up.images_dir)
                        stack.clear_stored(serve.images_dir)
        cells = []
        for (name, clients, target), summaries in raw.items():
            cells.append({"image": name, "clients": clients, "target": target})
            cells[-1].update(summarize_runs(summaries))
        return {"cells": cells}

    # --- 3: image delivery through up's nginx vs the bare nginx --------------------------------

    def delivery(self, fixture: Fixture) -> dict:
        up, bare = self.main_stack()
        stored = upload_one(up.url, fixture)["filename"]
        urls = {
            "full_stack": f"{up.url}/images/{stored}",
            "bare_nginx": f"{bare.url}/plain/{stored}",
        }
        for url in urls.values():
            if requests.get(url, timeout=10).content != (up.images_dir / stored).read_bytes():
                raise RuntimeError(f"{url} does not serve the stored file")
        rounds: list[dict] = []
        for _ in range(self.plan.delivery_rounds):  # alternating, so drift hits both alike
            one = {}
            for name, url in urls.items():
                one[name] = stack.wrk(url, connections=8, duration_s=self.plan.get_s)
            one["ratio"] = one["full_stack"]["requests_per_s"] / one["bare_nginx"]["requests_per_s"]
            rounds.append(one)
        return {
            "file": stored,
            "file_bytes": (up.images_dir / stored).stat().st_size,
            "clients": 8,
            "full_stack_rps": median([r["full_stack"]["requests_per_s"] for r in rounds]),
            "bare_nginx_rps": median([r["bare_nginx"]["requests_per_s"] for r in rounds]),
            "full_stack_p50_ms": median([r["full_stack"]["p50_ms"] for r in rounds]),
            "bare_nginx_p50_ms": median([r["bare_nginx"]["p50_ms"] for r in rounds]),
            "ratio": median([r["ratio"] for r in rounds]),
            "rounds": rounds,
        }

    # --- 2: listing with 100 .. 100,000 images -------------------------------------------------

    def listing(self, fixture: Fixture) -> dict:
        from imagehost.catalog import Catalog, ImageRow

        up = self.up("listing", self.workers)
        real = upload_one(up.url, fixture)
        catalog = Catalog(up.data_dir / "catalog.sqlite3")
        self.cleanup.callback(catalog.close)
        template = asdict(catalog.get(real["filename"]))
        total, sizes = 1, []
        for size in CATALOG_SIZES:
            t0 = time.monotonic()
            while total < size:
                batch = min(SEED_CHUNK_ROWS, size - total)
                catalog.add_many(
                    ImageRow(
                        **{
                            **template,
                            "seq": 0,
                            "id": f"bench{n:011d}",
                            "filename": f"bench{n:011d}.jpg",
                        }
                    )
                    for n in range(total, total + batch)
                )
                total += batch
            seeded_s = time.monotonic() - t0
            url = f"{up.url}{UPLOAD_PATH}"
            head = requests.get(url, timeout=10)
            if head.status_code != 200 or head.headers.get("X-Total-Count") != str(size):
                raise RuntimeError(f"listing at {size}: {head.status_code} {head.headers}")
            runs = [
                stack.wrk(url, connections=8, duration_s=self.plan.get_s) for _ in range(self.runs)
            ]
            sizes.append(
                {
                    "images": size,
                    "seed_seconds": round(seeded_s, 2),
                    "page_bytes": len(head.content),
                    "requests_per_s": median([r["requests_per_s"] for r in runs]),
                    "p50_ms": median([r["p50_ms"] for r in runs]),
                    "p99_ms": median([r["p99_ms"] for r in runs]),
                    "errors": sum(r["non_2xx_3xx"] + r["socket_errors"] for r in runs),
                    "runs": runs,
                }
            )
        return {
            "seeding": "rows inserted with Catalog.add_many (the catalog's bulk path), "
            f"{SEED_CHUNK_ROWS} per transaction, each a copy of one real upload's metadata "
            "under a unique synthetic name (the listing reads no image files)",
            "clients": 8,
            "page": "first page, default limit",
            "sizes": sizes,
        }

    # --- 5: worker memory during a burst of 4 MB uploads ---------------------------------------

    def memory(self, fixture: Fixture) -> dict:
        runs = []
        for n in range(self.runs):
            up = stack.start_up(self.work / f"memory{n}", self.workers)
            try:
                pids = stack.worker_pids(up)
                if len(pids) != self.workers:
                    raise RuntimeError(f"found {len(pids)} worker processes, not {self.workers}")
                time.sleep(0.5)
                idle = {pid: stack.memory_bytes(pid)["VmRSS"] for pid in pids}
                burst = upload_load(
                    stack.port_of(up), fixture, 32, count=self.plan.burst_uploads, timeout_s=120
                )
                peak = {pid: stack.memory_bytes(pid)["VmHWM"] for pid in pids}
                if stack.worker_pids(up) != pids:
                    self.notes.append("memory: a worker was restarted during the burst")
            finally:
                up.stop()
            runs.append(
                {
                    "idle_rss_mb": [round(v / MB, 1) for v in idle.values()],
                    "peak_rss_mb": [round(v / MB, 1) for v in peak.values()],
                    "burst": burst.summary(),
                }
            )
        return {
            "workers": self.workers,
            "burst": f"{self.plan.burst_uploads} uploads of {fixture.name}, 32 at a time",
            "idle_rss_mb": median([max(r["idle_rss_mb"]) for r in runs]),
            "peak_rss_mb": median([max(r["peak_rss_mb"]) for r in runs]),
            "burst_errors": sum(r["burst"]["bad_status"] + r["burst"]["dropped"] for r in runs),
            "runs": runs,
        }

    # --- 6: one worker vs two ------------------------------------------------------------------

    def scaling(self, fixture: Fixture) -> dict:
        stacks = {n: self.up(f"scale{n}", n) for n in (1, 2)}
        for running in stacks.values():
            upload_load(stack.port_of(running), fixture, 8, duration_s=0.3)
        trees = {n: stack.process_tree(running.proc.pid) for n, running in stacks.items()}
        raw: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(self.runs):
            for n, running in stacks.items():
                cpu0 = stack.tree_cpu_seconds(trees[n])
                result = upload_load(
                    stack.port_of(running), fixture, 8, duration_s=self.plan.upload_s
                )
                summary = result.summary()
                # cores the whole stack kept busy: with one worker already near 2, a second
                # worker has nothing left to scale into
                cpu = stack.tree_cpu_seconds(trees[n]) - cpu0
                summary["server_cores"] = round(cpu / result.seconds, 2)
                summary["server_cpu_ms"] = cpu * 1000 / result.ok if result.ok else None
                raw[n].append(summary)
                stack.clear_stored(running.images_dir)
        one, two = summarize_runs(raw[1]), summarize_runs(raw[2])
        for running in stacks.values():
            running.stop()
        return {
            "image": fixture.name,
            "clients": 8,
            "workers_1": one,
            "workers_2": two,
            "ratio": two["requests_per_s"] / one["requests_per_s"]
            if one["requests_per_s"]
            else None,
        }

    # --- 7: the pipeline's steps ---------------------------------------------------------------

    def pipeline(self) -> dict:
        try:
            from . import pipeline
        except ImportError as exc:
            return {"skipped": f"bench/pipeline.py is not there yet ({exc})"}
        return {"steps": pipeline.run(self.plan.pipeline_repeats)}


# --- where a worker's time goes ----------------------------------------------------------------


def profile_uploads(work: Path, fixture: Fixture, seconds: float, clients: int = 8) -> dict:
    """py-spy samples of the one worker of `up` while `clients` upload `fixture` for `seconds`.

    Returns the functions with the largest shares of the samples: inclusive (the function or
    anything it calls is running) and self (the innermost frame). Idle threads are not sampled.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    up = stack.start_up(work / "profile", 1)
    try:
        (pid,) = stack.worker_pids(up)
        upload_load(stack.port_of(up), fixture, clients, duration_s=0.5)  # warm-up
        raw = work / "profile.txt"
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
            + ["--duration", str(round(seconds) + 1), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        cpu0 = stack.cpu_seconds(pid)
        result = upload_load(stack.port_of(up), fixture, clients, duration_s=seconds)
        worker_cpu_s = stack.cpu_seconds(pid) - cpu0
        _, err = spy.communicate(timeout=seconds + 30)
        if spy.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        stacks = []
        for line in raw.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks.append(([_frame_name(f) for f in frames.split(";")], int(count)))
    finally:
        up.stop()
    # py-spy's idle detection misses threads blocked in recv here, so waiting leaves are
    # dropped by name: the shares below are of the samples where the worker was doing work.
    busy = [(frames, count) for frames, count in stacks if frames[-1] not in WAITING_FRAMES]
    all_samples = sum(count for _, count in stacks) or 1
    total = sum(count for _, count in busy) or 1
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    for frames, count in busy:
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
        return [(name, round(count / total, 3)) for name, count in ranked]

    return {
        "fixture": fixture.name,
        "clients": clients,
        "seconds": seconds,
        "samples": all_samples,
        "busy_share": round(total / all_samples, 3),
        "load": result.summary(),
        "worker_cpu_ms_per_upload": round(worker_cpu_s * 1000 / result.ok, 2)
        if result.ok
        else None,
        "worker_cpu_share": round(worker_cpu_s / result.seconds, 2),
        "inclusive": top(inclusive),
        "self": top(own),
    }


WAITING_FRAMES = {
    "socket.py:SocketIO.readinto",  # waiting for the next request or the rest of a body
    "selectors.py:_PollLikeSelector.select",  # the accept loop
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "server.py:Deadlines.reap_forever",  # asleep between sweeps
}


def _frame_name(frame: str) -> str:
    """'process (imagehost/images.py:123)' -> 'images.py:process' (lines merged)."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{file}:{name}" if file else name


# --- targets and the table -------------------------------------------------------------------


def _cell(results: dict, image: str, clients: int, target: str) -> dict | None:
    for cell in results.get("uploads", {}).get("cells", []):
        if (cell["image"], cell["clients"], cell["target"]) == (image, clients, target):
            return cell
    return None


def targets(results: dict) -> list[dict]:
    """Issue 6's targets: what was measured, the limit, PASS/MISS (n/a when not measured)."""
    rows = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        rows.append({"target": name, "measured": measured, "verdict": _verdict(ok)})

    d = results.get("delivery")
    add(
        "image GET full stack >= 0.95 x bare nginx",
        f"{d['ratio']:.2f} x ({d['full_stack_rps']:.0f} vs {d['bare_nginx_rps']:.0f} req/s)"
        if d
        else "-",
        d and d["ratio"] >= 0.95,
    )
    listing = {s["images"]: s for s in results.get("listing", {}).get("sizes", [])}
    if 100 in listing and 100_000 in listing:
        ratio = listing[100_000]["p50_ms"] / listing[100]["p50_ms"]
        add(
            "list p50 at 100k <= 1.5 x at 100",
            f"{ratio:.2f} x ({listing[100_000]['p50_ms']:.2f} vs {listing[100]['p50_ms']:.2f} ms)",
            ratio <= 1.5,
        )
    else:
        add("list p50 at 100k <= 1.5 x at 100", "-", None)
    ten = listing.get(10_000)
    add(
        "list at 10k >= 200 req/s (8 clients)",
        f"{ten['requests_per_s']:.0f} req/s, {ten['errors']} errors" if ten else "-",
        ten and ten["requests_per_s"] >= 200 and ten["errors"] == 0,
    )
    c = _cell(results, "jpeg-50k", 8, "up")
    add(
        "50 KB uploads at 8 clients >= 300 req/s, 0 errors",
        f"{c['requests_per_s']:.0f} req/s, {c['bad_status']} non-201, {c['dropped']} dropped"
        if c
        else "-",
        c and c["requests_per_s"] >= 300 and c["bad_status"] + c["dropped"] == 0,
    )
    c = _cell(results, "jpeg-50k", 32, "up")
    if c and c["p50_ms"]:
        spread = c["p99_ms"] / c["p50_ms"]
        add(
            "50 KB at 32 clients: no errors/drops, p99 <= 4 x p50",
            f"{c['bad_status']} non-201, {c['dropped']} dropped, p99/p50 {spread:.1f}"
            f" ({c['p99_ms']:.0f}/{c['p50_ms']:.0f} ms)",
            c["bad_status"] + c["dropped"] == 0 and spread <= 4,
        )
    else:
        add("50 KB at 32 clients: no errors/drops, p99 <= 4 x p50", "-", None)
    c = _cell(results, "jpeg-4m", 8, "up")
    add(
        "4 MB uploads at 8 clients >= 150 MB/s",
        f"{c['mb_per_s']:.0f} MB/s ({c['requests_per_s']:.1f} req/s)" if c else "-",
        c and c["mb_per_s"] >= 150,
    )
    m = results.get("memory")
    add(
        "peak worker RSS <= 80 MB (4 MB burst)",
        f"{m['peak_rss_mb']:.0f} MB (idle {m['idle_rss_mb']:.0f} MB)" if m else "-",
        m and m["peak_rss_mb"] <= 80,
    )
    s = results.get("scaling")
    add(
        "2 workers >= 1.6 x 1 worker (50 KB, 8 clients)",
        f"{s['ratio']:.2f} x ({s['workers_2']['requests_per_s']:.0f} vs "
        f"{s['workers_1']['requests_per_s']:.0f} req/s)"
        if s and s["ratio"]
        else "-",
        s and s["ratio"] is not None and s["ratio"] >= 1.6,
    )
    return rows


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(report: dict) -> str:
    r = report["results"]
    m = report["machine"]
    lines = [
        f"imagehost benchmark, {report['date']}: {report['command']} "
        f"(runs={report['runs']}, {report['seconds']:.0f} s)",
        f"machine: {m['nproc']} x {m['cpu_model']}, Linux {m['kernel']}, Python {m['python']}, "
        f"Pillow {m['pillow']}, nginx {m['nginx']}, commit {m['git_commit']}"
        + (
            f" + uncommitted {', '.join(m['uncommitted_in_src'])}"
            if m["uncommitted_in_src"]
            else ""
        ),
        f"load average: {report['load_before']:.2f} before, {report['load_after']:.2f} after",
        "",
    ]
    if "uploads" in r:
        lines += [
            "1+4. Uploads (medians; errors summed over runs; MB = 10^6 bytes of image; "
            "discard = nginx reading and dropping the same body; srv cpu = CPU ms of all "
            "server processes per request; cli cpu = the load client's share of a core)",
            f"{'image':<9} {'bytes':>9} {'cl':>3} {'target':<8} {'req/s':>7} {'MB/s':>7} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'non201':>6} {'drop':>5} {'vs ceil':>7} "
            f"{'srv cpu':>7} {'cli cpu':>7}",
        ]
        sizes = {f["name"]: f["bytes"] for f in report["fixtures"]}
        for cell in r["uploads"]["cells"]:
            ceiling = _cell(r, cell["image"], cell["clients"], "discard")
            vs = ""
            if cell["target"] != "discard" and ceiling and ceiling["requests_per_s"]:
                vs = f"{cell['requests_per_s'] / ceiling['requests_per_s']:.3f}"
            lines.append(
                f"{cell['image']:<9} {sizes[cell['image']]:>9} {cell['clients']:>3} "
                f"{cell['target']:<8} {_fmt(cell['requests_per_s']):>7} "
                f"{_fmt(cell['mb_per_s']):>7} {_fmt(cell['p50_ms']):>8} "
                f"{_fmt(cell['p99_ms']):>8} {cell['bad_status']:>6} {cell['dropped']:>5} "
                f"{vs:>7} {_fmt(cell.get('server_cpu_ms')):>7} "
                f"{_fmt(cell['client_cpu_share'], '.0%'):>7}"
            )
        lines.append("")
    if "listing" in r:
        lines += [
            "2. Listing, first page, 8 clients through nginx (wrk); catalog seeded with "
            "Catalog.add_many",
            f"{'images':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'seed s':>7}",
        ]
        for s in r["listing"]["sizes"]:
            lines.append(
                f"{s['images']:>8} {_fmt(s['requests_per_s']):>8} {_fmt(s['p50_ms'], '.2f'):>8} "
                f"{_fmt(s['p99_ms'], '.2f'):>8} {s['errors']:>6} {s['seed_seconds']:>7}"
            )
        lines.append("")
    if "delivery" in r:
        d = r["delivery"]
        lines += [
            f"3. Image delivery, {d['file_bytes']} byte JPEG, 8 clients (wrk), "
            f"{len(d['rounds'])} alternating rounds",
            f"   full stack /images/: {d['full_stack_rps']:.0f} req/s, p50 "
            f"{d['full_stack_p50_ms']:.2f} ms; bare nginx: {d['bare_nginx_rps']:.0f} req/s, "
            f"p50 {d['bare_nginx_p50_ms']:.2f} ms",
            f"   ratio per round: {', '.join(format(x['ratio'], '.3f') for x in d['rounds'])}; "
            f"median {d['ratio']:.3f}",
            "",
        ]
    if "memory" in r:
        mem = r["memory"]
        lines += [
            f"5. Worker memory ({mem['workers']} workers; {mem['burst']}): idle RSS "
            f"{mem['idle_rss_mb']:.1f} MB, peak RSS {mem['peak_rss_mb']:.1f} MB "
            f"(per run: {[run['peak_rss_mb'] for run in mem['runs']]}), "
            f"burst errors {mem['burst_errors']}",
            "",
        ]
    if "scaling" in r:
        s = r["scaling"]
        lines += [
            f"6. Scaling ({s['image']}, 8 clients): 1 worker "
            f"{s['workers_1']['requests_per_s']:.0f} req/s using "
            f"{_fmt(s['workers_1'].get('server_cores'), '.2f')} cores, 2 workers "
            f"{s['workers_2']['requests_per_s']:.0f} req/s using "
            f"{_fmt(s['workers_2'].get('server_cores'), '.2f')} cores (nginx + workers); "
            f"ratio {_fmt(s['ratio'], '.2f')}",
            "",
        ]
    if "pipeline" in r:
        p = r["pipeline"]
        lines.append("7. Pipeline steps (bench/pipeline.py)")
        if "skipped" in p:
            lines.append(f"   skipped: {p['skipped']}")
        else:
            lines += _pipeline_lines(p["steps"])
        lines.append("")
    lines += ["Targets", f"{'target':<52} {'verdict':<7} measured"]
    for row in report["targets"]:
        lines.append(f"{row['target']:<52} {row['verdict']:<7} {row['measured']}")
    if report["notes"]:
        lines += ["", "Notes"] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines)


def _pipeline_lines(steps: dict) -> list[str]:
    """bench/pipeline.py's numbers, one row per input; any other shape is printed flat."""
    try:
        header = (
            f"   {'input':<16} {'bytes':>9} {'detect':>7} {'verify':>7} {'scrub':>7} "
            f"{'thumb':>7} {'process':>8} {'peak MiB':>9}   (ms, median of "
            f"{steps.get('repeats', '?')})"
        )
        rows = [header]
        for name, one in steps["inputs"].items():
            ms = one["ms"]
            rows.append(
                f"   {name:<16} {one['bytes']:>9} {ms['detect']:>7.1f} {ms['verify']:>7.1f} "
                f"{ms['scrub']:>7.1f} {ms['thumbnail']:>7.1f} {ms['process']:>8.1f} "
                f"{_fmt(one.get('peak_rss', {}).get('peak_mib')):>9}"
            )
        return rows
    except (KeyError, TypeError, ValueError, AttributeError):
        return [f"   {line}" for line in _flatten(steps)]


def _flatten(value, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}{key}." if isinstance(item, dict) else f"{prefix}{key}")
        return out
    if isinstance(value, float):
        value = f"{value:.4g}"
    return [f"{prefix}: {value}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of everything, < 1 minute")
    parser.add_argument("--runs", type=int, help="repeats of each measurement (default 3, quick 1)")
    parser.add_argument(
        "--only", help="comma-separated stages: uploads,delivery,listing,memory,scaling,pipeline"
    )
    parser.add_argument(
        "--profile",
        type=float,
        metavar="SECONDS",
        help="instead: py-spy one worker during 50 KB uploads (8 clients) and print where its "
        "time goes",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    runs = args.runs or (1 if args.quick else 3)
    if not 1 <= runs <= 9:
        parser.error("--runs must be between 1 and 9")
    plan = Plan.for_mode(args.quick, runs)
    if stack.nginx_version() == "not installed" or not stack.have_wrk():
        print("bench: needs nginx and wrk (apt-get install nginx wrk)", file=sys.stderr)
        return 2
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    date = datetime.datetime.now(datetime.UTC)
    load_before = load_average()
    if load_before > 1:
        print(f"bench: load average is {load_before:.2f}; numbers will be noisy", file=sys.stderr)
    host = machine()  # before the stages: the checkout may change while they run
    work = Path(tempfile.mkdtemp(prefix="imagehost-bench-"))
    if args.profile:
        try:
            found = profile_uploads(work, make_fixtures()[0], min(args.profile, 60))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"py-spy, 1 worker, {found['fixture']} uploads, {found['clients']} clients, "
            f"{found['seconds']} s: {found['load']['requests_per_s']} req/s, p50 "
            f"{found['load']['p50_ms']} ms; worker CPU {found['worker_cpu_ms_per_upload']} ms "
            f"per upload ({found['worker_cpu_share']:.0%} of a core); {found['samples']} "
            f"samples, {found['busy_share']:.0%} not waiting"
        )
        for kind in ("inclusive", "self"):
            print(f"\n{kind} share of the non-waiting samples")
            for name, share in found[kind]:
                print(f"  {share:6.1%}  {name}")
        return 0
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        bench = Bench(plan, runs, work, cleanup)
        fixtures = make_fixtures()
        by_name = {f.name: f for f in fixtures}
        stages = {
            "uploads": ("1+4. uploads and the discarding nginx", lambda: bench.uploads(fixtures)),
            "delivery": ("3. image delivery", lambda: bench.delivery(by_name["jpeg-50k"])),
            "listing": ("2. listing", lambda: bench.listing(by_name["jpeg-50k"])),
            "memory": ("5. memory", lambda: bench.memory(by_name["jpeg-4m"])),
            "scaling": ("6. scaling", lambda: bench.scaling(by_name["jpeg-50k"])),
            "pipeline": ("7. pipeline steps", bench.pipeline),
        }
        for key, (title, fn) in stages.items():
            if only is None or key in only:
                bench.stage(key, title, fn)
        seconds = bench.elapsed()
    report = {
        "date": date.isoformat(timespec="seconds"),
        "command": command,
        "runs": runs,
        "quick": args.quick,
        "plan": asdict(plan),
        "seconds": round(seconds, 1),
        "machine": host,
        "load_before": load_before,
        "load_after": load_average(),
        "fixtures": [
            {"name": f.name, "bytes": len(f.data), "pixels": f.pixels, "type": f.content_type}
            for f in fixtures
        ],
        "results": bench.results,
        "notes": bench.notes,
    }
    report["targets"] = targets(bench.results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{date.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwritten: {out.relative_to(stack.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
