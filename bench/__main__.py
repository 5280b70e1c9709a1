"""The benchmark, one command: `python -m bench [--quick] [--runs N]` (also `make bench`).

Starts everything itself on 127.0.0.1 (`up` with nginx and its workers, `serve`, a bare nginx
from the same binary), measures the stages of bench/README.md, prints a table with each
target's PASS/MISS and writes the same numbers, with the machine they came from, to
bench/results/<timestamp>.json. Every measurement is repeated `--runs` times and the median
reported; each one is bounded by a duration or a count, and the whole run by a time budget.
`--baseline` compares the upload cells with an earlier results file (before/after a change).
"""

import argparse
import contextlib
import datetime
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from tests.support import ROOT

from . import profile, report, stack
from .fixtures import INSTALL_PHOTOS, SMALL_JPEG, make_fixtures, sample_photos
from .stages import CLIENTS, STAGES, UPLOAD_TARGETS, Bench, Plan

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of everything, < 2 minutes")
    parser.add_argument("--runs", type=int, help="repeats of each measurement (default 3, quick 1)")
    parser.add_argument("--only", help=f"comma-separated stages: {','.join(STAGES)}")
    parser.add_argument(
        "--targets",
        default=",".join(UPLOAD_TARGETS),
        help=f"comma-separated targets of the upload stage (default {','.join(UPLOAD_TARGETS)}; "
        "leaving out serve saves a third of its time)",
    )
    parser.add_argument(
        "--baseline",
        metavar="RESULTS_JSON",
        help="an earlier run's results file (results/<file>.json, from bench/ or here): print "
        "each upload cell's req/s over the same cell there, and check the targets relative to it",
    )
    parser.add_argument(
        "--profile",
        type=float,
        metavar="SECONDS",
        help=f"instead: py-spy one worker during 50 KB uploads ({CLIENTS} clients) and print "
        "where its time goes",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(STAGES):
        parser.error(f"--only: no stage {', '.join(sorted(only - set(STAGES)))}")
    targets = tuple(t for t in UPLOAD_TARGETS if t in args.targets.split(","))
    if set(args.targets.split(",")) - set(targets) or not targets:
        parser.error(f"--targets: choose from {','.join(UPLOAD_TARGETS)}")
    baseline = None
    if args.baseline:
        found = [
            p for p in (Path(args.baseline), RESULTS_DIR.parent / args.baseline) if p.is_file()
        ]
        if not found:
            parser.error(f"--baseline: no file {args.baseline}")
        baseline = found[0].resolve()
    runs = args.runs or (1 if args.quick else 3)
    if not 1 <= runs <= 9:
        parser.error("--runs must be between 1 and 9")
    plan = Plan.for_mode(args.quick, runs)
    if stack.nginx_version() == "not installed" or not stack.have_wrk():
        print("bench: needs nginx and wrk (apt-get install nginx wrk)", file=sys.stderr)
        return 2
    if sample_photos() is None:
        print(f"bench: needs scikit-image's sample photos: {INSTALL_PHOTOS}", file=sys.stderr)
        return 2
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    date = datetime.datetime.now(datetime.UTC)
    load_before = report.load_average()
    if load_before > 1:
        print(f"bench: load average is {load_before:.2f}; numbers will be noisy", file=sys.stderr)
    host = report.machine()  # before the stages: the checkout may change while they run
    work = Path(tempfile.mkdtemp(prefix="imagehost-bench-"))
    if args.profile:
        try:
            found = profile.profile_uploads(
                work, make_fixtures()[SMALL_JPEG], min(args.profile, 60)
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(profile.summary(found))
        return 0
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        fixtures = make_fixtures()
        bench = Bench(plan, runs, fixtures, work, cleanup, targets)
        bench.run(only)
        seconds = bench.elapsed()
    if baseline:
        earlier = json.loads(baseline.read_text())
        named = baseline.relative_to(ROOT) if baseline.is_relative_to(ROOT) else baseline
        bench.results["baseline"] = report.compare(bench.results, earlier, str(named))
    record = {
        "date": date.isoformat(timespec="seconds"),
        "command": command,
        "runs": runs,
        "quick": args.quick,
        "plan": asdict(plan),
        "seconds": round(seconds, 1),
        "machine": host,
        "load_before": load_before,
        "load_after": report.load_average(),
        "fixtures": [
            {"name": f.name, "bytes": len(f.data), "pixels": f.pixels, "type": f.content_type}
            for f in fixtures.values()
        ],
        "results": bench.results,
        "notes": bench.notes,
        "targets": report.targets(bench.results),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{date.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(report.table(record))
    print(f"\nwritten: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
