"""nginx in front (issue 3): the rendered config, and `imagehost up` run with real nginx.

Which worker answered is read from LOG_DIR/app.log (`role=worker:PORT rid=…`), matched by the
request id nginx hands back; no header tells a client which worker it reached.
"""

import io
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import STACK_MODES
from PIL import Image
from support.checks import put_by_hand, remove_by_hand, stored_keys
from support.http import assert_error, upload, uploaded
from support.images import image_bytes
from support.stack import (
    accepts,
    base_env,
    free_port_range,
    run_cli,
    start_stack,
    stop_stack,
    wait_for,
    worker_pid,
    worker_ports,
)

from imagehost import config, front, headers, workers
from imagehost.store.keys import thumbnail_key


def settings_for(root: Path, **env: str) -> config.Settings:
    values = {
        "IMAGES_DIR": str(root / "images"),
        "LOG_DIR": str(root / "logs"),
        "DATA_DIR": str(root / "data"),
        "PORT": "8080",
        "WEB_SERVER_WORKERS": "4",
        "WEB_SERVER_START_PORT": "8000",
    }
    return config.load({**values, **env}, env_file=None)


def upstream_servers(text: str) -> list[str]:
    block = re.search(r"upstream imagehost_workers \{(.*?)\}", text, re.S).group(1)
    return re.findall(r"^\s*server (\S+)", block, re.M)


# --- processes -----------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone only once reaped)."""
    return Path(f"/proc/{pid}").exists()


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command line."""
    return {child: cmd for child, (_, cmd) in workers.descendants(pid).items()}


def nginx_master_pid(running) -> int | None:
    for pid, cmd in descendants(running.proc.pid).items():
        if cmd.startswith("nginx: master"):
            return pid
    return None


def workers_of(running, request_ids: list[str], timeout: float = 10) -> dict[str, int]:
    """request id → port of the worker that logged it (waits until every id is logged)."""
    found: dict[str, int] = {}

    def scan() -> bool:
        for line in (running.log_dir / "app.log").read_text().splitlines():
            rid = re.search(r"\brid=(\S+)", line)
            role = re.search(r"\brole=worker:(\d+)", line)
            if rid and role and rid.group(1) in request_ids:
                found[rid.group(1)] = int(role.group(1))
        return len(found) == len(set(request_ids))

    wait_for(scan, timeout, "every request in app.log")
    return found


def access_line(running, request_id: str) -> str:
    """nginx's access-log line for a request (nginx writes it just after answering)."""
    path = running.log_dir / "nginx" / "access.log"

    def find() -> str | None:
        lines = path.read_text().splitlines()
        return next((line for line in lines if f"request_id={request_id}" in line), None)

    return wait_for(find, 10, f"request {request_id} in nginx's access log")


# --- fixtures --------------------------------------------------------------------------------


# Every `up` here runs with local files + SQLite and with a bucket + PostgreSQL (issue 12,
# test 1); the tests that start no `up` (the rendered config, fake workers) need no mode.


@pytest.fixture(scope="module", params=STACK_MODES)
def stack(request, tmp_path_factory, mode_settings):
    """One `imagehost up` with 4 workers and MAX_UPLOAD_MB=1, for the tests that change nothing."""
    with mode_settings(request.param) as settings:
        root = tmp_path_factory.mktemp(f"up-{request.param}")
        running = start_stack("up", root, WEB_SERVER_WORKERS="4", MAX_UPLOAD_MB="1", **settings)
        yield running
        stop_stack(running)


