"""Load with integrity (issue 7): 1,000 uploads from 32 concurrent clients, mixed with lists and
deletes, across 4 workers behind nginx. Every acknowledged upload is there, pixel for pixel;
every acknowledged delete is gone; the catalog and the folder agree.

Long: runs only with IMAGEHOST_LOAD=1 (as .ci/run sets). Prints its figures for SECURITY.md.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.images import image_bytes, pixels
from support.stack import start_stack, stop_stack

from imagehost import formats

pytestmark = [pytest.mark.load, pytest.mark.nginx]

UPLOADS = 1000
CLIENTS = 32
WORKERS = 4
LIST_EVERY = 5  # a client lists after every 5th of its uploads
DELETE_EVERY = 8  # and deletes one of its own after every 8th
# The formats the load mixes: all but AVIF, which has its own tests (test_images, test_hostile).
FORMATS = [(f.pil_name, f.content_type) for f in formats.STORED.values() if f.name != "avif"]


def _source(index: int) -> tuple[bytes, str]:
    fmt, ctype = FORMATS[index % len(FORMATS)]
    return image_bytes(fmt, (20 + index % 13, 12 + index % 7), seed=index), ctype


def test_uploads_under_load_lose_nothing(tmp_path):
    running = start_stack("up", tmp_path / "load", WEB_SERVER_WORKERS=str(WORKERS))
    acknowledged: dict[str, int] = {}  # filename → source index
    deleted: set[str] = set()
    refused: list[tuple[int, int, str]] = []
    lists = 0
    lock = threading.Lock()

    def client(number: int) -> None:
        nonlocal lists
        mine: list[dict] = []
        with requests.Session() as http:
            for step, index in enumerate(range(number, UPLOADS, CLIENTS), start=1):
                data, ctype = _source(index)
                resp = http.post(
                    f"{running.url}/api/upload/",
                    files={"file": (f"load-{index}", data, ctype)},
                    timeout=60,
                )
                if resp.status_code != 201:
                    with lock:
                        refused.append((index, resp.status_code, resp.text[:200]))
                    continue
                image = resp.json()
                mine.append(image)
                with lock:
                    acknowledged[image["filename"]] = index
                if step % LIST_EVERY == 0:
                    page = http.get(f"{running.url}/api/upload/?limit=50", timeout=60)
                    assert page.status_code == 200, page.text
                    with lock:
                        lists += 1
                if step % DELETE_EVERY == 0:
                    victim = mine.pop(0)
                    gone = http.delete(
                        victim["delete_url"],
                        headers={"X-Delete-Token": victim["delete_token"]},
                        timeout=60,
                    )
                    assert gone.status_code == 204, gone.text
                    with lock:
                        deleted.add(victim["filename"])

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for future in [pool.submit(client, n) for n in range(CLIENTS)]:
                future.result()
        duration = time.monotonic() - started

        kept = {name: index for name, index in acknowledged.items() if name not in deleted}
        lost, differing = [], []
        with requests.Session() as http:
            for name, index in kept.items():
                served = http.get(f"{running.url}/images/{name}", timeout=30)
                if served.status_code != 200:
                    lost.append(name)
                elif pixels(served.content) != pixels(_source(index)[0]):
                    differing.append(name)
            for name in deleted:
                assert http.get(f"{running.url}/images/{name}", timeout=30).status_code == 404
                meta = http.get(f"{running.url}/api/upload/{name}", timeout=30)
                assert meta.status_code == 404

            listed, url = [], f"{running.url}/api/upload/?limit=200"
            for _ in range(UPLOADS // 200 + 2):  # bounded walk over the pages
                page = http.get(url, timeout=30)
                listed += [i["filename"] for i in page.json()]
                if "Link" not in page.headers:
                    break
                url = page.headers["Link"].split(";")[0].strip("<>")
            total = int(page.headers["X-Total-Count"])

        on_disk = {p.name for p in running.images_dir.iterdir() if p.is_file()}
        thumbs = {p.stem for p in (running.images_dir / "thumbs").iterdir()}
        check = running.cli("check", "--dry-run")
        print(
            f"\nload: {UPLOADS} uploads from {CLIENTS} clients over {WORKERS} workers behind "
            f"nginx in {duration:.1f} s: {len(acknowledged)} acknowledged, {len(refused)} "
            f"refused, {lists} lists, {len(deleted)} deletes; lost: {len(lost)}, "
            f"differing: {len(differing)}"
        )
        assert refused == [], refused[:5]
        assert lost == [] and differing == []
        assert sorted(listed) == sorted(kept) and total == len(kept)
        assert on_disk == set(kept)
        assert thumbs == {name.split(".")[0] for name in kept}
        assert check.returncode == 0, check.stdout
        assert list((running.images_dir / ".tmp").iterdir()) == []
    finally:
        stop_stack(running)
