"""What the benchmark measures with, beyond `up` and `serve` (started by tests/support/stack.py,
as the tests start them): a bare nginx from the same binary, wrk for GETs, /proc readings
of memory and CPU, and the server's own count of the CPU its pipeline steps use.

The bare nginx has two locations, the ceilings the stack is compared with:

- `/plain/` serves IMAGES_DIR of a running `up` with nothing but `alias`: the same file, the
  same binary, no regex location, no added headers, no access log.
- `/discard` takes an upload as `/api/` does and drops it. `return 204` would not do: nginx
  answers it at once and only discards the body afterwards, 4 KiB at a time, never buffering
  it, so the client would get its answer before its upload had been taken. Instead `/discard`
  proxies to a second server in the same nginx that answers 204, with
  `proxy_pass_request_body off`: the proxy module reads the *whole* body first
  (`ngx_http_read_client_request_body`, with the client_body_buffer_size of `/api/` taken
  from the product's template, so a body goes to memory or a temp file just as an upload does),
  then passes a bodiless request on. What remains is transport plus nginx's own buffering —
  what no worker can beat.
"""

import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from imagehost.formats import IMAGE_NAME_PATTERN, STORED, THUMB_NAME_PATTERN
from imagehost.front import TEMPLATE, find_nginx, nginx_argv
from imagehost.workers import descendants
from tests.support.stack import Running, free_port_range, terminate

# What clear_stored removes: stored originals, and their thumbnails in thumbs/.
ORIGINAL_NAME = re.compile(rf"{IMAGE_NAME_PATTERN}\Z")
THUMBNAIL_NAME = re.compile(rf"{THUMB_NAME_PATTERN}\Z")


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident since start) of `pid`, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024  # the kernel reports kB (KiB)
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (for `up`: the supervisor, workers, nginx and its workers)."""
    return [pid, *descendants(pid)]


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by the processes of `pids` that still exist."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clear_stored(images_dir: Path, keep: re.Pattern | None = None) -> None:
    """Remove stored originals and thumbnails (not rows) so long runs stay small on disk;
    names that `keep` matches (a seeded store's) stay."""
    for folder, stored_name in (
        (images_dir, ORIGINAL_NAME),
        (images_dir / "thumbs", THUMBNAIL_NAME),
    ):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if stored_name.match(entry.name) and not (keep and keep.match(entry.name)):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


# --- the server's own count of its pipeline's CPU --------------------------------------------

STEP_CPU = "imagehost_pipeline_step_cpu_seconds_total"  # by step, summed over a node's workers


def step_cpu_seconds(running: Running) -> dict[str, float] | None:
    """Step → thread CPU seconds that pipeline step has used so far on `running`'s node (its
    /api/metrics, read with the admin key); None when the server does not count them (older
    code, or METRICS=false). A step that has not run yet is missing."""
    try:
        resp = requests.get(
            f"{running.url}/api/metrics",
            headers={"Authorization": f"Bearer {running.admin_key}"},
            timeout=10,
        )
    except (OSError, requests.RequestException):
        return None
    if resp.status_code != 200:
        return None
    found = {
        sample.labels.get("step"): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
        if sample.name == STEP_CPU
    }
    return found or None


# --- bare nginx ------------------------------------------------------------------------------

BARE_CONF = """\
{user}
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {root}/temp/client_body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    types {{
{types}
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;

    upstream sink {{
        server 127.0.0.1:{sink_port};
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};

        # (a) the ceiling for image delivery: the same files, nothing else.
        location /plain/ {{
            alias {images_dir}/;
        }}

        # (b) the ceiling for uploads: the whole body is read (see bench/stack.py), then dropped.
        location = /discard {{
            client_max_body_size {max_body};
            client_body_buffer_size {body_buffer};
            proxy_pass http://sink/204;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}

    server {{
        listen 127.0.0.1:{sink_port};
        location / {{
            return 204;
        }}
    }}
}}
"""


def api_body_buffer() -> str:
    """client_body_buffer_size as the product's nginx template sets it (nginx's default: 16k)."""
    found = re.search(r"^\s*client_body_buffer_size\s+(\S+);", TEMPLATE.read_text(), re.M)
    return found.group(1) if found else "16k"


def _user_line() -> str:
    if os.geteuid() != 0:
        return ""
    # As root nginx would run its workers as `nobody`, who cannot read a 0700 temp folder.
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


@dataclass
class BareNginx:
    root: Path
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        terminate(self.proc, timeout)  # SIGTERM: nginx's fast shutdown


def start_bare_nginx(root: Path, images_dir: Path, max_body: str = "10m") -> BareNginx:
    """nginx (the binary `up` uses) with only the two ceiling locations, on free ports."""
    nginx = find_nginx()
    if nginx is None:
        raise RuntimeError("nginx is not installed")
    root.mkdir(parents=True, exist_ok=True)
    (root / "temp").mkdir(exist_ok=True)
    first = free_port_range(2)
    conf = root / "nginx.conf"
    conf.write_text(
        BARE_CONF.format(
            user=_user_line(),
            root=root.resolve(),
            port=first,
            sink_port=first + 1,
            images_dir=images_dir.resolve(),
            max_body=max_body,
            body_buffer=api_body_buffer(),
            types="\n".join(f"        {f.content_type} {f.ext};" for f in STORED.values()),
        )
    )
    log = open(root / "nginx.console", "ab")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen(
        nginx_argv(nginx, conf), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    bare = BareNginx(root=root, port=first, proc=proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"bare nginx exited {proc.returncode}: "
                + (root / "nginx.console").read_text(errors="replace")
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", first), timeout=0.5),
        ):
            return bare
        time.sleep(0.05)
    bare.stop()
    raise RuntimeError("bare nginx did not listen within 15 s")


def nginx_version() -> str:
    nginx = find_nginx()
    if nginx is None:
        return "not installed"
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


# --- wrk -------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, *, connections: int, duration_s: float, threads: int = 2) -> dict:
    """Run wrk against `url`; requests/s, p50/p99 latency (ms) and error counts from its text."""
    seconds = max(1, round(duration_s))
    argv = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    text = done.stdout
    if done.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or text}")
    out = {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "non_2xx_3xx": 0,
        "socket_errors": 0,
    }
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        out[f"p{pct}_ms"] = round(float(found.group(1)) * _UNITS[found.group(2)], 3)
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non_2xx_3xx"] = int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        out["socket_errors"] = sum(int(n) for n in found.groups())
    return out
