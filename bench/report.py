"""The report of a run: the machine it ran on, issue 6's targets (each limit written once, in
TARGETS) with PASS/MISS, and the text table printed at the end."""

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
from .fixtures import LARGE_JPEG, SMALL_JPEG


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
    """One of issue 6's targets: `subject op limit unit`, met when the measured value is on the
    right side of the limit and the run was clean."""

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
    return Measured(c["requests_per_s"], c["bad_status"] + c["dropped"] == 0, text)


def _upload_spread(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None or not c["p50_ms"]:
        return None
    spread = c["p99_ms"] / c["p50_ms"]
    text = (
        f"{c['bad_status']} non-201, {c['dropped']} dropped, p99/p50 {spread:.1f}"
        f" ({c['p99_ms']:.0f}/{c['p50_ms']:.0f} ms)"
    )
    return Measured(spread, c["bad_status"] + c["dropped"] == 0, text)


def _upload_throughput(results: dict, image: str, clients: int) -> Measured | None:
    c = _cell(results, image, clients, "up")
    if c is None:
        return None
    text = f"{c['mb_per_s']:.0f} MB/s ({c['requests_per_s']:.1f} req/s)"
    return Measured(c["mb_per_s"], True, text)


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
        300,
        " req/s, 0 errors",
        lambda r: _upload_rate(r, SMALL_JPEG, 8),
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
    Target("peak worker RSS", "<=", 80, " MB (4 MB burst)", _peak_rss),
    Target("2 workers", ">=", 1.6, " x 1 worker (50 KB, 8 clients)", _scaling_ratio),
)


def targets(results: dict) -> list[dict]:
    """Every target's row, in TARGETS order."""
    return [target.row(results) for target in TARGETS]


# --- the table -------------------------------------------------------------------------------


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


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
                f"{vs:>7} {_fmt(cell['server_cpu_ms']):>7} "
                f"{_fmt(cell['client_cpu_share'], '.0%'):>7}"
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
    lines += ["Targets", f"{'target':<52} {'verdict':<7} measured"]
    for row in report["targets"]:
        lines.append(f"{row['target']:<52} {row['verdict']:<7} {row['measured']}")
    if report["notes"]:
        lines += ["", "Notes"] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines)
