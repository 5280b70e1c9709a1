"""The measurements (issue 6's items 1-7), one method of Bench each, run in STAGES order.

Each is bounded by a duration or a count, repeated `--runs` times with the median kept, and
starts what it measures itself (`up`, `serve`, the bare nginx) on free ports under one
temporary folder; a stage that fails leaves a note and the others' numbers.
"""

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from imagehost import config
from imagehost.catalog import ImageRow, open_catalog
from tests.support import postgres, seaweed
from tests.support.http import UPLOAD_PATH, uploaded
from tests.support.stack import Running, start_stack, stop_stack, worker_pids

from . import load, stack
from . import pipeline as image_pipeline
from .fixtures import LARGE_JPEG, SMALL_JPEG, Fixture

CONCURRENCY = (1, 8, 32)  # clients of the upload table
CLIENTS = 8  # of the GET, listing and scaling loads
BURST_CLIENTS = 32  # concurrent 4 MB uploads of the memory burst
CATALOG_SIZES = (100, 1_000, 10_000, 100_000)
SCALEOUT_CATALOG_SIZE = 10_000  # rows in each catalog for the list comparison
SEED_CHUNK_ROWS = 10_000
MB = 1e6  # MB means 10^6 bytes everywhere in this output


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs; --quick shrinks them to fit in a minute."""

    upload_s: float  # one upload cell (image x clients x target)
    ceiling_s: float  # one cell against the discarding nginx
    get_s: float  # one wrk run (listing, delivery)
    delivery_rounds: int
    burst_uploads: int  # 4 MB uploads in the memory burst (BURST_CLIENTS at a time)
    pipeline_repeats: int
    budget_s: float  # stages that would start after this are skipped, with a note

    @classmethod
    def for_mode(cls, quick: bool, runs: int) -> "Plan":
        if quick:
            return cls(0.5, 0.3, 1, 1, 32, 1, 55)
        return cls(2.0, 1.0, 3, max(3, runs), 64, runs, 570)


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


class Bench:
    """One benchmark run: its plan, folders, started processes and collected results."""

    def __init__(
        self,
        plan: Plan,
        runs: int,
        fixtures: dict[str, Fixture],
        work: Path,
        cleanup: contextlib.ExitStack,
    ):
        self.plan = plan
        self.runs = runs
        self.fixtures = fixtures
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
        serve = start_stack("serve", self.work / "serve")
        self.cleanup.callback(stop_stack, serve)
        targets = {
            "up": (up.proc.pid, up.port, UPLOAD_PATH, self.plan.upload_s),
            "serve": (serve.proc.pid, serve.port, UPLOAD_PATH, self.plan.upload_s),
            "discard": (bare.proc.pid, bare.port, "/discard", self.plan.ceiling_s),
        }
        for _, port, path, _ in targets.values():  # warm-up: imports, connections, caches
            upload_load(port, fixtures[0], CLIENTS, path, duration_s=0.3)
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

    # --- 7: the pipeline's steps ---------------------------------------------------------------

    def pipeline(self) -> dict:
        return image_pipeline.run(self.plan.pipeline_repeats)


# key (for --only and the results) → title and measurement, in the order they run.
STAGES: dict[str, tuple[str, Callable[[Bench], dict]]] = {
    "uploads": ("1+4. uploads and the discarding nginx", Bench.uploads),
    "delivery": ("3. image delivery", Bench.delivery),
    "listing": ("2. listing", Bench.listing),
    "memory": ("5. memory", Bench.memory),
    "scaling": ("6. scaling", Bench.scaling),
    "pipeline": ("7. pipeline steps", Bench.pipeline),
    "scaleout": ("8. S3 + PostgreSQL beside local + SQLite", Bench.scaleout),
    "metrics": ("9. uploads with the metrics on and off", Bench.metrics),
}


def seed_catalog(catalog, template_filename: str, total: int, size: int) -> int:
    """Add rows (copies of one real upload's metadata under synthetic names) with the bulk path,
    SEED_CHUNK_ROWS per transaction, until the catalog holds `size`; returns the new total."""
    template = asdict(catalog.get(template_filename))
    while total < size:
        batch = min(SEED_CHUNK_ROWS, size - total)
        catalog.add_many(
            ImageRow(
                **{**template, "seq": 0, "id": f"bench{n:011d}", "filename": f"bench{n:011d}.jpg"}
            )
            for n in range(total, total + batch)
        )
        total += batch
    return total


def start_up(root: Path, workers: int) -> Running:
    """`imagehost up` with `workers` workers, default settings otherwise, every worker ready."""
    return start_stack("up", root, WEB_SERVER_WORKERS=str(workers))
