"""The project's own docker-compose.yml, built and run for real with podman (issue 8).

Runs `podman-compose up -d --build` on a copy of the project in a temporary folder (so its
images/, logs/ and data/ are temporary), with the two base-image parameters pointing at local
Debian images made by `scripts/compose-env.sh setup`, then talks to the stack over its one
published port.

When it runs: only with IMAGEHOST_COMPOSE=1 (set by .ci/run after `scripts/compose-env.sh
setup`); a plain local run skips it, saying how to run it. With IMAGEHOST_COMPOSE=1, a missing
podman, podman-compose or base image skips too, and fails under IMAGEHOST_REQUIRE_ALL=1.

The podman settings (CONTAINERS_CONF, ...) are passed to the podman commands only; this module
never changes os.environ.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import need
from support import ROOT
from support.http import uploaded
from support.images import image_bytes
from support.stack import accepts, free_port_range

pytestmark = pytest.mark.compose

SCRIPT = ROOT / "scripts" / "compose-env.sh"
PROJECT = "imagehost-e2e"
UP_TIMEOUT = 900  # a cold build installs the dependencies from PyPI
HEALTH_TIMEOUT = 180
COMMAND_TIMEOUT = 120
HTTP_TIMEOUT = 30
FIRST_WORKER_PORT = 8000  # the image's WEB_SERVER_START_PORT
WORKERS = 3
# The project's .env, as a user writes it: read by the backend (env_file); the folder settings
# are the host's and must not leak into the containers, which use fixed paths.
DOTENV = (
    f"WEB_SERVER_WORKERS={WORKERS}\nIMAGES_DIR=/nonexistent/images\nLOG_DIR=/nonexistent/logs\n"
)
# The app's own settings never leak from the caller's shell into the stack.
APP_SETTINGS = (
    "IMAGES_DIR",
    "LOG_DIR",
    "LOGS_DIR",
    "DATA_DIR",
    "WEB_SERVER_",
    "WORKER_HOST",
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "MAX_",
    "ALLOWED_",
    "ADMIN_KEY",
    "UPLOADS",
    "LISTING",
    "STRIP_",
    "REQUEST_TIMEOUT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CONTAINERS_",
    "BUILDAH_",
    "COMPOSE_",
)


@dataclass
class Stack:
    folder: Path  # the project copy: docker-compose.yml, images/, logs/, data/
    env: dict[str, str]  # for podman and podman-compose
    compose: str  # the podman-compose executable
    url: str
    port: int
    refused_before: list[int]  # worker ports that nothing on the host listened on before `up`

    def run(self, *argv: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        done = subprocess.run(
            argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n" + (
            done.stdout[-3000:] + done.stderr[-3000:]
        )
        return done

    def podman_compose(self, *args: str, timeout: float = COMMAND_TIMEOUT):
        return self.run(self.compose, "-p", PROJECT, *args, timeout=timeout)

    def ours(self, kind: str) -> list[str]:
        """Names of this project's containers / networks / volumes that podman still has."""
        label = f"label=io.podman.compose.project={PROJECT}"
        argv = {
            "container": ["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"],
            "network": ["podman", "network", "ls", "--filter", label, "--format", "{{.Name}}"],
            "volume": ["podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}"],
        }[kind]
        return self.run(*argv).stdout.split()

    def container(self, service: str) -> str:
        names = self.run(
            "podman",
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        assert len(names) == 1, f"expected one {service} container, found {names}"
        return names[0]

    def wait_healthy(self, *services: str, timeout: float = HEALTH_TIMEOUT) -> None:
        """Run each container's own healthcheck until it passes (podman has no systemd timers
        here to run them by itself)."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        last = ""
        while pending and time.monotonic() < deadline:
            name = self.container(pending[0])
            done = subprocess.run(
                ["podman", "healthcheck", "run", name],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0:
                pending.pop(0)
                continue
            last = done.stdout + done.stderr
            time.sleep(1)
        if pending:
            logs = {s: self.logs(s) for s in services}
            pytest.fail(f"not healthy within {timeout} s: {pending} ({last.strip()})\n{logs}")

    def logs(self, service: str) -> str:
        done = subprocess.run(
            ["podman", "logs", "--tail", "40", self.container(service)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout + done.stderr


def _skip_unless_enabled() -> dict[str, str]:
    """The settings from `compose-env.sh env`, or a skip (a failure under REQUIRE_ALL)."""
    if os.environ.get("IMAGEHOST_COMPOSE") != "1":
        pytest.skip(
            "the Docker Compose test runs with IMAGEHOST_COMPOSE=1 after "
            "`sudo scripts/compose-env.sh setup` (podman, podman-compose, local base images)"
        )
    need("root", os.geteuid() == 0, "the compose test runs rootful podman: run it as root")
    need(
        "podman",
        shutil.which("podman") is not None,
        "podman is not installed: run `scripts/compose-env.sh setup`",
    )
    out = subprocess.run(
        ["bash", str(SCRIPT), "env"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    need(
        "podman-compose",
        os.access(settings["PODMAN_COMPOSE"], os.X_OK),
        f"{settings['PODMAN_COMPOSE']} is missing: run `scripts/compose-env.sh setup`",
    )
    need(
        "podman config",
        Path(settings["CONTAINERS_CONF"]).is_file(),
        f"{settings['CONTAINERS_CONF']} is missing: run `scripts/compose-env.sh setup`",
    )
    return settings


def _copy_project(dest: Path) -> None:
    """The project's files as they are in the work tree (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    settings = _skip_unless_enabled()
    folder = tmp_path_factory.mktemp("compose") / "imagehost"
    folder.mkdir()
    _copy_project(folder)
    (folder / ".env").write_text(DOTENV)
    port = free_port_range(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTINGS)}
    env.update(
        CONTAINERS_CONF=settings["CONTAINERS_CONF"],
        CONTAINERS_STORAGE_CONF=settings["CONTAINERS_STORAGE_CONF"],
        BUILDAH_FORMAT=settings["BUILDAH_FORMAT"],
        PYTHON_IMAGE=settings["PYTHON_IMAGE"],
        NGINX_IMAGE=settings["NGINX_IMAGE"],
        PORT=str(port),
    )
    for image in (settings["PYTHON_IMAGE"], settings["NGINX_IMAGE"]):
        present = subprocess.run(["podman", "image", "exists", image], env=env, timeout=60)
        need(
            "base image",
            present.returncode == 0,
            f"{image} is missing: run `scripts/compose-env.sh setup`",
        )
    workers = range(FIRST_WORKER_PORT, FIRST_WORKER_PORT + WORKERS)
    s = Stack(
        folder=folder,
        env=env,
        compose=settings["PODMAN_COMPOSE"],
        url=f"http://127.0.0.1:{port}",
        port=port,
        refused_before=[p for p in workers if not accepts(p, timeout=2)],
    )
    s.podman_compose("down", "-v")  # leftovers of an interrupted run
    try:
        s.podman_compose("up", "-d", "--build", timeout=UP_TIMEOUT)
        s.wait_healthy("backend", "nginx")
        yield s
    finally:
        subprocess.run(
            [s.compose, "-p", PROJECT, "down", "-v"],
            cwd=folder,
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        subprocess.run(
            ["bash", str(SCRIPT), "teardown"], capture_output=True, timeout=COMMAND_TIMEOUT
        )


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
