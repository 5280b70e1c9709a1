"""The report of a run: the machine it ran on, issue 6's and issue 15's targets (each limit
written once, in TARGETS) with PASS/MISS, the comparison with an earlier run (--baseline), and
the text table printed at the end."""

import contextlib
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from tests.support import ROOT

from . import pipeline as image_pipeline
from . import stack
from .fixtures import ANIMATED_GIF, LARGE_JPEG, SCREEN_PNG, SMALL_JPEG
from .stages import STEP_KEYS, ratio


def machine() -> dict:
    """What the numbers were measured on, and which code (the commit, and how the working
    tree's src/ differs from it)."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    # Others may be editing the checkout: what was measured is the working tree, so say how
    # it differs from the commit.
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "src"],
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
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0].strip(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "git_commit": commit,
        "uncommitted_in_src": [line[3:] for line in changed if line.strip()],
    }


def load_average() -> float:
    """The 1-minute load average: above 1, the numbers are noisy."""
    return os.getloadavg()[0]


# --- targets ---------------------------------------------------------------------------------


class Measured(NamedTuple):
    value: float  # compared with the target's limit
    clean: bool  # no errors or drops where the target demands none
    text: str  # what the table shows


@dataclass(frozen=True)
class Target:
    """One target: `subject op limit unit`, met when the measured value is on the right side of
    the limit and the run was clean."""

    subject: str
    op: str  # ">=" or "<="
    limit: float
    unit: str
    measure: Callable[[dict], Measured | None]  # from the results; None: not measured

    @property
    def name(self) -> str:
        return f"{self.subject} {self.op} {self.limit:g}{self.unit}"

    def row(self, results: dict) -> dict:
        """{"target", "measured", "verdict"}: PASS, MISS, or n/a when not measured."""
        found = self.measure(results)
        if found is None:
            return {"target": self.name, "measured": "-", "verdict": "n/a"}
        within = found.value >= self.limit if self.op == ">=" else found.value <= self.limit
        verdict = "PASS" if within and found.clean else "MISS"
        return {"target": self.name, "measured": found.text, "verdict": verdict}


def _cell(results: dict, image: str, clients: int, target: str) -> dict | None:
    """One cell of the upload table."""
    for cell in results.get("uploads", {}).get("cells", []):
        if (cell["image"], cell["clients"], cell["target"]) == (image, clients, target):
            return cell
    return None


def _clean(cell: dict) -> bool:
    """No answer but the expected one, no dropped connection."""
    return cell["bad_status"] + cell["dropped"] == 0


def _delivery_ratio(results: dict) -> Measured | None:
    d = results.get("delivery")
    if d is None:
        return None
    text = f"{d['ratio']:.2f} x ({d['full_stack_rps']:.0f} vs {d['bare_nginx_rps']:.0f} req/s)"
    return Measured(d["ratio"], True, text)


def _listing_sizes(results: dict) -> dict[int, dict]:
    return {s["images"]: s for s in results.get("listing", {}).get("sizes", [])}


def _listing_growth(results: dict, small: int, large: int) -> Measured | None:
    sizes = _listing_sizes(results)
    if small not in sizes or large not in sizes:
        return None
    low, high = sizes[small]["p50_ms"], sizes[large]["p50_ms"]
    return Measured(high / low, True, f"{high / low:.2f} x ({high:.2f} vs {low:.2f} ms)")


def _listing_rate(results: dict, images: int) -> Measured | None:
    s = _listing_sizes(results).get(images)
    if s is None:
        return None
    text = f"{s['requests_per_s']:.0f} req/s, {s['errors']} errors"
    return Measured(s["requests_per_s"], s["errors"] == 0, text)


def _upload_rate(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None:
        return None
    text = f"{c['requests_per_s']:.0f} req/s, {c['bad_status']} non-201, {c['dropped']} dropped"
    return Measured(c["requests_per_s"], _clean(c), text)


def _upload_spread(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None or not c["p50_ms"]:
        return None
    spread = c["p99_ms"] / c["p50_ms"]
    text = (
        f"{c['bad_status']} non-201, {c['dropped']} dropped, p99/p50 {spread:.1f}"
        f" ({c['p99_ms']:.0f}/{c['p50_ms']:.0f} ms)"
    )
    return Measured(spread, _clean(c), text)


def _upload_throughput(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None:
        return None
    text = f"{c['mb_per_s']:.0f} MB/s ({c['requests_per_s']:.1f} req/s)"
    return Measured(c["mb_per_s"], True, text)


def _upload_p50(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None or c["p50_ms"] is None:
        return None
    return Measured(c["p50_ms"], _clean(c), f"{c['p50_ms']:.2f} ms (p99 {_fmt(c['p99_ms'])} ms)")


def _worker_cpu(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None or c["worker_cpu_ms"] is None:
        return None
    text = (
        f"{c['worker_cpu_ms']:.2f} ms (pipeline {_fmt(c['pipeline_cpu_ms'], '.2f')}, "
        f"nginx {_fmt(c['nginx_cpu_ms'], '.2f')})"
    )
    return Measured(c["worker_cpu_ms"], _clean(c), text)


def _outside_pipeline(results: dict, image: str, clients: int) -> Measured | None:
    """Worker CPU per upload outside the process step: receive, store, catalog and the rest."""
    c = _cell(results, image, clients, "up")
    if c is None or c["worker_cpu_ms"] is None or c["pipeline_cpu_ms"] is None:
        return None
    outside = c["worker_cpu_ms"] - c["pipeline_cpu_ms"]
    steps = ", ".join(
        f"{step} {_fmt(c[key], '.2f')}" for step, key in STEP_KEYS.items() if step != "process"
    )
    text = f"{outside:.2f} ms ({steps}, rest {_fmt(c['rest_cpu_ms'], '.2f')})"
    return Measured(outside, _clean(c), text)


def _over_decode_floor(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None or c.get("worker_over_floor") is None:
        return None
    floor = results["uploads"]["decode_floor"][image]["median_ms"]
    text = f"{c['worker_over_floor']:.2f} x ({c['worker_cpu_ms']:.1f} vs {floor:.1f} ms)"
    return Measured(c["worker_over_floor"], _clean(c), text)


def _stored_ratio(results: dict, images: int) -> Measured | None:
    sizes = {s["images"]: s for s in results.get("stored", {}).get("sizes", [])}
    s, empty = sizes.get(images), sizes.get(0)
    if s is None or empty is None or s["requests_per_s_vs_empty"] is None:
        return None
    text = (
        f"{s['requests_per_s_vs_empty']:.2f} x ({s['requests_per_s']:.0f} vs "
        f"{empty['requests_per_s']:.0f} req/s)"
    )
    clean = all(_clean(x) for x in (s, empty))
    return Measured(s["requests_per_s_vs_empty"], clean, text)


def _over_baseline(results: dict, image: str, clients: int) -> Measured | None:
    """req/s of an upload cell through `up` over the same cell of the --baseline run."""
    for b in results.get("baseline", {}).get("cells", []):
        if (b["image"], b["clients"], b["target"]) == (image, clients, "up"):
            if b["requests_per_s_ratio"] is None:
                return None
            c = _cell(results, image, clients, "up")
            text = (
                f"{b['requests_per_s_ratio']:.2f} x ({c['requests_per_s']:.0f} vs "
                f"{b['baseline_requests_per_s']:.0f} req/s)"
            )
            return Measured(b["requests_per_s_ratio"], _clean(c), text)
    return None


def _peak_rss(results: dict) -> Measured | None:
    m = results.get("memory")
    if m is None:
        return None
    text = f"{m['peak_rss_mb']:.0f} MB (idle {m['idle_rss_mb']:.0f} MB)"
    return Measured(m["peak_rss_mb"], True, text)


def _scaling_ratio(results: dict) -> Measured | None:
    s = results.get("scaling")
    if s is None:
        return None
    if s["ratio"] is None:  # nothing was answered with one worker
        return Measured(0.0, False, "no upload answered with 1 worker")
    text = (
        f"{s['ratio']:.2f} x ({s['workers_2']['requests_per_s']:.0f} vs "
        f"{s['workers_1']['requests_per_s']:.0f} req/s)"
    )
    return Measured(s["ratio"], True, text)


TARGETS = (
    Target("image GET full stack", ">=", 0.95, " x bare nginx", _delivery_ratio),
    Target("list p50 at 100k", "<=", 1.5, " x at 100", lambda r: _listing_growth(r, 100, 100_000)),
    Target("list at 10k", ">=", 200, " req/s (8 clients)", lambda r: _listing_rate(r, 10_000)),
    Target(
        "50 KB uploads at 8 clients",
        ">=",
        400,
        " req/s, 0 errors",
        lambda r: _upload_rate(r, SMALL_JPEG, 8),
    ),
    Target("50 KB p50 at 1 client", "<=", 5, " ms", lambda r: _upload_p50(r, SMALL_JPEG, 1)),
    Target(
        "50 KB worker CPU/upload (8 clients)",
        "<=",
        4,
        " ms",
        lambda r: _worker_cpu(r, SMALL_JPEG, 8),
    ),
    Target(
        "50 KB of it outside the pipeline",
        "<=",
        2,
        " ms",
        lambda r: _outside_pipeline(r, SMALL_JPEG, 8),
    ),
    Target(
        "50 KB at 32 clients: no errors/drops, p99",
        "<=",
        4,
        " x p50",
        lambda r: _upload_spread(r, SMALL_JPEG, 32),
    ),
    Target(
        "4 MB uploads at 8 clients",
        ">=",
        150,
        " MB/s",
        lambda r: _upload_throughput(r, LARGE_JPEG, 8),
    ),
    Target(
        "4 MB worker CPU/upload (8 clients)",
        "<=",
        1.15,
        " x decode floor",
        lambda r: _over_decode_floor(r, LARGE_JPEG, 8),
    ),
    Target(
        "1 MB PNG uploads at 8 clients",
        ">=",
        2,
        " x --baseline",
        lambda r: _over_baseline(r, SCREEN_PNG, 8),
    ),
    Target(
        "GIF uploads at 8 clients",
        ">=",
        2,
        " x --baseline",
        lambda r: _over_baseline(r, ANIMATED_GIF, 8),
    ),
    Target(
        "uploads with 100k stored",
        ">=",
        0.9,
        " x empty store",
        lambda r: _stored_ratio(r, 100_000),
    ),
    Target("peak worker RSS", "<=", 64, " MB (32 x 4 MB burst; issue 15)", _peak_rss),
    Target("2 workers", ">=", 1.6, " x 1 worker (50 KB, 8 clients)", _scaling_ratio),
)


def targets(results: dict) -> list[dict]:
    """Every target's row, in TARGETS order."""
    return [target.row(results) for target in TARGETS]


