"""Faults and slow clients (issue 7): trickling connections, a full disk, a locked catalog, drift
repaired by `imagehost check`, and `up` answering from the moment it says it is ready.

A worker killed mid-upload is tested in test_workers.py
(test_worker_killed_mid_upload_leaves_nothing_and_comes_back).
"""

import contextlib
import email.message
import errno
import io
import json
import os
import re
import select
import socket
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support.checks import assert_store_clean, check_clean
from support.http import assert_error, listed, upload
from support.images import image_bytes, noise_png, pixels
from support.stack import start, start_stack, stop_stack

from imagehost import api, config, errors, messages, uploads
from imagehost.store import local as store

KINDS = [pytest.param("serve"), pytest.param("up", marks=pytest.mark.nginx)]

# --- slow and many clients -------------------------------------------------------------------

TRICKLERS = 50
REQUEST_TIMEOUT_S = 3


class Trickler:
    """One connection sending a request one byte a second, never finishing it."""

    def __init__(self, port: int, head: bytes):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(head)
        self.sock.setblocking(False)
        self.opened = time.monotonic()
        self.closed_after: float | None = None  # seconds until the server ended it

    def tick(self) -> None:
        """Send one more byte, unless the server has ended the connection."""
        if self.closed_after is not None:
            return
        readable, _, _ = select.select([self.sock], [], [], 0)
        try:
            if readable:
                self.sock.recv(65536)  # an answer (408/400) or the end: either way it is over
                raise ConnectionResetError
            self.sock.send(b"a")
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.closed_after = time.monotonic() - self.opened

    def close(self) -> None:
        self.sock.close()


