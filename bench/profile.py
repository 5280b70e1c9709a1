"""Where a worker's time goes: py-spy samples of the one worker of `up` during uploads
(`python -m bench --profile SECONDS`)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.stack import stop_stack, worker_pids

from . import stack
from .fixtures import Fixture
from .stages import CLIENTS, start_up, upload_load


def profile_uploads(work: Path, fixture: Fixture, seconds: float, clients: int = CLIENTS) -> dict:
    """py-spy samples of the one worker of `up` while `clients` upload `fixture` for `seconds`.

    Returns the functions with the largest shares of the samples: inclusive (the function or
    anything it calls is running) and self (the innermost frame). Idle threads are not sampled.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    up = start_up(work / "profile", 1)
    try:
        (pid,) = worker_pids(up).values()
        upload_load(up.port, fixture, clients, duration_s=0.5)  # warm-up
        raw = work / "profile.txt"
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
            + ["--duration", str(round(seconds) + 1), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        cpu0 = stack.cpu_seconds(pid)
        result = upload_load(up.port, fixture, clients, duration_s=seconds)
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
        stop_stack(up)
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


def summary(found: dict) -> str:
    """profile_uploads' result as text: the load, then the top functions by share."""
    lines = [
        f"py-spy, 1 worker, {found['fixture']} uploads, {found['clients']} clients, "
        f"{found['seconds']} s: {found['load']['requests_per_s']} req/s, p50 "
        f"{found['load']['p50_ms']} ms; worker CPU {found['worker_cpu_ms_per_upload']} ms "
        f"per upload ({found['worker_cpu_share']:.0%} of a core); {found['samples']} "
        f"samples, {found['busy_share']:.0%} not waiting"
    ]
    for kind in ("inclusive", "self"):
        lines.append(f"\n{kind} share of the non-waiting samples")
        lines += [f"  {share:6.1%}  {name}" for name, share in found[kind]]
    return "\n".join(lines)
