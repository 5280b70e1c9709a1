"""The project's own docker-compose.yml, built and run for real with podman (issue 8).

Runs `podman-compose up -d --build` on a copy of the project in a temporary folder
(support/compose.py), with the base-image parameters pointing at local Debian images made by
`scripts/compose-env.sh setup`, then talks to the stack over its one published port. When it
runs: see the `podman` fixture (conftest.py).
"""

import time
from collections.abc import Iterator

import pytest
import requests
from support.compose import FIRST_WORKER_PORT, HTTP_TIMEOUT, Stack, compose_up
from support.http import uploaded
from support.images import image_bytes
from support.stack import accepts

pytestmark = pytest.mark.compose

PROJECT = "imagehost-e2e"
WORKERS = 3
# The project's .env, as a user writes it: read by the backend (env_file); the folder settings
# are the host's and must not leak into the containers, which use fixed paths.
DOTENV = (
    f"WEB_SERVER_WORKERS={WORKERS}\nIMAGES_DIR=/nonexistent/images\nLOG_DIR=/nonexistent/logs\n"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, podman) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    files = ("docker-compose.yml",)
    with compose_up(root, podman, PROJECT, files, DOTENV, ("backend", "nginx"), WORKERS) as s:
        yield s


def _access_log(stack: Stack, wait_for: str = "") -> list[str]:
    """nginx's access log on the host; nginx writes a line just after the answer, so wait (5 s
    at most) for a line containing `wait_for`."""
    path = stack.folder / "logs" / "nginx" / "access.log"
    deadline = time.monotonic() + 5
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if any(wait_for in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_start_page_and_upload_page_come_from_nginx(stack):
    home = requests.get(f"{stack.url}/", timeout=HTTP_TIMEOUT)
    assert home.status_code == 200
    assert home.headers["Content-Type"].startswith("text/html")
    assert "upload" in home.text.lower()
    page = requests.get(f"{stack.url}/upload.html", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert requests.get(f"{stack.url}/api/health", timeout=HTTP_TIMEOUT).json()


def test_upload_serve_list_delete(stack):
    multipart = uploaded(stack.url, image_bytes("PNG", seed=1), "cat.png")
    raw_resp = requests.post(
        f"{stack.url}/api/upload/",
        data=image_bytes("PNG", seed=2),
        headers={"Content-Type": "image/png"},
        timeout=HTTP_TIMEOUT,
    )
    assert raw_resp.status_code == 201, raw_resp.text
    raw = raw_resp.json()

    images = stack.folder / "images"
    for item in (multipart, raw):
        # The handed-out URL is the published port: what a user can open.
        assert item["url"] == f"{stack.url}/images/{item['filename']}"
        stored = images / item["filename"]
        assert stored.is_file(), f"{item['filename']} is not in the mounted images/"
        assert (images / "thumbs" / f"{item['id']}.webp").is_file()

        # Served by the nginx container, from the shared folder, never through a worker.
        served = requests.get(item["url"], timeout=HTTP_TIMEOUT)
        assert served.status_code == 200
        assert served.content == stored.read_bytes()
        assert served.headers["Content-Type"] == "image/png"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        request = f"GET /images/{item['filename']} "
        line = [ln for ln in _access_log(stack, request) if request in ln]
        # Logged by the static images location (its format has no upstream or request id
        # fields): nginx answered from the folder; no worker saw this request.
        assert line and "upstream=" not in line[-1] and "request_id=" not in line[-1], line
        thumb = requests.get(item["thumbnail_url"], timeout=HTTP_TIMEOUT)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"

    listing = requests.get(f"{stack.url}/api/upload/", timeout=HTTP_TIMEOUT)
    assert listing.status_code == 200
    names = [item["filename"] for item in listing.json()]
    assert names[:2] == [raw["filename"], multipart["filename"]]  # newest first

    gone = requests.delete(
        multipart["delete_url"],
        headers={"X-Delete-Token": multipart["delete_token"]},
        timeout=HTTP_TIMEOUT,
    )
    assert gone.status_code in (200, 204), gone.text
    assert not (images / multipart["filename"]).exists()
    assert not (images / "thumbs" / f"{multipart['id']}.webp").exists()
    assert requests.get(multipart["url"], timeout=HTTP_TIMEOUT).status_code == 404
    names = [
        item["filename"]
        for item in requests.get(f"{stack.url}/api/upload/", timeout=HTTP_TIMEOUT).json()
    ]
    assert multipart["filename"] not in names and raw["filename"] in names


def test_logs_land_in_the_mounted_logs_folder(stack):
    item = uploaded(stack.url, image_bytes("PNG", seed=3), "logged.png")
    app_log = (stack.folder / "logs" / "app.log").read_text()
    assert item["filename"] in app_log
    assert "POST /api/upload/" in app_log
    access = _access_log(stack, "POST /api/upload/ ")
    assert any("POST /api/upload/ " in line and " 201 " in line for line in access), access[-5:]
    # nginx and the workers share one request id per request.
    rid = next(ln for ln in reversed(access) if "POST /api/upload/ " in ln).split("request_id=")
    assert rid[1].split()[0] in app_log


def test_backend_restart_keeps_images_and_catalog(stack):
    item = uploaded(stack.url, image_bytes("PNG", seed=4), "keep.png")
    stack.podman_compose("restart", "backend")
    stack.wait_healthy("backend", "nginx")
    # nginx re-reads the config the backend wrote anew (and so the backend's new address).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = requests.get(f"{stack.url}/api/upload/", timeout=HTTP_TIMEOUT)
        if listing.status_code == 200:
            break
        time.sleep(1)
    assert listing.status_code == 200, listing.text
    assert item["filename"] in [i["filename"] for i in listing.json()]
    meta = requests.get(f"{stack.url}/api/upload/{item['filename']}", timeout=HTTP_TIMEOUT)
    assert meta.status_code == 200 and meta.json()["original_name"] == "keep.png"
    assert requests.get(item["url"], timeout=HTTP_TIMEOUT).status_code == 200
    assert (stack.folder / "data").is_dir() and any((stack.folder / "data").iterdir())


def test_only_nginx_is_published(stack):
    backend, nginx = stack.container("backend"), stack.container("nginx")
    assert stack.run("podman", "port", backend).stdout.strip() == ""
    published = stack.run("podman", "port", nginx).stdout.split()
    assert published[0] == "80/tcp" and published[-1].endswith(f":{stack.port}"), published
    still_refused = [p for p in stack.refused_before if not accepts(p, timeout=2)]
    assert still_refused == stack.refused_before, "a worker port answers on the host"
    assert stack.refused_before, "every worker port was taken on the host: nothing was checked"


def test_settings_come_from_dotenv(stack):
    nginx = stack.container("nginx")
    conf = stack.run("podman", "exec", nginx, "cat", "/etc/imagehost/nginx.conf").stdout
    servers = [
        ln.split()[1] for ln in conf.splitlines() if ln.strip().startswith("server backend:")
    ]
    assert servers == [f"backend:{FIRST_WORKER_PORT + i}" for i in range(WORKERS)]
    app_log = (stack.folder / "logs" / "app.log").read_text()
    for i in range(WORKERS):
        assert f"started worker:{FIRST_WORKER_PORT + i} " in app_log


def test_down_leaves_nothing_behind(stack):
    assert stack.ours("container") and stack.ours("network")
    stack.podman_compose("down", "-v")
    assert stack.ours("container") == []
    assert stack.ours("network") == []
    assert stack.ours("volume") == []
    assert not accepts(stack.port, timeout=2)
    # The data stays on the host.
    assert any((stack.folder / "images").glob("*.png"))
