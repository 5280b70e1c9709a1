"""Prometheus metrics of one node, summed over its worker processes: the only importer of
prometheus_client.

Each process records into memory-mapped files in DATA_DIR/run/metrics (prometheus_client's
multiprocess mode), which the process answering GET /api/metrics adds up; the supervisor (`up`,
`workers`) or `serve` empties the folder at start, so a restart starts every count from zero,
as Prometheus expects of a counter. The catalog's and the store's sizes are read at scrape
time. Each node is scraped on its own and says which it is in `imagehost_node_info`.

setup() must run before anything else touches prometheus_client in the process: the
multiprocess mode is chosen when the library is first imported. With METRICS=false every
function here does nothing and the route answers 404.
"""

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Request durations: from a cached list (~1 ms) to a 5 MB upload on a busy node (seconds).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

_recorders: dict[str, object] = {}  # empty: metrics are off (or not set up in this process)
_children: dict[tuple, object] = {}  # (recorder, label values) -> its child, looked up once


def folder(settings: Settings) -> Path:
    return Path(settings.data_dir) / "run" / "metrics"


def reset(settings: Settings) -> dict[str, str]:
    """Empty this node's metrics folder (a new start counts from zero) and return the
    environment its worker processes need; {} when metrics are off."""
    if not settings.metrics:
        return {}
    path = folder(settings)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return {ENV: str(path)}


def setup(settings: Settings) -> None:
    """Make this process's recorders (before any other use of prometheus_client here)."""
    if not settings.metrics:
        return
    os.environ.setdefault(ENV, str(folder(settings)))
    Path(os.environ[ENV]).mkdir(parents=True, exist_ok=True)
    from prometheus_client import Counter, Histogram

    _children.clear()
    _recorders.update(
        requests=Counter(
            "imagehost_http_requests_total",
            "HTTP requests answered by the workers, by route template, method and status",
            ["route", "method", "status"],
        ),
        duration=Histogram(
            "imagehost_http_request_duration_seconds",
            "Time from a parsed request to its answer, by route template",
            ["route"],
            buckets=REQUEST_BUCKETS,
        ),
        refusals=Counter("imagehost_refusals_total", "Requests refused, by error code", ["code"]),
        uploads=Counter("imagehost_uploads_total", "Uploads stored"),
        upload_bytes=Counter("imagehost_upload_bytes_total", "Bytes of the originals stored"),
        steps=Histogram(
            "imagehost_pipeline_step_seconds",
            "Time of each step of an upload's pipeline",
            ["step"],
            buckets=STEP_BUCKETS,
        ),
        # CPU of the thread doing each step (time.thread_time): with the process's CPU from
        # /proc, what an upload costs in the pipeline and what in the HTTP layer around it.
        step_cpu=Counter(
            "imagehost_pipeline_step_cpu_seconds",
            "CPU time of the thread running each step of an upload's pipeline",
            ["step"],
        ),
        sweeps=Counter(
            "imagehost_sweeper_runs_total",
            "Sweeper rounds, by outcome (swept, skipped: another held the lock, failed)",
            ["outcome"],
        ),
        swept=Counter(
            "imagehost_sweeper_removed_total",
            "Images whose objects the sweeper removed, by why (expired, deleted)",
            ["reason"],
        ),
    )


def _child(recorder: str, *labels: str):
    """The recorder's child for these label values; prometheus_client's own lookup (a lock
    and the values checked) is done once per combination, not on every request."""
    found = _children.get((recorder, labels))
    if found is None:
        found = _children[(recorder, labels)] = _recorders[recorder].labels(*labels)
    return found


def request_done(route: str, method: str, status: int, seconds: float, code: str | None) -> None:
    if not _recorders:
        return
    _child("requests", route, method, str(status)).inc()
    _child("duration", route).observe(seconds)
    if code is not None:
        _child("refusals", code).inc()


def upload_stored(size: int) -> None:
    if _recorders:
        _recorders["uploads"].inc()
        _recorders["upload_bytes"].inc(size)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Time one pipeline step (receive, process, store, catalog): wall and thread CPU."""
    if not _recorders:
        yield
        return
    start, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        _child("steps", name).observe(time.perf_counter() - start)
        _child("step_cpu", name).inc(time.thread_time() - cpu)


def sweep_done(outcome: str, expired: int = 0, deleted: int = 0) -> None:
    if not _recorders:
        return
    _child("sweeps", outcome).inc()
    if expired:
        _child("swept", "expired").inc(expired)
    if deleted:
        _child("swept", "deleted").inc(deleted)


def exposition(stored: Callable[[], tuple[int, int]]) -> bytes:
    """The text Prometheus scrapes: every process's recorders summed, and `stored()` —
    (images, bytes) in the catalog now — as gauges, with this node's name."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.core import GaugeMetricFamily

    class Now:
        def collect(self):
            images, size = stored()
            yield GaugeMetricFamily("imagehost_images", "Images in the catalog", value=images)
            yield GaugeMetricFamily(
                "imagehost_stored_bytes", "Bytes of the stored originals", value=size
            )
            info = GaugeMetricFamily(
                "imagehost_node_info", "This node (one per scrape target)", labels=["node"]
            )
            info.add_metric([socket.gethostname()], 1)
            yield info

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(Now())
    return generate_latest(registry)