def _trickle(tricklers: list[Trickler], stop: threading.Event, until: float) -> None:
    while not stop.is_set() and time.monotonic() < until:
        for t in tricklers:
            t.tick()
        stop.wait(1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_trickling_clients_do_not_block_others(tmp_path, kind):
    """50 connections sending a byte a second (half in the headers, half in the body) while a
    normal upload and list are answered, each within a one-second timeout; `serve` closes every
    trickler after REQUEST_TIMEOUT, nginx the header tricklers (the body ones never reach a
    worker: nginx reads the whole body before proxying)."""
    running = start_stack(kind, tmp_path / kind, REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S))
    tricklers: list[Trickler] = []
    stop = threading.Event()
    driver = None
    try:
        body_head = (
            b"POST /api/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        header_head = b"POST /api/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        for i in range(TRICKLERS):
            tricklers.append(Trickler(running.port, body_head if i % 2 else header_head))
        driver = threading.Thread(
            target=_trickle, args=(tricklers, stop, time.monotonic() + 4 * REQUEST_TIMEOUT_S)
        )
        driver.start()
        latencies = []
        for i in range(2):
            time.sleep(0.5)
            started = time.perf_counter()
            resp = upload(running.url, image_bytes("PNG", seed=i), f"n{i}.png", timeout=1)
            assert resp.status_code == 201, resp.text
            listed = requests.get(f"{running.url}/api/upload/", timeout=1)
            assert listed.status_code == 200
            latencies.append(time.perf_counter() - started)
            if i == 0:  # answered while every trickler was still holding its connection
                assert [t for t in tricklers if t.closed_after is not None] == []
        print(f"{kind}: upload+list under {TRICKLERS} tricklers: {max(latencies):.3f} s at most")

        deadline = time.monotonic() + REQUEST_TIMEOUT_S + 4
        expect_closed = tricklers if kind == "serve" else tricklers[0::2]  # header tricklers
        while time.monotonic() < deadline and any(t.closed_after is None for t in expect_closed):
            time.sleep(0.2)
        open_ones = [
            i for i, t in enumerate(tricklers) if t in expect_closed and not t.closed_after
        ]
        assert open_ones == [], f"never closed by the server: {open_ones}"
        longest = max(t.closed_after for t in expect_closed)
        assert longest >= REQUEST_TIMEOUT_S - 0.5  # closed by the timeout, not by accident
        if kind == "up":
            # no trickled upload ever reached a worker: only the two normal ones are logged
            uploads_logged = re.findall(
                r"POST /api/upload/ role=worker", (running.log_dir / "app.log").read_text()
            )
            assert len(uploads_logged) == 2, uploads_logged
    finally:
        stop.set()
        if driver is not None:
            driver.join(10)
        for t in tricklers:
            t.close()
        stop_stack(running)
    assert driver is not None and not driver.is_alive()


# --- disk full -------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path, size: str = "2m"):
    """A tmpfs of `size` mounted at `path` (needs root / CAP_SYS_ADMIN), unmounted after."""
    path.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not permitted'})")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)


def _fill(path, leave_bytes: int) -> None:
    """Fill the file system of `path` with a dot file until about `leave_bytes` are free."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    filler = path / ".filler"
    with open(filler, "ab") as out:
        out.write(b"\0" * max(0, free - leave_bytes))


def _free(path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@pytest.mark.parametrize(
    "stage, side, free_factor",
    [
        # ~1.1 MB: past uploads.SPOOL_MEMORY_BYTES, so the body itself is spooled to disk
        ("while-receiving", 600, 0.5),
        # ~270 KB: received in memory; the disk fills while the stored copy is written
        ("while-writing-the-stored-copy", 300, 0.5),
    ],
)
def test_disk_full_refuses_cleanly_and_recovers(tmp_path, stage, side, free_factor):
    """ENOSPC at any stage: 507 storage_full, no file and no row; with space back, it works."""
    with small_tmpfs(tmp_path / "images", size="4m") as images_dir:
        running = start_stack("serve", tmp_path / "srv", IMAGES_DIR=str(images_dir))
        try:
            data = noise_png((side, side))  # 3 bytes a pixel: no compression shrinks it
            assert (len(data) > uploads.SPOOL_MEMORY_BYTES) == (stage == "while-receiving")
            _fill(images_dir, int(len(data) * free_factor))
            resp = upload(running.url, data, "big.png")
            assert_error(resp, 507, "storage_full")
            visible = sorted(p.name for p in images_dir.iterdir() if p.is_file())
            assert visible == [".filler"]
            assert list((images_dir / "thumbs").iterdir()) == []
            assert listed(running.url) == []
            assert_store_clean(running)

            (images_dir / ".filler").unlink()
            resp = upload(running.url, data, "big.png")
            assert resp.status_code == 201, resp.text
            served = requests.get(resp.json()["url"], timeout=10).content
            assert pixels(served) == pixels(data)
            check_clean(running)
        finally:
            stop_stack(running)


class _Headers(email.message.Message):
    """Case-insensitive request headers, as http.server hands them over."""


def _request(body: bytes, content_type: str) -> messages.Request:
    headers = _Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    return messages.Request(
        method="POST",
        path="/api/upload/",
        query={},
        headers=headers,
        body=messages.Body(io.BytesIO(body), len(body), 10 * 1024 * 1024),
        base_url="http://127.0.0.1",
        request_id="fault",
        client="127.0.0.1",
    )


def test_disk_full_at_commit_refuses_cleanly(tmp_path, monkeypatch):
    """The write that fails is the fsync before the rename (where some file systems report
    ENOSPC): 507, nothing visible, no row. Injected in-process, so it runs without a tmpfs."""
    settings = config.load(
        {"IMAGES_DIR": str(tmp_path / "images"), "DATA_DIR": str(tmp_path / "data")},
        env_file=None,
    )
    app = api.App(settings)
    data = image_bytes("PNG", seed=5)

    def full(_path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "fsync_path", full)
    with pytest.raises(errors.StorageFull):
        app.handle(_request(data, "image/png"))
    assert app.store.image_files() == [] and app.store.thumbnail_names() == []
    assert list(app.store.temp.iterdir()) == []
    assert app.catalog.filenames() == set()
    monkeypatch.undo()
    answer = app.handle(_request(data, "image/png"))
    assert answer.status == 201
    assert len(app.store.image_files()) == 1 and len(app.catalog.filenames()) == 1
    app.catalog.close()


# --- the catalog locked by a long writer -------------------------------------------------------


def test_catalog_locked_by_a_long_writer(server):
    kept = upload(server.url, image_bytes("PNG", seed=1), "kept.png", timeout=10).json()
    lock = sqlite3.connect(server.data_dir / "catalog.sqlite3", isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # held until both answers are in: > the 5 s timeout
        with ThreadPoolExecutor(max_workers=2) as pool:
            uploading = pool.submit(upload, server.url, image_bytes("PNG", seed=2), "new.png")
            delete = pool.submit(
                requests.delete,
                kept["delete_url"],
                headers={"X-Delete-Token": kept["delete_token"]},
                timeout=30,
            )
            # WAL: readers are not blocked by a writer
            assert requests.get(f"{server.url}/api/upload/", timeout=2).status_code == 200
            upload_answer, delete_answer = uploading.result(), delete.result()
        assert_error(upload_answer, 503, "unavailable")
        assert_error(delete_answer, 503, "unavailable")
        # nothing of the refused upload; the image whose delete failed is whole
        assert sorted(p.name for p in server.images_dir.glob("*.png")) == [kept["filename"]]
        assert list((server.images_dir / "thumbs").iterdir()) == [
            server.images_dir / "thumbs" / f"{kept['id']}.webp"
        ]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert [i["filename"] for i in listed(server.url)] == [kept["filename"]]
    again = upload(server.url, image_bytes("PNG", seed=2), "new.png", timeout=10)
    assert again.status_code == 201, again.text
    gone = requests.delete(
        kept["delete_url"], headers={"X-Delete-Token": kept["delete_token"]}, timeout=10
    )
    assert gone.status_code == 204
    check_clean(server)


# --- drift repaired by `imagehost check` ---------------------------------------------------------


def test_check_repairs_drift(server):
    images = [
        upload(server.url, image_bytes("PNG", (24, 16), seed=i), f"{i}.png", timeout=10).json()
        for i in range(3)
    ]
    no_file, no_row, untouched = images
    (server.images_dir / no_file["filename"]).unlink()
    with sqlite3.connect(server.data_dir / "catalog.sqlite3") as db:
        db.execute("DELETE FROM images WHERE filename = ?", (no_row["filename"],))
    orphan = server.images_dir / "thumbs" / "OrphanThumb12345.webp"
    orphan.write_bytes(image_bytes("WEBP", seed=9))
    stale = server.images_dir / ".tmp" / "4194399-deadbeef.upload"  # above pid_max: no process
    stale.write_bytes(b"half an upload")

    dry = server.cli("check", "--dry-run")
    assert dry.returncode == 1 and orphan.exists() and stale.exists()
    repaired = server.cli("check")
    assert repaired.returncode == 1, repaired.stderr  # it found (and fixed) drift
    lines = set(repaired.stdout.strip().splitlines())
    assert lines == {
        f"missing file: {no_file['filename']}",
        f"unindexed file: {no_row['filename']}",
        "orphan thumbnail: thumbs/OrphanThumb12345.webp",
        f"stale temp file: {stale.name}",
    }, repaired.stdout
    after = server.cli("check", "--dry-run")
    assert after.returncode == 0, after.stdout
    assert after.stdout.strip() == "store clean: catalog and image folder agree"

    assert_error(requests.get(no_file["delete_url"], timeout=10), 404, "not_found")
    assert requests.get(untouched["delete_url"], timeout=10).status_code == 200
    indexed = requests.get(no_row["delete_url"], timeout=10)
    assert indexed.status_code == 200 and indexed.json()["width"] == 24
    # re-indexed without a delete token: its old token no longer works, the admin key does
    token = requests.delete(
        no_row["delete_url"], headers={"X-Delete-Token": no_row["delete_token"]}, timeout=10
    )
    assert_error(token, 403, "forbidden")
    admin = requests.delete(
        no_row["delete_url"], headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=10
    )
    assert admin.status_code == 204
    check_clean(server)


# --- `up` is ready when it says so ---------------------------------------------------------------


@pytest.mark.nginx
def test_up_answers_as_soon_as_it_is_ready(tmp_path):
    """A client that tries while `up` is starting (a browser reloading, a health check) must not
    make the API fail after `up` has said it is ready (nginx marking every worker down for
    fail_timeout used to cause ~2 s of 502s; now max_fails=0)."""
    # "/" is served by nginx itself: this returns as soon as nginx listens, workers or not
    running = start("up", tmp_path / "up", "/", WEB_SERVER_WORKERS="2")
    try:
        deadline = time.monotonic() + 30
        while "nginx on http" not in running.console:  # `up`: workers and nginx are ready
            assert time.monotonic() < deadline, running.console
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{running.url}/api/health", timeout=2)
            time.sleep(0.05)
        statuses = [
            requests.get(f"{running.url}/api/health", timeout=5).status_code for _ in range(20)
        ]
    finally:
        stop_stack(running)
    assert statuses == [200] * 20, statuses


def test_a_file_with_as_many_links_as_allowed_is_not_shared_again(tmp_path, monkeypatch):
    """ext4 allows 65,000 links to a file: past that an upload of the same bytes is stored as
    a file of its own (201), not refused."""
    settings = config.load(
        {"IMAGES_DIR": str(tmp_path / "images"), "DATA_DIR": str(tmp_path / "data")},
        env_file=None,
    )
    app = api.App(settings)
    data = image_bytes("PNG", seed=6)
    first = json.loads(app.handle(_request(data, "image/png")).body)
    real_link = os.link

    def at_the_limit(source, target, *args, **kwargs):
        if Path(source).name in (first["filename"], f"{first['id']}.webp"):
            raise OSError(errno.EMLINK, "Too many links")
        return real_link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", at_the_limit)
    answer = app.handle(_request(data, "image/png"))
    assert answer.status == 201
    second = json.loads(answer.body)["filename"]
    assert not app.store.same_file(first["filename"], second)
    monkeypatch.undo()
    assert sorted(app.store.image_files()) == sorted([first["filename"], second])
    assert list(app.store.temp.iterdir()) == []
