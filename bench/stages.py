"""The measurements (issue 6's items 1-7 and the later ones in bench/README.md), one method of
Bench each, run in STAGES order.

Each is bounded by a duration or a count, repeated `--runs` times with the median kept, and
starts what it measures itself (`up`, `serve`, the bare nginx) on free ports under one
temporary folder; a stage that fails leaves a note and the others' numbers.
"""

import contextlib
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from imagehost import config, images
from imagehost.catalog import ImageRow, open_catalog
from imagehost.store import image_id_of, open_store
from tests.support import postgres, seaweed
from tests.support.http import UPLOAD_PATH, uploaded
from tests.support.stack import Running, start_stack, stop_stack, worker_pids

from . import load, stack
from . import pipeline as image_pipeline
from .fixtures import LARGE_JPEG, SMALL_JPEG, Fixture

CONCURRENCY = (1, 8, 32)  # clients of the upload table
UPLOAD_TARGETS = ("up", "serve", "discard")  # the columns of the upload table (--targets)
CLIENTS = 8  # of the GET, listing and scaling loads
BURST_CLIENTS = 32  # concurrent 4 MB uploads of the memory burst
CATALOG_SIZES = (100, 1_000, 10_000, 100_000)
SCALEOUT_CATALOG_SIZE = 10_000  # rows in each catalog for the list comparison
STORED_SIZES = (0, 10_000, 100_000)  # images already stored in the stored stage's stores
SEED_CHUNK_ROWS = 10_000
SEED_PREFIX, SEED_DIGITS = "bench", 11  # seeded images are bench00000000001.jpg, ...
LINKS_PER_FILE = 60_000  # ext4 refuses a 65,001st link to one file (EMLINK)
SEEDED_NAME = re.compile(rf"{SEED_PREFIX}\d{{{SEED_DIGITS}}}\.")
# CPU per upload of each pipeline step, as the server counts it (stack.step_cpu_seconds); the
# "process" step (decode, verify, thumbnail, scrub) is what the table calls the pipeline.
STEP_KEYS = {
    "receive": "receive_cpu_ms",
    "process": "pipeline_cpu_ms",
    "store": "store_cpu_ms",
    "catalog": "catalog_cpu_ms",
}
MB = 1e6  # MB means 10^6 bytes everywhere in this output


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs; --quick shrinks them to fit in two minutes."""

    upload_s: float  # one upload cell (image x clients x target)
    ceiling_s: float  # one cell against the discarding nginx
    get_s: float  # one wrk run (listing, delivery)
    delivery_rounds: int
    burst_uploads: int  # 4 MB uploads in the memory burst (BURST_CLIENTS at a time)
    pipeline_repeats: int
    decode_repeats: int  # of each fixture's decode floor
    budget_s: float  # stages that would start after this are skipped, with a note

    @classmethod
    def for_mode(cls, quick: bool, runs: int) -> "Plan":
        if quick:
            # ~100 s: issue 15's three photo fixtures and the stored stage took it past a minute
            return cls(0.5, 0.3, 1, 1, 32, 1, 3, 110)
        # ~10 min at 3 runs: uploads ~6 (7 fixtures x 3 client counts x 5 s of targets, plus
        # each cell's tail), stored ~40 s (seeding 110,000 images), the rest ~3.5; 570 s before
        # issue 15 added the photo fixtures and the stored stage
        return cls(2.0, 1.0, 3, max(3, runs), 64, runs, 9, 690)


def median(values: list[float | None]) -> float | None:
    """The median of the values measured (None: not measured), None if there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def upload_load(
    port: int, fixture: Fixture, clients: int, path: str = UPLOAD_PATH, **bounds
) -> load.Result:
    """`clients` keep-alive connections uploading `fixture` to 127.0.0.1:port, within `bounds`
    (duration_s, count, timeout_s); /discard answers 204, the API 201."""
    whole = load.multipart_upload(
        "127.0.0.1", port, path, fixture.data, fixture.filename, fixture.content_type
    )
    # each upload distinct: the same bytes again would be stored as links (deduplication)
    request = load.varied_upload(whole, fixture.data, fixture.head, fixture.variant)
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
    """Medians of the rates, latencies and CPU per upload; errors summed over the runs."""
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
            "nginx_cpu_ms",
            "worker_cpu_ms",
            *STEP_KEYS.values(),
            "rest_cpu_ms",
        )
    }
    for key in ("ok", "bad_status", "dropped"):
        out[key] = sum(s[key] for s in summaries)
    out["runs"] = summaries
    return out