def compare(results: dict, earlier: dict, source: str) -> dict:
    """Each upload cell of `results` against the same cell (image, clients, target) of an
    earlier run's record (a results file): ratios of req/s, p50 and server CPU per upload."""
    cells = []
    for cell in results.get("uploads", {}).get("cells", []):
        key = (cell["image"], cell["clients"], cell["target"])
        old = _cell(earlier["results"], *key)
        if old is None:
            continue
        cells.append(
            {
                "image": key[0],
                "clients": key[1],
                "target": key[2],
                "baseline_requests_per_s": old["requests_per_s"],
                **{
                    f"{name}_ratio": ratio(cell[name], old.get(name))
                    for name in ("requests_per_s", "p50_ms", "server_cpu_ms")
                },
            }
        )
    return {
        "file": source,
        "date": earlier["date"],
        "commit": earlier["machine"]["git_commit"],
        "cells": cells,
    }


# --- the table -------------------------------------------------------------------------------


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _upload_tables(r: dict, sizes: dict[str, int]) -> list[str]:
    """The upload table, then the same cells' CPU per upload by process and pipeline step."""
    base = {
        (b["image"], b["clients"], b["target"]): b for b in r.get("baseline", {}).get("cells", [])
    }
    against = f"; base = req/s over {r['baseline']['file']}" if "baseline" in r else ""
    lines = [
        "1+4. Uploads (medians; errors summed over runs; MB = 10^6 bytes of image; "
        "discard = nginx reading and dropping the same body; srv cpu = CPU ms of all "
        f"server processes per request; cli cpu = the load client's share of a core{against})",
        f"{'image':<14} {'bytes':>9} {'cl':>3} {'target':<8} {'req/s':>7} {'MB/s':>7} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'non201':>6} {'drop':>5} {'vs ceil':>7} "
        f"{'srv cpu':>7} {'cli cpu':>7}" + (f" {'base':>5}" if base else ""),
    ]
    for cell in r["uploads"]["cells"]:
        key = (cell["image"], cell["clients"], cell["target"])
        ceiling = _cell(r, cell["image"], cell["clients"], "discard")
        vs = ""
        if cell["target"] != "discard" and ceiling and ceiling["requests_per_s"]:
            vs = f"{cell['requests_per_s'] / ceiling['requests_per_s']:.3f}"
        over = f" {_fmt(base[key]['requests_per_s_ratio'], '.2f'):>5}" if key in base else ""
        lines.append(
            f"{cell['image']:<14} {sizes[cell['image']]:>9} {cell['clients']:>3} "
            f"{cell['target']:<8} {_fmt(cell['requests_per_s']):>7} "
            f"{_fmt(cell['mb_per_s']):>7} {_fmt(cell['p50_ms']):>8} "
            f"{_fmt(cell['p99_ms']):>8} {cell['bad_status']:>6} {cell['dropped']:>5} "
            f"{vs:>7} {_fmt(cell['server_cpu_ms']):>7} "
            f"{_fmt(cell['client_cpu_share'], '.0%'):>7}{over}"
        )
    floors = r["uploads"]["decode_floor"]
    lines += [
        "",
        "1+4. CPU per upload, ms (medians): srv = every server process; nginx; worker = the "
        "Python workers (up) or the process (serve), split by the server's own count of each "
        "step's thread CPU (receive, pipeline = process: decode, verify, thumbnail, scrub; "
        "store, catalog) and rest = worker less the steps (HTTP, multipart, logging); floor = "
        "detect + verify of the same body in the bench process, thread CPU",
        f"{'image':<14} {'cl':>3} {'target':<8} {'srv':>6} {'nginx':>6} {'worker':>6} "
        f"{'recv':>6} {'pipe':>6} {'store':>6} {'catlg':>6} {'rest':>6} {'floor':>6} "
        f"{'w/floor':>7}",
    ]
    for cell in r["uploads"]["cells"]:
        steps = " ".join(f"{_fmt(cell[key], '.2f'):>6}" for key in STEP_KEYS.values())
        lines.append(
            f"{cell['image']:<14} {cell['clients']:>3} {cell['target']:<8} "
            f"{_fmt(cell['server_cpu_ms'], '.2f'):>6} {_fmt(cell['nginx_cpu_ms'], '.2f'):>6} "
            f"{_fmt(cell['worker_cpu_ms'], '.2f'):>6} {steps} "
            f"{_fmt(cell['rest_cpu_ms'], '.2f'):>6} "
            f"{_fmt(floors[cell['image']]['median_ms'], '.2f'):>6} "
            f"{_fmt(cell['worker_over_floor'], '.2f'):>7}"
        )
    return [*lines, ""]