@pytest.fixture(params=STACK_MODES)
def up_factory(request, tmp_path):
    """Start a private `imagehost up` (for tests that kill or stop its processes)."""
    started = []
    settings = {} if request.param == "local" else request.getfixturevalue("remote_settings")

    def make(**overrides: str):
        overrides.setdefault("WEB_SERVER_WORKERS", "4")
        running = start_stack("up", tmp_path / f"up{len(started)}", **settings, **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        stop_stack(running)


# --- the rendered config ---------------------------------------------------------------------


@pytest.mark.nginx
def test_rendered_config_passes_nginx_t(tmp_path):
    nginx = front.find_nginx()
    conf = front.prepare_runtime(settings_for(tmp_path))
    assert front.check_config(nginx, conf) is None
    assert conf.parent == tmp_path / "data" / "run" / "nginx"


@pytest.mark.parametrize("workers", [1, 4, 10])
def test_upstream_lists_exactly_the_worker_ports(tmp_path, workers):
    text = front.render(settings_for(tmp_path, WEB_SERVER_WORKERS=str(workers)))
    assert upstream_servers(text) == [f"127.0.0.1:{8000 + i}" for i in range(workers)]
    assert re.search(r"^\s*keepalive \d+;", text, re.M)


def test_config_follows_the_settings(tmp_path):
    settings = settings_for(
        tmp_path, MAX_UPLOAD_MB="7", HOST="127.0.0.2", PORT="9099", REQUEST_TIMEOUT="12"
    )
    text = front.render(settings)
    assert "client_max_body_size 7232k;" in text  # 7 MiB + 64 KiB of multipart framing
    assert "listen 127.0.0.2:9099;" in text
    assert "client_body_timeout 12s;" in text
    assert "keepalive_timeout 6s;" in text  # upstream idle: below the workers' 12 s
    assert "max_fails=0;" in text  # never all marked down at once (see the template)
    assert f"alias {(tmp_path / 'images').resolve()}/$imagehost_file;" in text
    assert f"access_log {(tmp_path / 'logs').resolve()}/nginx/access.log imagehost " in text
    for header in ("X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "Host"):
        assert f"proxy_set_header {header} " in text
    assert "proxy_request_buffering on;" in text
    # retry on another worker, but never a POST/DELETE (no "non_idempotent")
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert not re.search(r"proxy_next_upstream [^;]*non_idempotent", text)
    assert "@@" not in text


def test_ipv6_and_wildcard_addresses(tmp_path):
    text = front.render(
        settings_for(tmp_path, HOST="::1", WORKER_HOST="0.0.0.0", WEB_SERVER_WORKERS="2")
    )
    assert "listen [::1]:8080;" in text
    assert upstream_servers(text) == ["127.0.0.1:8000", "127.0.0.1:8001"]


def test_port_zero_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="PORT=0"):
        front.render(settings_for(tmp_path, PORT="0"))


@pytest.mark.nginx
def test_docker_rendering(tmp_path):
    nginx = front.find_nginx()
    settings = settings_for(tmp_path, WEB_SERVER_WORKERS="3", WEB_SERVER_START_PORT="8000")
    text = front.render(settings, docker=True)
    assert upstream_servers(text) == ["backend:8000", "backend:8001", "backend:8002"]
    assert "listen 80;" in text
    assert "user nginx;" in text
    for path in (
        "/srv/web;",
        "/srv/images/$imagehost_file;",
        "/var/log/imagehost/nginx/",
        "/var/cache/nginx/client_body;",
        "/tmp/nginx.pid;",
    ):
        assert path in text, path
    assert str(tmp_path) not in text
    # nginx -t on the same rendering, with this machine's paths for the container's, and the
    # service name made resolvable (nginx resolves upstream names while checking).
    (tmp_path / "web").mkdir()
    local = front.Paths(
        web_dir=str(tmp_path / "web"),
        images_dir=str(tmp_path / "img"),
        log_dir=str(tmp_path / "log"),
        temp_dir=str(tmp_path / "tmp"),
        pid_file=str(tmp_path / "nginx.pid"),
    )
    for folder in (local.log_dir, local.temp_dir):
        Path(folder).mkdir()
    checked = front.render(settings, docker=True, paths=local, user="")
    checked = checked.replace("server backend:", "server 127.0.0.1:")
    checked = checked.replace("listen 80;", "listen 127.0.0.1:8080;")
    conf = tmp_path / "docker-nginx.conf"
    conf.write_text(checked)
    assert front.check_config(nginx, conf) is None


def test_nginx_config_command(tmp_path, capsys):
    settings = settings_for(tmp_path)
    assert front.write_config(settings, None, docker=False) == 0
    assert capsys.readouterr().out == front.render(settings)
    out = tmp_path / "out" / "nginx.conf"
    assert front.write_config(settings, str(out), docker=True) == 0
    assert out.read_text() == front.render(settings, docker=True)


def test_up_without_nginx_falls_back_to_serve(tmp_path, monkeypatch, capsys):
    from imagehost import __main__ as cli

    served = []
    monkeypatch.setattr(front, "find_nginx", lambda: None)
    monkeypatch.setattr(cli, "serve", lambda s: served.append(s) or 0)
    settings = settings_for(tmp_path)
    assert cli.up(settings) == 0
    assert served == [settings]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "nginx is not installed" in out[0] and "serve" in out[0]


class DroppingWorker:
    """A stand-in worker that reads each request and closes without answering (a crash)."""

    def __init__(self, port: int):
        self.methods: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                if data:
                    self.methods.append(data.split(b" ", 1)[0].decode())


@pytest.fixture
def nginx_before_dying_workers(tmp_path) -> Iterator[tuple[str, list[DroppingWorker]]]:
    """The rendered nginx in front of two DroppingWorkers: (its URL, the workers)."""
    settings = settings_for(
        tmp_path,
        WEB_SERVER_WORKERS="2",
        WEB_SERVER_START_PORT=str(free_port_range(2)),
        PORT=str(free_port_range(1)),
    )
    workers = [DroppingWorker(port) for port in settings.worker_ports]
    conf = front.prepare_runtime(settings)
    proc = subprocess.Popen(front.nginx_argv(front.find_nginx(), conf))
    try:
        wait_for(lambda: accepts(settings.port), what="nginx")
        yield f"http://127.0.0.1:{settings.port}", workers
    finally:
        proc.terminate()
        proc.wait(10)
        for worker in workers:
            worker.sock.close()


@pytest.mark.nginx
def test_only_idempotent_requests_are_retried_on_another_worker(nginx_before_dying_workers):
    url, workers = nginx_before_dying_workers
    post = requests.post(f"{url}/api/upload/", data=b"x" * 100, timeout=10)
    assert_error(post, 502, "bad_gateway")
    assert sorted(m for w in workers for m in w.methods) == ["POST"]  # not sent twice
    get = requests.get(f"{url}/api/upload/", timeout=10)
    assert_error(get, 502, "bad_gateway")
    assert [w.methods.count("GET") for w in workers] == [1, 1]  # tried on each


@pytest.mark.nginx
def test_a_delete_is_never_passed_to_a_second_worker(nginx_before_dying_workers):
    """A worker that dies mid-delete may have deleted already: a second worker would answer
    404 for a delete that worked. nginx answers 502 instead and sends it to one worker only."""
    url, workers = nginx_before_dying_workers
    for attempt in range(2):
        gone = requests.delete(
            f"{url}/api/upload/AbCdEfGhIjKlMnOp.png?x=1",
            headers={"X-Delete-Token": "t"},
            timeout=10,
        )
        assert_error(gone, 502, "bad_gateway")
        assert sorted(m for w in workers for m in w.methods) == ["DELETE"] * (attempt + 1)


# --- `imagehost up` with real nginx ----------------------------------------------------------


@pytest.mark.nginx
def test_requests_reach_every_worker(stack):
    with requests.Session() as http:
        ids = []
        for _ in range(200):
            resp = http.get(f"{stack.url}/api/upload/", timeout=10)
            assert resp.status_code == 200
            ids.append(resp.headers["X-Request-ID"])
    assert len(set(ids)) == 200
    ports = workers_of(stack, ids)
    assert set(ports.values()) == set(worker_ports(stack))


@pytest.mark.nginx
def test_workers_see_the_client_through_nginx(stack):
    resp = upload(stack.url, image_bytes("PNG"), name="photo.png")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    # Host passed through: handed-out URLs point at nginx, not at a worker port
    assert image["url"] == f"{stack.url}/images/{image['filename']}"
    rid = resp.headers["X-Request-ID"]
    assert access_line(stack, rid)  # the same id in nginx's access log and in app.log
    assert workers_of(stack, [rid])[rid] in worker_ports(stack)


@pytest.mark.nginx
def test_body_over_the_limit_is_refused_by_nginx(stack):
    too_big = b"\xff" * (3 * 1024 * 1024)  # MAX_UPLOAD_MB=1
    resp = requests.post(
        f"{stack.url}/api/upload/", data=too_big, headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert_error(resp, 413, "too_large")
    rid = resp.headers["X-Request-ID"]
    # nginx answered without a worker: its access log names no upstream for this request
    line = access_line(stack, rid)
    assert '" 413 ' in line and "upstream=- " in line
    # the same for a chunked body, whose size nginx learns only while reading it
    chunked = requests.post(
        f"{stack.url}/api/upload/",
        data=iter([too_big]),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert_error(chunked, 413, "too_large")


@pytest.mark.nginx
def test_nginx_errors_on_the_api_are_json(stack):
    # a body over the limit on any API path, and an extension that must not pick the type
    resp = requests.post(f"{stack.url}/api/x.html", data=b"x" * (2 * 1024 * 1024), timeout=30)
    assert_error(resp, 413, "too_large")


@pytest.mark.nginx
@pytest.mark.parametrize(
    "path",
    [
        "/images/.anything",
        "/images/.tmp/x.part",
        "/images/.tmp/AAAAAAAAAAAAAAAA.jpg",
        "/images/%2eanything",
        "/images/AAAAAAAAAAAAAAAA.jpg.part",
        "/images/AAAAAAAAAAAAAAAA.html",
        "/images/AAAAAAAAAAAAAAAA.svg",
        "/images/short.jpg",
        "/images/",
        "/images/thumbs/",
        "/images/thumbs/AAAAAAAAAAAAAAAA.png",
        "/images/thumbs/../.tmp/x.part",
        "/.env",
        "/js/.secret",
    ],
)
def test_only_stored_names_are_served(stack, path):
    """Only names the store hands out are served, whatever else lies in the folder or bucket."""
    secret = b"<html><script>alert('not an image')</script></html>"
    for name in (
        ".anything",
        ".tmp/x.part",
        ".tmp/AAAAAAAAAAAAAAAA.jpg",
        "AAAAAAAAAAAAAAAA.jpg.part",
        "AAAAAAAAAAAAAAAA.html",
        "AAAAAAAAAAAAAAAA.svg",
        "short.jpg",
        "thumbs/AAAAAAAAAAAAAAAA.png",  # thumbnails are .jpg or .webp
    ):
        put_by_hand(stack, name, secret)
    resp = requests.get(stack.url + path, timeout=10, allow_redirects=False)
    assert resp.status_code == 404
    assert b"alert" not in resp.content


@pytest.mark.nginx
def test_an_upload_named_html_is_never_served_as_html(stack):
    # an image whose name and declared type say HTML is stored under its detected format
    resp = upload(stack.url, image_bytes("PNG"), name="x.html", ctype="text/html")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image["filename"].endswith(".png") and image["original_name"] == "x.html"
    served = requests.get(image["url"], timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    # HTML itself, whatever it is called, is refused and never stored
    refused = upload(
        stack.url, b"<html><script>alert(1)</script></html>", name="x.png", ctype="image/png"
    )
    assert_error(refused, 415, "unsupported_type")


@pytest.mark.nginx
def test_frontend_headers_and_gzip(stack):
    page = requests.get(f"{stack.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"]
    upload_page = requests.get(f"{stack.url}/upload.html", timeout=10)
    assert upload_page.status_code == 200
    css = max((front.WEB_DIR / "css").glob("*.css"), key=lambda p: p.stat().st_size)
    styled = requests.get(
        f"{stack.url}/css/{css.name}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert styled.headers["Content-Type"].startswith("text/css")
    if css.stat().st_size >= 512:
        assert styled.headers["Content-Encoding"] == "gzip"


@pytest.mark.nginx
def test_gets_survive_a_killed_worker(up_factory):
    running = up_factory()
    victim_port = worker_ports(running)[1]
    victim = worker_pid(running, victim_port)
    os.kill(victim, signal.SIGKILL)
    with requests.Session() as http:
        for _ in range(60):
            resp = http.get(f"{running.url}/api/upload/", timeout=10)
            assert resp.status_code == 200, resp.text
            resp = http.get(f"{running.url}/api/health", timeout=10)
            assert resp.status_code == 200, resp.text
    # the supervisor brings it back: a new process listening on the same port …
    replacement = wait_for(
        lambda: (pid := worker_pid(running, victim_port)) and pid != victim and pid,
        what="a new worker on the port",
    )
    assert not alive(victim)
    wait_for(lambda: accepts(victim_port), what="the port to answer")
    assert worker_pid(running, victim_port) == replacement

    # … and nginx sends it requests again
    def reached_again() -> bool:
        ids = [
            requests.get(f"{running.url}/api/upload/", timeout=10).headers["X-Request-ID"]
            for _ in range(8)
        ]
        return victim_port in workers_of(running, ids).values()

    wait_for(reached_again, what="requests to reach the restarted worker")


@pytest.mark.nginx
def test_images_are_served_with_every_worker_stopped(up_factory):
    running = up_factory(WEB_SERVER_WORKERS="2")
    image = upload(running.url, image_bytes("PNG"), name="photo.png").json()
    original = requests.get(image["url"], timeout=10).content
    stopped = [worker_pid(running, port) for port in worker_ports(running)]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        served = requests.get(image["url"], timeout=10)
        thumb = requests.get(image["thumbnail_url"], timeout=10)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert served.status_code == 200 and served.content == original
    assert served.headers["Content-Type"] == "image/png"
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    for resp in (served, thumb):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["Server"].startswith("nginx")


@pytest.mark.nginx
def test_a_killed_nginx_is_restarted_without_leftovers(up_factory):
    running = up_factory(WEB_SERVER_WORKERS="1")
    master = nginx_master_pid(running)
    old_workers = [pid for pid in descendants(master)]
    assert old_workers
    os.kill(master, signal.SIGKILL)
    new_master = wait_for(
        lambda: (pid := nginx_master_pid(running)) and pid != master and pid,
        what="a new nginx",
    )
    wait_for(lambda: requests.get(f"{running.url}/api/health", timeout=10).ok, what="health")
    # its orphaned workers (which would hold the port) were ended, not left to init
    wait_for(lambda: not any(alive(pid) for pid in old_workers), what="old workers to end")
    assert nginx_master_pid(running) == new_master


@pytest.mark.nginx
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_up_leaves_no_process(up_factory, how):
    running = up_factory()
    family = descendants(running.proc.pid)
    assert sum("worker --port" in cmd for cmd in family.values()) == 4
    assert any(cmd.startswith("nginx: master") for cmd in family.values())
    assert any(cmd.startswith("nginx: worker") for cmd in family.values())
    if how == "ctrl-c":  # the terminal signals the whole foreground process group
        os.killpg(running.proc.pid, signal.SIGINT)
    else:
        running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(20) == 0
    left = {pid: cmd for pid, cmd in family.items() if alive(pid)}
    assert left == {}
    assert not accepts(running.port)


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"HOST": "127.0.0.1;include /etc/passwd"}, "HOST"),
        ({"WORKER_HOST": "a b"}, "WORKER_HOST"),
        ({"IMAGES_DIR": "/srv/img; root /"}, "IMAGES_DIR"),
        ({"LOG_DIR": "/srv/$host"}, "LOG_DIR"),
    ],
    ids=["host-injection", "worker-host-space", "images-dir-semicolon", "log-dir-variable"],
)
def test_settings_cannot_inject_nginx_directives(tmp_path, env, variable):
    with pytest.raises(config.ConfigError, match=variable):
        front.render(settings_for(tmp_path, **env))


@pytest.mark.nginx
def test_up_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(tmp_path, PORT=str(port), WEB_SERVER_START_PORT=str(free_port_range(2)))
        result = run_cli(env, "up")
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is not free" in result.stderr


@pytest.mark.nginx
def test_listing_etag_survives_gzip(stack):
    for i in range(3):
        assert upload(stack.url, image_bytes("PNG"), name=f"p{i}.png").status_code == 201
    first = requests.get(
        f"{stack.url}/api/upload/", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert first.status_code == 200 and first.headers.get("Content-Encoding") == "gzip"
    again = requests.get(
        f"{stack.url}/api/upload/",
        timeout=10,
        headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304


@pytest.mark.nginx
def test_a_missing_thumbnail_is_made_on_its_first_request(stack):
    """A thumbnail lost (it is not fsynced: a power cut) or never made under its name (JPEG
    originals had WebP thumbnails before) is made from its original by a worker on its first
    request, then served from storage; the thumbnail name of no image stays our 404."""
    jpeg = uploaded(stack.url, image_bytes("JPEG", (640, 480), 31), "photo.jpg", "image/jpeg")
    png = uploaded(stack.url, image_bytes("PNG", (640, 480), 32), "screen.png")
    for image, thumb_type in ((jpeg, "image/jpeg"), (png, "image/webp")):
        key = thumbnail_key(image["filename"])
        assert image["thumbnail_url"] == f"{stack.url}/images/{key}"
        remove_by_hand(stack, key)
        assert key not in stored_keys(stack)
        made = requests.get(image["thumbnail_url"], timeout=10)
        assert made.status_code == 200 and made.headers["Content-Type"] == thumb_type
        assert made.headers["Cache-Control"] == headers.IMAGE_CACHE
        assert "sandbox" in made.headers["Content-Security-Policy"]
        with Image.open(io.BytesIO(made.content)) as im:
            assert Image.MIME[im.format] == thumb_type and im.size == (320, 240)
        assert key in stored_keys(stack)
        again = requests.get(image["thumbnail_url"], timeout=10)
        assert again.status_code == 200 and again.content == made.content
    legacy = f"{stack.url}/images/thumbs/{jpeg['id']}.webp"  # not this JPEG's name (any more)
    for url in (legacy, f"{stack.url}/images/thumbs/NoSuchImage00000.jpg"):
        assert_error(requests.get(url, timeout=10), 404, "not_found")