def per_upload_ms(seconds: float | None, uploads: int) -> float | None:
    return seconds * 1000 / uploads if seconds is not None and uploads else None


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


@dataclass(frozen=True)
class UploadTarget:
    """Where one column of the upload table sends its uploads, and its processes by role, so
    that the CPU they use splits into nginx's and the Python workers' (whose pipeline steps the
    server counts itself, read from `running`); the rest of `tree` is up's supervisor."""

    port: int
    path: str
    seconds: float
    tree: list[int]
    workers: list[int]
    nginx: list[int]
    running: Running | None  # None for the bare nginx: no steps to read, no files to clear

    @classmethod
    def of_stack(cls, running: Running, seconds: float) -> "UploadTarget":
        tree = stack.process_tree(running.proc.pid)
        workers = sorted(worker_pids(running).values()) if running.command == "up" else tree
        nginx = [pid for pid in tree if pid not in workers and pid != running.proc.pid]
        return cls(running.port, UPLOAD_PATH, seconds, tree, workers, nginx, running)

    @classmethod
    def of_bare(cls, bare: stack.BareNginx, seconds: float) -> "UploadTarget":
        tree = stack.process_tree(bare.proc.pid)
        return cls(bare.port, "/discard", seconds, tree, [], tree, None)

    def _cpu(self) -> dict[str, float]:
        return {
            "server": stack.tree_cpu_seconds(self.tree),
            "nginx": stack.tree_cpu_seconds(self.nginx),
            "worker": stack.tree_cpu_seconds(self.workers),
        }

    def measure(self, fixture: Fixture, clients: int, keep: re.Pattern | None = None) -> dict:
        """One cell: `clients` uploading `fixture` for `seconds`; its load summary with the
        CPU per upload of the whole server, of nginx, of the workers and of each pipeline step
        (None where the target has no such part, or the server counts no steps). The stored
        files are removed afterwards, but for those `keep` matches."""
        steps0 = stack.step_cpu_seconds(self.running) if self.running else None
        cpu0 = self._cpu()
        result = upload_load(self.port, fixture, clients, self.path, duration_s=self.seconds)
        cpu = {role: seconds - cpu0[role] for role, seconds in self._cpu().items()}
        steps1 = stack.step_cpu_seconds(self.running) if self.running else None
        summary = result.summary()
        # everything the server side burnt (nginx, workers), per answered request
        answered = result.ok + result.bad_status
        summary["server_cpu_ms"] = cpu["server"] * 1000 / answered if answered else None
        summary["nginx_cpu_ms"] = per_upload_ms(cpu["nginx"] if self.nginx else None, result.ok)
        worker = cpu["worker"] if self.workers else None
        summary["worker_cpu_ms"] = per_upload_ms(worker, result.ok)
        spent = {}
        if steps0 is not None and steps1 is not None:
            spent = {step: steps1.get(step, 0.0) - steps0.get(step, 0.0) for step in STEP_KEYS}
        for step, key in STEP_KEYS.items():
            summary[key] = per_upload_ms(spent.get(step), result.ok)
        # what the workers spend outside the steps: HTTP parsing, multipart, logging, threads
        rest = worker - sum(spent.values()) if spent and worker is not None else None
        summary["rest_cpu_ms"] = per_upload_ms(rest, result.ok)
        if self.running:
            stack.clear_stored(self.running.images_dir, keep)
        return summary


def decode_floor(fixture: Fixture, repeats: int) -> dict:
    """Thread CPU ms of the pipeline's decode alone for `fixture` (images.detect, then
    images.verify, as images.process calls them), in this process: the median of `repeats`
    after one untimed call (imports, caches). No worker can take that upload for less."""

    def decode() -> None:
        images.verify(fixture.data, images.detect(fixture.data, **image_pipeline.LIMITS))

    decode()
    samples = []
    for _ in range(repeats):
        start = time.thread_time()
        decode()
        samples.append((time.thread_time() - start) * 1000)
    return {"median_ms": round(median(samples), 3), "samples_ms": [round(v, 3) for v in samples]}