def table(report: dict) -> str:
    """The report as the text printed at the end of a run: one section per stage, then the
    targets and the notes."""
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
        lines += _upload_tables(r, {f["name"]: f["bytes"] for f in report["fixtures"]})
    if "stored" in r:
        st = r["stored"]
        lines += [
            f"10. Uploads into a full store ({st['image']}, {st['clients']} clients through up; "
            "ratios to the empty store; cpu = ms per upload)",
            f"   {'images':>7} {'req/s':>7} {'x':>5} {'p50 ms':>7} {'x':>5} {'srv cpu':>7} "
            f"{'x':>5} {'worker':>6} {'pipe':>5} {'non201':>6} {'drop':>5} {'seed s':>6}",
        ]
        for s in st["sizes"]:
            lines.append(
                f"   {s['images']:>7} {_fmt(s['requests_per_s']):>7} "
                f"{_fmt(s['requests_per_s_vs_empty'], '.2f'):>5} {_fmt(s['p50_ms'], '.2f'):>7} "
                f"{_fmt(s['p50_ms_vs_empty'], '.2f'):>5} {_fmt(s['server_cpu_ms'], '.2f'):>7} "
                f"{_fmt(s['server_cpu_ms_vs_empty'], '.2f'):>5} "
                f"{_fmt(s['worker_cpu_ms'], '.2f'):>6} {_fmt(s['pipeline_cpu_ms'], '.2f'):>5} "
                f"{s['bad_status']:>6} {s['dropped']:>5} {s['seed_seconds']:>6}"
            )
        lines.append("")
    if "listing" in r:
        lines += [
            f"2. Listing, first page, {r['listing']['clients']} clients through nginx (wrk); "
            "catalog seeded with Catalog.add_many",
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
            f"3. Image delivery, {d['file_bytes']} byte JPEG, {d['clients']} clients (wrk), "
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
            f"6. Scaling ({s['image']}, {s['clients']} clients): 1 worker "
            f"{s['workers_1']['requests_per_s']:.0f} req/s using "
            f"{_fmt(s['workers_1']['server_cores'], '.2f')} cores, 2 workers "
            f"{s['workers_2']['requests_per_s']:.0f} req/s using "
            f"{_fmt(s['workers_2']['server_cores'], '.2f')} cores (nginx + workers); "
            f"ratio {_fmt(s['ratio'], '.2f')}",
            "",
        ]
    if "pipeline" in r:
        lines.append("7. Pipeline steps (bench/pipeline.py)")
        lines += [f"   {line}" for line in image_pipeline.table(r["pipeline"]).splitlines()]
        lines.append("")
    if "scaleout" in r:
        o = r["scaleout"]
        lines += [
            "8. S3 + PostgreSQL (s3) beside local files + SQLite (local), same run, "
            f"{o['uploads'][0]['clients']} clients",
            f"   {'image':<9} {'mode':<6} {'req/s':>7} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'non201':>6} {'drop':>5}",
        ]
        for cell in o["uploads"]:
            lines.append(
                f"   {cell['image']:<9} {cell['mode']:<6} {_fmt(cell['requests_per_s']):>7} "
                f"{_fmt(cell['mb_per_s']):>7} {_fmt(cell['p50_ms']):>8} "
                f"{_fmt(cell['p99_ms']):>8} {cell['bad_status']:>6} {cell['dropped']:>5}"
            )
        d = o["delivery"]
        lines.append(
            f"   image GET, nginx cache hit (s3) {d['s3_full_stack_rps']:.0f} req/s vs bare nginx "
            f"{d['bare_nginx_rps']:.0f} req/s: ratio {d['ratio']:.3f}"
        )
        for mode, listed in o["listing"].items():
            lines.append(
                f"   list first page, {listed['images']} images, {mode}: p50 "
                f"{_fmt(listed['p50_ms'], '.2f')} ms, p99 {_fmt(listed['p99_ms'], '.2f')} ms, "
                f"{_fmt(listed['requests_per_s'])} req/s, errors {listed['errors']}"
            )
        lines.append("")
    if "metrics" in r:
        m = r["metrics"]
        lines.append(
            f"9. Uploads with the metrics on and off ({m['image']}, {m['clients']} clients)"
        )
        for name, cell in m["cells"].items():
            lines.append(
                f"   metrics {name:<3} {_fmt(cell['requests_per_s']):>7} req/s, p50 "
                f"{_fmt(cell['p50_ms'])} ms, server CPU {_fmt(cell['server_cpu_ms'], '.2f')} ms"
                f"/upload, non201 {cell['bad_status']}, dropped {cell['dropped']}"
            )
        lines += [f"   on / off: {m['on_over_off']:.3f} (1.0: the metrics cost nothing)", ""]
    width = max(len(row["target"]) for row in report["targets"])
    lines += ["Targets", f"{'target':<{width}} {'verdict':<7} measured"]
    for row in report["targets"]:
        lines.append(f"{row['target']:<{width}} {row['verdict']:<7} {row['measured']}")
    if report["notes"]:
        lines += ["", "Notes"] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines)
