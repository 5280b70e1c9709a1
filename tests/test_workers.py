"""The worker pool: many workers sharing one catalog, crashes, restarts and clean stops."""

import io
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image
from support.checks import check_clean
from support.http import upload
from support.images import image_bytes, noise_png
from support.stack import start, worker_pid, worker_pids, worker_ports


@pytest.fixture
def pool(tmp_path):
    running = start("workers", tmp_path / "pool", "/api/health", WEB_SERVER_WORKERS="4")
    running.ports = worker_ports(running)
    yield running
    running.stop()


def test_parallel_uploads_across_workers(pool):
    sources = [image_bytes("PNG", (40 + i, 30), seed=i) for i in range(40)]

    def send(i: int) -> dict:
        port = pool.ports[i % len(pool.ports)]
        resp = upload(f"http://127.0.0.1:{port}", sources[i], f"img{i}.png", timeout=60)
        assert resp.status_code == 201, resp.text
        return resp.json()

    with ThreadPoolExecutor(max_workers=40) as executor:
        answers = list(executor.map(send, range(40)))
    listing = requests.get(f"http://127.0.0.1:{pool.ports[0]}/api/upload/?limit=200", timeout=10)
    assert listing.headers["X-Total-Count"] == "40" and len(listing.json()) == 40
    assert len(list(pool.images_dir.glob("*.png"))) == 40
    for i, answer in enumerate(answers):
        served = requests.get(
            f"http://127.0.0.1:{pool.ports[0]}/images/{answer['filename']}", timeout=10
        ).content
        original = Image.open(io.BytesIO(sources[i]))
        assert Image.open(io.BytesIO(served)).tobytes() == original.tobytes()
    check_clean(pool)


def test_worker_killed_mid_upload_leaves_nothing_and_comes_back(pool):
    port = pool.ports[1]
    victim = worker_pid(pool, port)
    # Random pixels do not compress: ~1 MB, past the in-memory spool, so it reaches the disk.
    body = noise_png((600, 600))
    head = (
        f"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + body[: len(body) * 3 // 4])
        temp = pool.images_dir / ".tmp"
        deadline = time.monotonic() + 10
        while not list(temp.glob(f"{victim}-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(temp.glob(f"{victim}-*")), "the upload never reached the worker"
        os.kill(victim, signal.SIGKILL)
        assert conn.recv(100) == b""  # the connection died with the worker
    deadline = time.monotonic() + 15
    replacement = None
    while time.monotonic() < deadline:
        try:
            replacement = worker_pid(pool, port)
            if (
                replacement not in (None, victim)
                and requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code
                == 200
            ):
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    assert replacement is not None and replacement != victim
    assert requests.get(f"http://127.0.0.1:{port}/api/upload/", timeout=5).json() == []
    assert list(pool.images_dir.glob("*.png")) == []
    check_clean(pool)


def test_sigterm_stops_every_worker(pool):
    pids = list(worker_pids(pool).values())
    assert len(pids) == 4
    assert pool.stop() == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