class Bench:
    """One benchmark run: its plan, folders, started processes and collected results."""

    def __init__(
        self,
        plan: Plan,
        runs: int,
        fixtures: dict[str, Fixture],
        work: Path,
        cleanup: contextlib.ExitStack,
        targets: tuple[str, ...] = UPLOAD_TARGETS,
    ):
        self.plan = plan
        self.runs = runs
        self.fixtures = fixtures
        self.targets = targets  # the upload stage's, in UPLOAD_TARGETS order
        self.work = work
        self.cleanup = cleanup
        self.started = time.monotonic()
        self.results: dict = {}
        self.notes: list[str] = []
        self.workers = len(os.sched_getaffinity(0))
        self._main: tuple[Running, stack.BareNginx] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self, only: set[str] | None = None) -> None:
        """Every stage (or those in `only`) in STAGES order, within the plan's time budget."""
        for key in STAGES:
            if only is None or key in only:
                self.stage(key)

    def stage(self, key: str) -> None:
        title, measure = STAGES[key]
        if self.elapsed() > self.plan.budget_s:
            self.notes.append(f"{title}: skipped, the time budget was used up")
            return
        t0 = time.monotonic()
        print(f"[{self.elapsed():5.0f}s] {title} …", file=sys.stderr, flush=True)
        try:
            self.results[key] = measure(self)
        except Exception as exc:  # one broken stage must not lose the others' numbers
            self.notes.append(f"{title}: failed: {type(exc).__name__}: {exc}")
            print(f"  failed: {exc}", file=sys.stderr, flush=True)
            return
        self.results[key]["stage_seconds"] = round(time.monotonic() - t0, 1)

    def up(self, name: str, workers: int) -> Running:
        """`up` with `workers` workers, stopped when the run ends."""
        running = start_up(self.work / name, workers)
        self.cleanup.callback(stop_stack, running)
        return running

    # --- 1 and 4: uploads against up, serve and the discarding nginx ---------------------------

    def main_stack(self) -> tuple[Running, stack.BareNginx]:
        """The `up` measured for uploads and delivery, and the bare nginx over its images."""
        if self._main is None:
            up = self.up("up", self.workers)
            bare = stack.start_bare_nginx(self.work / "bare", up.images_dir)
            self.cleanup.callback(bare.stop)
            self._main = up, bare
        return self._main

    def uploads(self) -> dict:
        fixtures = list(self.fixtures.values())
        up, bare = self.main_stack()
        targets = {}
        if "up" in self.targets:
            targets["up"] = UploadTarget.of_stack(up, self.plan.upload_s)
        if "serve" in self.targets:
            serve = start_stack("serve", self.work / "serve")
            self.cleanup.callback(stop_stack, serve)
            targets["serve"] = UploadTarget.of_stack(serve, self.plan.upload_s)
        if "discard" in self.targets:
            targets["discard"] = UploadTarget.of_bare(bare, self.plan.ceiling_s)
        # in this process, before any load: the floor the workers' CPU per upload is held to
        floors = {f.name: decode_floor(f, self.plan.decode_repeats) for f in fixtures}
        for target in targets.values():  # warm-up: imports, connections, caches
            upload_load(target.port, fixtures[0], CLIENTS, target.path, duration_s=0.3)
        raw: dict[tuple, list[dict]] = {}
        for _ in range(self.runs):
            for fixture in fixtures:
                for clients in CONCURRENCY:
                    for name, target in targets.items():
                        summary = target.measure(fixture, clients)
                        raw.setdefault((fixture.name, clients, name), []).append(summary)
        cells = []
        for (image, clients, target), summaries in raw.items():
            cell = {"image": image, "clients": clients, "target": target}
            cell.update(summarize_runs(summaries))
            cell["worker_over_floor"] = ratio(cell["worker_cpu_ms"], floors[image]["median_ms"])
            cells.append(cell)
        return {"targets": list(targets), "decode_floor": floors, "cells": cells}

    # --- 3: image delivery through up's nginx vs the bare nginx --------------------------------

    def delivery(self) -> dict:
        fixture = self.fixtures[SMALL_JPEG]
        up, bare = self.main_stack()
        stored = uploaded(up.url, fixture.data, fixture.filename, fixture.content_type)["filename"]
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
                one[name] = stack.wrk(url, connections=CLIENTS, duration_s=self.plan.get_s)
            one["ratio"] = one["full_stack"]["requests_per_s"] / one["bare_nginx"]["requests_per_s"]
            rounds.append(one)
        return {
            "file": stored,
            "file_bytes": (up.images_dir / stored).stat().st_size,
            "clients": CLIENTS,
            "full_stack_rps": median([r["full_stack"]["requests_per_s"] for r in rounds]),
            "bare_nginx_rps": median([r["bare_nginx"]["requests_per_s"] for r in rounds]),
            "full_stack_p50_ms": median([r["full_stack"]["p50_ms"] for r in rounds]),
            "bare_nginx_p50_ms": median([r["bare_nginx"]["p50_ms"] for r in rounds]),
            "ratio": median([r["ratio"] for r in rounds]),
            "rounds": rounds,
        }

    # --- 2: listing with 100 .. 100,000 images -------------------------------------------------

    def listing(self) -> dict:
        fixture = self.fixtures[SMALL_JPEG]
        up = self.up("listing", self.workers)
        real = uploaded(up.url, fixture.data, fixture.filename, fixture.content_type)
        catalog = open_catalog(config.load(up.env, env_file=None))  # the stack's own catalog
        self.cleanup.callback(catalog.close)
        total, sizes = 1, []
        for size in CATALOG_SIZES:
            t0 = time.monotonic()
            total = seed_catalog(catalog, real["filename"], total, size)
            seeded_s = time.monotonic() - t0
            url = f"{up.url}{UPLOAD_PATH}"
            head = requests.get(url, timeout=10)
            if head.status_code != 200 or head.headers.get("X-Total-Count") != str(size):
                raise RuntimeError(f"listing at {size}: {head.status_code} {head.headers}")
            runs = [
                stack.wrk(url, connections=CLIENTS, duration_s=self.plan.get_s)
                for _ in range(self.runs)
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
            "clients": CLIENTS,
            "page": "first page, default limit",
            "sizes": sizes,
        }

    # --- 5: worker memory during a burst of 4 MB uploads ---------------------------------------

    def memory(self) -> dict:
        fixture = self.fixtures[LARGE_JPEG]
        runs = []
        for n in range(self.runs):
            up = start_up(self.work / f"memory{n}", self.workers)
            try:
                pids = sorted(worker_pids(up).values())
                if len(pids) != self.workers:
                    raise RuntimeError(f"found {len(pids)} worker processes, not {self.workers}")
                time.sleep(0.5)
                idle = {pid: stack.memory_bytes(pid)["VmRSS"] for pid in pids}
                burst = upload_load(
                    up.port, fixture, BURST_CLIENTS, count=self.plan.burst_uploads, timeout_s=120
                )
                peak = {pid: stack.memory_bytes(pid)["VmHWM"] for pid in pids}
                if sorted(worker_pids(up).values()) != pids:
                    self.notes.append("memory: a worker was restarted during the burst")
            finally:
                stop_stack(up)
            runs.append(
                {
                    "idle_rss_mb": [round(v / MB, 1) for v in idle.values()],
                    "peak_rss_mb": [round(v / MB, 1) for v in peak.values()],
                    "burst": burst.summary(),
                }
            )
        return {
            "workers": self.workers,
            "burst": f"{self.plan.burst_uploads} uploads of {fixture.name}, "
            f"{BURST_CLIENTS} at a time",
            "idle_rss_mb": median([max(r["idle_rss_mb"]) for r in runs]),
            "peak_rss_mb": median([max(r["peak_rss_mb"]) for r in runs]),
            "burst_errors": sum(r["burst"]["bad_status"] + r["burst"]["dropped"] for r in runs),
            "runs": runs,
        }

    # --- 6: one worker vs two ------------------------------------------------------------------

    def scaling(self) -> dict:
        fixture = self.fixtures[SMALL_JPEG]
        stacks = {n: self.up(f"scale{n}", n) for n in (1, 2)}
        for running in stacks.values():
            upload_load(running.port, fixture, CLIENTS, duration_s=0.3)
        trees = {n: stack.process_tree(running.proc.pid) for n, running in stacks.items()}
        raw: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(self.runs):
            for n, running in stacks.items():
                cpu0 = stack.tree_cpu_seconds(trees[n])
                result = upload_load(running.port, fixture, CLIENTS, duration_s=self.plan.upload_s)
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
            stop_stack(running)
        return {
            "image": fixture.name,
            "clients": CLIENTS,
            "workers_1": one,
            "workers_2": two,
            "ratio": two["requests_per_s"] / one["requests_per_s"]
            if one["requests_per_s"]
            else None,
        }

    # --- 8: the same stack on S3 + PostgreSQL, beside local files + SQLite ---------------------

    def scaleout(self) -> dict:
        """`up` with STORAGE=s3 (SeaweedFS) and DATABASE_URL (PostgreSQL with fsync on, as in
        production) against the local `up`, cells interleaved: uploads, a cache hit through
        nginx against the bare nginx, and the first list page with 10,000 rows in each."""
        cluster = postgres.start_cluster(durable=True)
        self.cleanup.callback(cluster.remove)
        bucket = seaweed.start_seaweed(self.work / "seaweed", volumes=16, volume_mb=512)
        self.cleanup.callback(bucket.stop)
        s3_up = start_stack(
            "up",
            self.work / "up-s3",
            WEB_SERVER_WORKERS=str(self.workers),
            DATABASE_URL=cluster.new_database(),
            **bucket.settings(),
        )
        self.cleanup.callback(stop_stack, s3_up)
        local_up, bare = self.main_stack()
        stacks = {"local": local_up, "s3": s3_up}
        fixtures = [self.fixtures[SMALL_JPEG], self.fixtures[LARGE_JPEG]]
        for running in stacks.values():  # warm-up: imports, connections, caches
            upload_load(running.port, fixtures[0], CLIENTS, duration_s=0.3)
        raw: dict[tuple[str, str], list[dict]] = {}
        for _ in range(self.runs):
            for fixture in fixtures:
                for mode, running in stacks.items():
                    result = upload_load(
                        running.port, fixture, CLIENTS, duration_s=self.plan.upload_s
                    )
                    raw.setdefault((fixture.name, mode), []).append(result.summary())
                    stack.clear_stored(local_up.images_dir)
                    bucket.empty()  # rows stay, as clear_stored leaves them
        uploads = [
            {"image": name, "mode": mode, "clients": CLIENTS, **summarize_runs(summaries)}
            for (name, mode), summaries in raw.items()
        ]
        small = self.fixtures[SMALL_JPEG]
        names = {
            mode: uploaded(running.url, small.data, small.filename, small.content_type)["filename"]
            for mode, running in stacks.items()
        }
        urls = {
            "s3_full_stack": f"{s3_up.url}/images/{names['s3']}",
            "bare_nginx": f"{bare.url}/plain/{names['local']}",
        }
        # The first GET fills nginx's cache: what wrk measures are hits. Both serve the same
        # bytes (the same upload, scrubbed the same way).
        served = [requests.get(url, timeout=10) for url in urls.values()]
        if any(r.status_code != 200 for r in served) or served[0].content != served[1].content:
            raise RuntimeError(f"{urls} do not serve the same stored image")
        rounds = []
        for _ in range(self.plan.delivery_rounds):
            one = {
                n: stack.wrk(u, connections=CLIENTS, duration_s=self.plan.get_s)
                for n, u in urls.items()
            }
            one["ratio"] = (
                one["s3_full_stack"]["requests_per_s"] / one["bare_nginx"]["requests_per_s"]
            )
            rounds.append(one)
        listing = {}
        for mode, running in stacks.items():
            catalog = open_catalog(config.load(running.env, env_file=None))
            try:
                seed_catalog(catalog, names[mode], catalog.counters().total, SCALEOUT_CATALOG_SIZE)
            finally:
                catalog.close()
            url = f"{running.url}{UPLOAD_PATH}"
            runs = [
                stack.wrk(url, connections=CLIENTS, duration_s=self.plan.get_s)
                for _ in range(self.runs)
            ]
            listing[mode] = {
                "images": SCALEOUT_CATALOG_SIZE,
                "requests_per_s": median([r["requests_per_s"] for r in runs]),
                "p50_ms": median([r["p50_ms"] for r in runs]),
                "p99_ms": median([r["p99_ms"] for r in runs]),
                "errors": sum(r["non_2xx_3xx"] + r["socket_errors"] for r in runs),
            }
        return {
            "modes": {"local": "IMAGES_DIR + SQLite", "s3": "SeaweedFS bucket + PostgreSQL"},
            "uploads": uploads,
            "delivery": {
                "clients": CLIENTS,
                "s3_full_stack_rps": median([r["s3_full_stack"]["requests_per_s"] for r in rounds]),
                "bare_nginx_rps": median([r["bare_nginx"]["requests_per_s"] for r in rounds]),
                "ratio": median([r["ratio"] for r in rounds]),
                "rounds": rounds,
            },
            "listing": listing,
        }

    # --- 9: what the metrics cost ---------------------------------------------------------

    def metrics(self) -> dict:
        """Small-JPEG uploads through `up` with the metrics on (the default) and off
        (METRICS=false), cells interleaved: what recording them costs, as a ratio in one run."""
        stacks = {}
        for name, value in (("on", "true"), ("off", "false")):
            running = start_stack(
                "up",
                self.work / f"up-metrics-{name}",
                WEB_SERVER_WORKERS=str(self.workers),
                METRICS=value,
            )
            self.cleanup.callback(stop_stack, running)
            stacks[name] = running
        fixture = self.fixtures[SMALL_JPEG]
        for running in stacks.values():  # warm-up: imports, connections, caches
            upload_load(running.port, fixture, CLIENTS, duration_s=0.3)
        trees = {n: stack.process_tree(running.proc.pid) for n, running in stacks.items()}
        raw: dict[str, list[dict]] = {}
        for _ in range(self.runs):
            for name, running in stacks.items():
                cpu0 = stack.tree_cpu_seconds(trees[name])
                result = upload_load(running.port, fixture, CLIENTS, duration_s=self.plan.upload_s)
                summary = result.summary()
                cpu = stack.tree_cpu_seconds(trees[name]) - cpu0  # nginx + workers
                summary["server_cpu_ms"] = cpu * 1000 / result.ok if result.ok else None
                raw.setdefault(name, []).append(summary)
                stack.clear_stored(running.images_dir)
        cells = {name: summarize_runs(summaries) for name, summaries in raw.items()}
        return {
            "image": fixture.name,
            "clients": CLIENTS,
            "cells": cells,
            "on_over_off": cells["on"]["requests_per_s"] / cells["off"]["requests_per_s"],
        }

    # --- 10: uploads into a store that already holds many images ------------------------------

    def stored(self) -> dict:
        """Small-JPEG uploads at CLIENTS through `up` with STORED_SIZES images already stored,
        rows and files, one `up` for each so the cells interleave: whether an upload costs
        more as the store grows (issue 15)."""
        fixture = self.fixtures[SMALL_JPEG]
        targets, seed_seconds = {}, {}
        for size in STORED_SIZES:  # seeded once per bench run, not per repeat
            running = self.up(f"stored{size}", self.workers)
            t0 = time.monotonic()
            seed_store(running, fixture, size)
            seed_seconds[size] = round(time.monotonic() - t0, 2)
            targets[size] = UploadTarget.of_stack(running, self.plan.upload_s)
        for target in targets.values():  # warm-up: imports, connections, caches
            upload_load(target.port, fixture, CLIENTS, duration_s=0.3)
        raw: dict[int, list[dict]] = {}
        for _ in range(self.runs):
            for size, target in targets.items():
                raw.setdefault(size, []).append(target.measure(fixture, CLIENTS, SEEDED_NAME))
        for target in targets.values():  # idle, they would still take memory from later stages
            stop_stack(target.running)
        cells = {size: summarize_runs(summaries) for size, summaries in raw.items()}
        empty = cells[STORED_SIZES[0]]
        sizes = []
        for size, cell in cells.items():
            sizes.append({"images": size, "seed_seconds": seed_seconds[size], **cell})
            for key in ("requests_per_s", "p50_ms", "server_cpu_ms"):
                sizes[-1][f"{key}_vs_empty"] = ratio(cell[key], empty[key])
        return {
            "image": fixture.name,
            "clients": CLIENTS,
            "seeding": "one real upload, then rows copied from its row with Catalog.add_many "
            f"({SEED_CHUNK_ROWS} per transaction) and, under each row's name, hard links to its "
            "original and its thumbnail; each cell's uploads stay in the catalog (their files "
            "are removed), the same number in every store",
            "sizes": sizes,
        }

    # --- 7: the pipeline's steps ---------------------------------------------------------------

    def pipeline(self) -> dict:
        return image_pipeline.run(self.plan.pipeline_repeats)


# key (for --only and the results) → title and measurement, in the order they run.
STAGES: dict[str, tuple[str, Callable[[Bench], dict]]] = {
    "uploads": ("1+4. uploads and the discarding nginx", Bench.uploads),
    "stored": ("10. uploads with 0, 10,000 and 100,000 images stored", Bench.stored),
    "delivery": ("3. image delivery", Bench.delivery),
    "listing": ("2. listing", Bench.listing),
    "memory": ("5. memory", Bench.memory),
    "scaling": ("6. scaling", Bench.scaling),
    "pipeline": ("7. pipeline steps", Bench.pipeline),
    "scaleout": ("8. S3 + PostgreSQL beside local + SQLite", Bench.scaleout),
    "metrics": ("9. uploads with the metrics on and off", Bench.metrics),
}


def seeded_names(n: int, template_filename: str) -> tuple[str, str]:
    """The id and file name of seeded image number n, with the template's extension."""
    image_id = f"{SEED_PREFIX}{n:0{SEED_DIGITS}d}"
    return image_id, f"{image_id}.{template_filename.rsplit('.', 1)[1]}"


def seed_catalog(catalog, template_filename: str, total: int, size: int) -> int:
    """Add rows (copies of one real upload's metadata under synthetic names) with the bulk path,
    SEED_CHUNK_ROWS per transaction, until the catalog holds `size`; returns the new total."""
    template = asdict(catalog.get(template_filename))

    def row(n: int) -> ImageRow:
        image_id, filename = seeded_names(n, template_filename)
        return ImageRow(**{**template, "seq": 0, "id": image_id, "filename": filename})

    while total < size:
        batch = min(SEED_CHUNK_ROWS, size - total)
        catalog.add_many(row(n) for n in range(total, total + batch))
        total += batch
    return total


def seed_store(running: Running, fixture: Fixture, size: int) -> None:
    """Fill `running`'s store to `size` images, rows and files alike: one real upload of
    `fixture`, then seed_catalog's rows and, under each row's name, hard links to that upload's
    original and thumbnail in the store's folders (to a copy after LINKS_PER_FILE). Links take
    no space, and each folder holds `size` entries, as after that many uploads."""
    if size == 0:
        return
    real = uploaded(running.url, fixture.data, fixture.filename, fixture.content_type)
    requests.get(real["thumbnail_url"], timeout=10).raise_for_status()  # made, if made lazily
    settings = config.load(running.env, env_file=None)  # the stack's own store and catalog
    catalog = open_catalog(settings)
    try:
        seed_catalog(catalog, real["filename"], 1, size)
    finally:
        catalog.close()
    store = open_store(settings)
    # the thumbnail's name as the server gives it, `{id}` and a suffix that depends on the
    # version (`.webp`, or by format): the same suffix for each seeded id
    thumb_name = real["thumbnail_url"].rsplit("/", 1)[1]
    suffix = thumb_name.removeprefix(image_id_of(real["filename"]))
    sources = (store.image_path(real["filename"]), store.thumbs / thumb_name)
    for n in range(1, size):
        image_id, filename = seeded_names(n, real["filename"])
        names = (store.image_path(filename), store.thumbs / f"{image_id}{suffix}")
        if n % LINKS_PER_FILE == 0:  # a copy, which the next ones link to
            for source, name in zip(sources, names, strict=True):
                shutil.copyfile(source, name)
            sources = names
        else:
            for source, name in zip(sources, names, strict=True):
                os.link(source, name)


def start_up(root: Path, workers: int) -> Running:
    """`imagehost up` with `workers` workers, default settings otherwise, every worker ready."""
    return start_stack("up", root, WEB_SERVER_WORKERS=str(workers))
